"""Decoding JSON and Confluent Avro events, every kind of bad input, and encoding outputs."""

import io
import json
import struct

import fastavro
import pytest

import schemas
from schemas import CORRECTED_SCHEMA_ID, DEAD_LETTER_SCHEMA_ID, EVENT_SCHEMA_ID
from transforms import codec
from transforms.fields import TRACK_FIELDS


def _event(**track):
    return {
        "event_id": "e-1",
        "event_time": "2024-05-01T10:00:00Z",
        "entity_id": "trk-9",
        "source": "distro",
        "track": {f: None for f in TRACK_FIELDS} | {"featured_artists": []} | track,
    }


def test_json_numbers_and_booleans_read_as_text():
    payload = json.dumps({"event_id": "e-1", "track": {"duration_ms": 235000, "explicit": True,
                                                      "track_number": 3, "title": "X"}}).encode()
    track = codec.decode_event(payload)["track"]
    assert (track["duration_ms"], track["explicit"], track["track_number"], track["title"]) == (
        "235000", "true", "3", "X")
    assert track["featured_artists"] == [] and track["album"] is None


def test_confluent_avro_roundtrip():
    event = _event(title="Song", duration_ms="3:55", featured_artists=["A", "B"])
    assert codec.decode_event(codec.encode_event(event)) == event


def test_json_and_avro_decode_to_the_same_event():
    event = _event(title="Song", isrc="us-s1z-99-00001")
    assert codec.decode_event(json.dumps(event).encode()) == codec.decode_event(codec.encode_event(event))


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        (b"", "empty_payload"),
        (None, "empty_payload"),
        (b"\xff\xfe{}", "invalid_utf8"),
        (b"{not json", "invalid_json"),
        (b"[1, 2]", "wrong_type"),
        (b"[" * 100_000 + b"]" * 100_000, "json_too_deep"),
        (b'{"track": {"title": "x"}}', "missing_event_id"),
        (b'{"event_id": "  ", "track": {}}', "missing_event_id"),
        (b'{"event_id": "e", "track": {"title": {"nested": 1}}}', "wrong_type"),
        (b'{"event_id": "e", "track": [1]}', "wrong_type"),
        (b'{"event_id": "e", "track": {"featured_artists": "A"}}', "wrong_type"),
        (b'{"event_id": "e", "track": {"title": "\\ud800"}}', "invalid_unicode"),
        (b"\x00\x00\x00", "truncated_header"),
        (b"\x00" + struct.pack(">I", 999) + b"\x02", "unknown_schema_id"),
        (b"\x00" + struct.pack(">I", CORRECTED_SCHEMA_ID) + b"\x02", "wrong_schema_id"),
    ],
)
def test_bad_inputs_raise_a_typed_error(payload, error_type):
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(payload)
    assert info.value.error_type == error_type


