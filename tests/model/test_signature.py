"""The serving signature: the raw input training and serving both feed."""

from __future__ import annotations

from model.signature import raw_columns, raw_value
from transforms.fields import SCORED_FIELD_NAMES


def test_raw_value_is_the_same_for_training_and_serving() -> None:
    assert raw_value(None) == ""
    assert raw_value(235000) == "235000"
    assert raw_columns([{"title": "A"}, {"title": None, "isrc": "X"}])["title"] == ["A", ""]
    assert set(raw_columns([{}])) == set(SCORED_FIELD_NAMES)
