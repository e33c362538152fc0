"""metafix diff: comparing two replays of one log."""

from __future__ import annotations

import copy

import pytest

from harness.eventgen import catalog_messages
from streaming.diff import compare, run
from transforms.fields import TRACK_FIELDS


def _record(event_id: str, title: str, corrections=(), review=()) -> dict:
    track = dict.fromkeys(TRACK_FIELDS) | {"featured_artists": [], "title": title}
    return {"event_id": event_id, "track": track, "corrections": list(corrections), "review": list(review)}


def test_compare_counts_value_and_flag_changes_with_examples():
    a = [_record("e1", "SONG"), _record("e2", "Same"), _record("e3", "x", review=[
        {"field": "upc", "error_class": "upc_check_digit"}])]
    b = copy.deepcopy(a)
    b[0] = _record("e1", "Song", corrections=[{"field": "title", "error_class": "all_caps"}])
    b[2]["review"] = []

    report = compare(a, b)

    assert report["events_changed"] == 2
    assert report["value_changes"] == [{"field": "title", "class_a": "-", "class_b": "all_caps", "count": 1,
                                        "examples": [{"event_id": "e1", "a": "SONG", "b": "Song"}]}]
    assert report["review_changes"] == [{"field": "upc", "error_class": "upc_check_digit",
                                         "flagged_by": "only_a", "count": 1}]


def test_compare_reports_events_missing_on_one_side():
    report = compare([_record("e1", "a"), _record("e2", "b")], [_record("e1", "a")])
    assert (report["only_in_a"], report["only_in_b"], report["events_changed"]) == (1, 0, 0)


@pytest.mark.slow
def test_diff_of_a_model_with_itself_finds_nothing(tiny_model_dir, tmp_path, capsys):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(60, seed=12, bad_every=0, avro_share=0)))

    assert run(["--input", str(log), "--model-a", str(tiny_model_dir), "--model-b", str(tiny_model_dir),
                "--json", str(tmp_path / "d.json")]) == 0

    assert "events: A 60, B 60, changed 0" in capsys.readouterr().out
