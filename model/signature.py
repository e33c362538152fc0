"""The serving signature's contract: what goes into the exported model and what comes out.

Training writes a SavedModel with these input and output names; serving feeds and reads
them. Nothing here imports TensorFlow, so the serving path can name its tensors without
loading it::

    >>> probs_output("isrc")
    'isrc_probs'
    >>> raw_columns([{"title": "Yesterday", "duration_ms": 125000}])["duration_ms"]
    ['125000']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transforms.fields import SCORED_FIELD_NAMES

SWAPPED_OUTPUT = "swapped_prob"


def probs_output(field: str) -> str:
    """Name of the serving output with ``field``'s class probabilities [B, n_classes]."""
    return f"{field}_probs"


def raw_value(value: Any) -> str:
    """What the model sees for a raw track value: its text, ``""`` when missing.

    Training and serving both go through this, so a None, a number or a list
    reaches the graph in the same form in both.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    return str(value)


def raw_columns(tracks: Sequence[Mapping[str, Any]]) -> dict[str, list[str]]:
    """Column-wise raw strings of the scored fields of ``tracks``: the serving input."""
    return {name: [raw_value(t.get(name)) for t in tracks] for name in SCORED_FIELD_NAMES}
