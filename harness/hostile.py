"""Hostile Kafka payloads for the reliability tests and ``make chaos``, generated with hypothesis.

    payloads = hostile_payloads(10_000, seed=1)      # [(kind, bytes)], plus the huge ones
    expected = expected_fate(payload)                # what the job must do with it

Kinds: random bytes, JSON with invalid UTF-8, truncated and corrupted Confluent Avro
(schema id 1), unknown and wrong schema ids, deeply nested JSON, JSON objects with missing
and wrongly typed fields, valid events whose text is full of control and format characters
(some with lone surrogates), and a few huge messages (10 MB, and sizes around the payload
limit). ``expected_fate`` is the oracle: the pure decoder decides, so a payload the
decoder rejects must come out as a dead letter with the decoder's reason, and one it
accepts must come out as an output (or a dead letter of a later stage, with a reason).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from schemas import EVENT_SCHEMA_ID, SCHEMAS_BY_ID
from transforms import codec
from transforms.fields import TRACK_FIELDS

KINDS = (
    "random_bytes", "invalid_utf8", "truncated_avro", "corrupt_avro", "schema_id",
    "deep_json", "json_fields", "odd_text",
)
_TRACK_TEXT_FIELDS = tuple(f for f in TRACK_FIELDS if f != "featured_artists")
_TOP_LEVEL_FIELDS = ("event_id", "event_time", "entity_id", "source", "track")
_INVALID_UTF8 = (b"\xff", b"\xfe", b"\xc3\x28", b"\xe2\x82", b"\xed\xa0\x80", b"\xc0\xaf",
                 b"\xf8\x88\x80\x80\x80", b"\x80")
_ODD_CHARACTERS = st.characters(categories=["Cc", "Cf", "Zl", "Zp", "Zs", "Co", "Mn", "So", "Lo"])

text = st.text(max_size=40)
odd_text = st.text(alphabet=_ODD_CHARACTERS, max_size=40)
event_ids = st.text(min_size=1, max_size=40).filter(lambda s: s.strip() != "")


def _track(values: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        **{f: st.none() | values for f in _TRACK_TEXT_FIELDS},
        "featured_artists": st.lists(values, max_size=3),
    })


def _events(values: st.SearchStrategy[str]) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({
        "event_id": event_ids,
        "event_time": st.none() | values,
        "entity_id": st.none() | values,
        "source": st.none() | values,
        "track": _track(values),
    })


events = _events(text)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | text,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)


def _json(obj: Any, ascii_only: bool = False) -> bytes:
    return json.dumps(obj, ensure_ascii=ascii_only).encode("utf-8")


@st.composite
def invalid_utf8(draw: st.DrawFn) -> bytes:
    doc = _json(draw(events))
    at = draw(st.integers(0, len(doc)))
    return doc[:at] + draw(st.sampled_from(_INVALID_UTF8)) + doc[at:]


@st.composite
def truncated_avro(draw: st.DrawFn) -> bytes:
    doc = codec.encode_event(draw(events))
    return doc[: draw(st.integers(0, len(doc) - 1))]


@st.composite
def corrupt_avro(draw: st.DrawFn) -> bytes:
    doc = bytearray(codec.encode_event(draw(events)))
    for at in draw(st.lists(st.integers(5, len(doc) - 1), min_size=1, max_size=4)):
        doc[at] = draw(st.integers(0, 255))
    if draw(st.booleans()):
        doc += draw(st.binary(min_size=1, max_size=8))
    return bytes(doc)


@st.composite
def schema_id(draw: st.DrawFn) -> bytes:
    registered = sorted(i for i in SCHEMAS_BY_ID if i != EVENT_SCHEMA_ID)
    sid = draw(st.sampled_from(registered) | st.integers(0, 2**32 - 1).filter(lambda i: i not in SCHEMAS_BY_ID))
    body = draw(st.binary(max_size=64)) if draw(st.booleans()) else codec.encode_event(draw(events))[5:]
    return struct.pack(">bI", 0, sid) + body


@st.composite
def deep_json(draw: st.DrawFn) -> bytes:
    depth = draw(st.integers(1, 50_000))
    shape = draw(st.sampled_from(["array", "object", "in_track"]))
    if shape == "array":
        return b"[" * depth + b"]" * depth
    nested = '{"a":' * depth + "1" + "}" * depth
    if shape == "object":
        return nested.encode()
    return ('{"event_id": "deep", "track": {"title": ' + nested + "}}").encode()


@st.composite
def json_fields(draw: st.DrawFn) -> bytes:
    keys = st.sampled_from(_TOP_LEVEL_FIELDS) | st.text(max_size=8)
    track_keys = st.sampled_from(TRACK_FIELDS) | st.text(max_size=8)
    obj = draw(st.dictionaries(keys, json_values, max_size=6))
    if draw(st.booleans()):
        obj["track"] = draw(st.dictionaries(track_keys, json_values, max_size=8))
    if draw(st.booleans()):
        obj["event_id"] = draw(event_ids)
    return _json(obj, ascii_only=draw(st.booleans()))


@st.composite
def odd_text_event(draw: st.DrawFn) -> bytes:
    event = draw(_events(odd_text))
    form = draw(st.sampled_from(["json", "avro", "json_ascii", "lone_surrogate"]))
    if form == "lone_surrogate":
        # JSON escapes a lone surrogate that no UTF-8 writer accepts.
        event["track"]["title"] = "broken \ud83d half"
    if form == "avro":
        return codec.encode_event(event)
    return _json(event, ascii_only=form != "json")


STRATEGIES: dict[str, st.SearchStrategy[bytes]] = {
    "random_bytes": st.binary(max_size=512),
    "invalid_utf8": invalid_utf8(),
    "truncated_avro": truncated_avro(),
    "corrupt_avro": corrupt_avro(),
    "schema_id": schema_id(),
    "deep_json": deep_json(),
    "json_fields": json_fields(),
    "odd_text": odd_text_event(),
}

payloads = st.sampled_from(KINDS).flatmap(lambda kind: st.tuples(st.just(kind), STRATEGIES[kind]))


def huge_payloads(max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
                  huge_bytes: int = 10_000_000) -> list[tuple[str, bytes]]:
    """Messages at and past the size limits: 10 MB events and bytes, and the limit's edges."""

    def event_of_size(size: int, title_tail: str = "") -> bytes:
        shell = _json({"event_id": f"big-{size}", "track": {"title": ""}})
        return _json({"event_id": f"big-{size}",
                      "track": {"title": "a" * (size - len(shell) - len(title_tail)) + title_tail}})

    return [
        ("huge_json", event_of_size(huge_bytes)),
        ("huge_json", _json({"event_id": "big-list", "track": {"featured_artists": ["x" * 1000] * (huge_bytes // 1006)}})),
        ("huge_bytes", bytes(range(256)) * (huge_bytes // 256)),
        ("at_limit", event_of_size(max_payload_bytes)),
        ("past_limit", event_of_size(max_payload_bytes + 1)),
        # Valid, but its output (a correction keeps before and after) cannot be a Kafka record.
        ("big_output", event_of_size(max_payload_bytes - 1024, title_tail="   ")),
    ]


def hostile_payloads(n: int, seed: int = 0, *, with_huge: bool = True) -> list[tuple[str, bytes]]:
    """``n`` generated (kind, payload) pairs, and the huge ones unless ``with_huge`` is off."""
    found: list[tuple[str, bytes]] = []

    @hypothesis_seed(seed)
    @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(payloads)
    def collect(example: tuple[str, bytes]) -> None:
        found.append(example)

    collect()
    return found + (huge_payloads() if with_huge else [])


@dataclass(frozen=True)
class Fate:
    """What the job must do with a payload: a dead letter for ``error_type``, or an output."""

    decodes: bool
    error_type: str | None = None
    event_id: str | None = None


def expected_fate(payload: bytes, max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES) -> Fate:
    try:
        event = codec.decode_event(payload, max_payload_bytes)
    except codec.DecodeError as e:
        return Fate(False, e.error_type)
    return Fate(True, None, event["event_id"])
