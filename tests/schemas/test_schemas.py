"""The Avro contract: schemas parse, round-trip strictly, and agree with transforms.fields."""

import datetime
import io

import fastavro
import pytest

import schemas
from transforms.fields import TRACK_FIELDS


def _roundtrip(schema, record):
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record, strict=True)
    buf.seek(0)
    return fastavro.schemaless_reader(buf, schema, None)


def _field_names(schema, name):
    track = next(f for f in schema["fields"] if f["name"] == name)
    return tuple(f["name"] for f in track["type"]["fields"])


def test_track_fields_match_the_single_source_of_truth():
    assert _field_names(schemas.CATALOG_UPDATE_EVENT, "track") == TRACK_FIELDS
    assert _field_names(schemas.CORRECTED_RECORD, "track") == TRACK_FIELDS


def test_registry_ids_are_unique_and_cover_every_schema():
    assert sorted(schemas.SCHEMAS_BY_ID) == [1, 2, 3, 4, 5]
    assert schemas.EVENT_SCHEMA_ID != schemas.CORRECTED_SCHEMA_ID


def test_event_roundtrip_strict():
    event = {
        "event_id": "e-1",
        "event_time": "2024-01-02T03:04:05Z",
        "entity_id": "trk-1",
        "source": "label-a",
        "track": {f: None for f in TRACK_FIELDS} | {"featured_artists": ["A"], "duration_ms": "3:55"},
    }
    assert _roundtrip(schemas.CATALOG_UPDATE_EVENT, event) == event


def test_corrected_record_roundtrip_strict():
    record = {
        "record_key": "e-1@v1",
        "event_id": "e-1",
        "entity_id": None,
        "source": None,
        "event_time": None,
        "track": {
            "title": "Song", "artist": "Artist", "featured_artists": [], "album": None,
            "isrc": "USS1Z9900001", "upc": None, "release_date": datetime.date(2008, 3, 17),
            "duration_ms": 235000, "genre": "Rock", "explicit": True, "track_number": 3, "language": "en",
        },
        "corrections": [{"field": "title", "before": "SONG", "after": "Song", "error_class": "all_caps",
                         "confidence": 0.5, "model_version": "v1"}],
        "review": [{"field": "upc", "value": "1", "error_class": "upc_check_digit", "confidence": 0.25,
                    "reason": "check digit"}],
        "model_version": "v1",
        "profile_version": "p-0123456789abcdef",
        "release_date_precision": "day",
        "pipeline_version": "0.1.0",
        "input": {"topic": "t", "partition": 0, "offset": 5, "timestamp_ms": 1},
    }
    assert _roundtrip(schemas.CORRECTED_RECORD, record) == record


def test_strict_writer_rejects_a_missing_field():
    with pytest.raises(ValueError):
        _roundtrip(schemas.ARCHIVED_EVENT, {"topic": "t", "value": b"x"})