def test_truncated_and_corrupted_avro():
    good = codec.encode_event(_event(title="A fairly long title to cut"))
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(good[: len(good) // 2])
    assert info.value.error_type in ("truncated_avro", "corrupt_avro")
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(good + b"\x00\x01")
    assert info.value.error_type == "corrupt_avro"


def test_oversized_payload_is_rejected_before_parsing():
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(b"{" + b" " * 2000 + b"}", max_bytes=1000)
    assert info.value.error_type == "payload_too_large"


def test_event_id_survives_into_a_type_error():
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(b'{"event_id": "keep-me", "track": {"title": [1]}}')
    assert info.value.event_id == "keep-me"


def test_dead_letter_keeps_bytes_and_reason_and_encodes():
    payload = b"\xff" * 100_000
    record = codec.dead_letter(payload, stage="decode", error_type="invalid_utf8", message="bad",
                               topic="in", partition=2, offset=7, timestamp_ms=1, key=b"k")
    schema_id, decoded = codec.confluent_decode(codec.encode_dead_letter(record))
    assert schema_id == DEAD_LETTER_SCHEMA_ID
    assert decoded["payload"] == payload[: codec.DEAD_LETTER_PAYLOAD_LIMIT]
    assert decoded["payload_size"] == len(payload)
    assert (decoded["topic"], decoded["partition"], decoded["offset"], decoded["stage"]) == ("in", 2, 7, "decode")


# Writer schemas as a registry would hold them: metafix's own, a v2 that adds an optional
# field and drops a defaulted one, and one whose event_id changed type.
def _event_schema(change=None) -> dict:
    raw = json.loads(schemas.schema_text("catalog_update_event.avsc"))
    if change is not None:
        change(raw)
    return fastavro.parse_schema(raw)


def _v2(raw: dict) -> None:
    raw["fields"] = [f for f in raw["fields"] if f["name"] != "source"]
    raw["fields"].append({"name": "priority", "type": ["null", "int"], "default": None})


def _event_id_as_long(raw: dict) -> None:
    raw["fields"][0]["type"] = "long"


# Id 9 is the registry's copy of metafix's schema as the lookup gives it (read without
# resolution); 10 the same schema parsed apart (read with it).
WRITERS = {9: schemas.CATALOG_UPDATE_EVENT, 10: _event_schema(), 11: _event_schema(_v2),
           12: _event_schema(_event_id_as_long)}


def _lookup(schema_id: int) -> dict:
    if schema_id not in WRITERS:
        raise codec.DecodeError(codec.UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not known")
    return WRITERS[schema_id]


def _framed(schema_id: int, record: dict) -> bytes:
    buf = io.BytesIO()
    buf.write(b"\x00" + struct.pack(">I", schema_id))
    fastavro.schemaless_writer(buf, WRITERS[schema_id], record, strict_allow_default=True)
    return buf.getvalue()


def test_registry_writer_schemas_resolve_to_the_reader_schema():
    event = _event(title="Song", isrc="us-s1z-99-00001")
    assert codec.decode_event(_framed(9, event), writer_schemas=_lookup) == event
    assert codec.decode_event(_framed(10, event), writer_schemas=_lookup) == event
    v2 = {k: v for k, v in event.items() if k != "source"} | {"priority": 3}
    # The added field is skipped; the dropped one takes the reader's default.
    assert codec.decode_event(_framed(11, v2), writer_schemas=_lookup) == event | {"source": None}


@pytest.mark.parametrize(
    ("payload", "error_type"),
    [
        (b"\x00" + struct.pack(">I", 999) + b"\x02", codec.UNKNOWN_SCHEMA_ID),
        (_framed(12, _event() | {"event_id": 7}), codec.INCOMPATIBLE_SCHEMA),
        (_framed(10, _event())[:-3], "truncated_avro"),
        (b"\x00\x00\x00", "truncated_header"),
        (b'{"event_id": "e", "track": {}}', None),  # JSON never asks the registry
    ],
)
def test_registry_framed_inputs_that_cannot_be_read(payload, error_type):
    if error_type is None:
        assert codec.decode_event(payload, writer_schemas=_lookup)["event_id"] == "e"
        return
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(payload, writer_schemas=_lookup)
    assert info.value.error_type == error_type


def test_registry_ids_are_not_the_static_ids():
    # Id 10 is metafix's event schema in the registry; registry.json knows no id 10.
    payload = _framed(10, _event())
    assert codec.decode_event(payload, writer_schemas=_lookup)["event_id"] == "e-1"
    with pytest.raises(codec.DecodeError) as info:
        codec.decode_event(payload)
    assert info.value.error_type == codec.UNKNOWN_SCHEMA_ID


def test_reframe_keeps_the_body_behind_another_id():
    value = codec.encode_event(_event(title="X"))
    assert codec.decode_event(codec.reframe(codec.reframe(value, 10), EVENT_SCHEMA_ID)) == _event(title="X")
    assert codec.reframe(value, 10)[1:5] == struct.pack(">I", 10)
