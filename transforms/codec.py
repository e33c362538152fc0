"""Bytes in, events out, and back: pure decoding and encoding of the wire formats.

Inputs arrive either as JSON (UTF-8, the Avro schema's field names, JSON numbers
and booleans read as their text) or as Avro binary behind the Confluent
wire-format header (magic byte 0, 4-byte big-endian schema id). Everything that
cannot be read becomes a ``DecodeError`` whose ``error_type`` names the reason;
the Beam shell turns it into a ``DeadLetter`` record.

The header's id names the writer's schema. Without a schema registry it must be the
event's id in ``schemas/registry.json``. With one, the caller passes a ``WriterSchemas``
lookup (id -> parsed writer schema) and the body is read with Avro schema resolution
into metafix's reader schema, so producers may add optional fields or drop defaulted ones::

    decode_event(payload, writer_schemas=lambda schema_id: parsed_schemas[schema_id])
"""

from __future__ import annotations

import io
import json
import re
import struct
from collections.abc import Callable
from typing import Any

import fastavro
import orjson
from fastavro.read import SchemaResolutionError

from schemas import (
    CATALOG_UPDATE_EVENT,
    DEAD_LETTER,
    DEAD_LETTER_SCHEMA_ID,
    EVENT_SCHEMA_ID,
    SCHEMA_VERSION,
    SCHEMAS_BY_ID,
)
from transforms import avro_writer
from transforms.fields import TRACK_FIELDS
from transforms.version import PIPELINE_VERSION

MAGIC_BYTE = 0
_HEADER = struct.Struct(">bI")
DEFAULT_MAX_PAYLOAD_BYTES = 1 << 20
# Dead letters keep the raw payload, but not an unbounded one: a 10 MB hostile
# message must not become a 10 MB dead letter that the sink cannot write.
DEAD_LETTER_PAYLOAD_LIMIT = 64 << 10
# The largest output record the job writes. Kafka's default max.message.bytes is 1 MiB plus
# 12 bytes of batch overhead and a producer's default max_request_size is 1 MiB; a larger
# output (a valid event just under --max-payload-bytes, with corrections) becomes a dead letter.
MAX_OUTPUT_BYTES = 1_000_000
# Deeper JSON is a dead letter before it is parsed: the parser's own limit (Python's
# recursion limit) depends on how deep the call stack already is, so the same payload could
# get another reason in the stream than in a replay. An event nests three levels deep.
MAX_JSON_DEPTH = 64
_JSON_STRUCTURE = re.compile(r'[\[\]{}"\\]')
_TOP_LEVEL_STRINGS = ("event_time", "entity_id", "source")
_TRACK_STRINGS = tuple(f for f in TRACK_FIELDS if f != "featured_artists")

# Dead-letter reasons of registry-framed inputs, named here once: the registry client raises
# them for ids it cannot serve, decoding for bodies its writer schema cannot be resolved from.
UNKNOWN_SCHEMA_ID = "unknown_schema_id"
INCOMPATIBLE_SCHEMA = "incompatible_schema"


class DecodeError(Exception):
    """An input that cannot become a ``CatalogUpdateEvent``."""

    def __init__(self, error_type: str, message: str, event_id: str | None = None):
        super().__init__(message)
        self.error_type = error_type
        self.message = message
        self.event_id = event_id


# Schema id -> the writer's parsed Avro schema (``CATALOG_UPDATE_EVENT`` itself when it is
# metafix's own); raises DecodeError (UNKNOWN_SCHEMA_ID or INCOMPATIBLE_SCHEMA) for an id it
# cannot give a usable schema for.
WriterSchemas = Callable[[int], dict[str, Any]]


def decode_event(
    payload: bytes, max_bytes: int = DEFAULT_MAX_PAYLOAD_BYTES, writer_schemas: WriterSchemas | None = None
) -> dict[str, Any]:
    """Decodes one Kafka value into a validated ``CatalogUpdateEvent`` dict.

    ``writer_schemas``: the schema registry's lookup; None reads Avro by ``registry.json``.
    """
    if payload is None:
        raise DecodeError("empty_payload", "record has no value (tombstone)")
    if len(payload) > max_bytes:
        raise DecodeError("payload_too_large", f"{len(payload)} bytes > limit {max_bytes}")
    if not payload:
        raise DecodeError("empty_payload", "record value is empty")
    if payload[0] == MAGIC_BYTE:
        if writer_schemas is not None:
            return _decode_registry_avro(payload, writer_schemas)
        return _decode_confluent_avro(payload)
    return _decode_json(payload)


def _schema_id(payload: bytes) -> int:
    if len(payload) < _HEADER.size:
        raise DecodeError("truncated_header", f"{len(payload)} bytes is shorter than the wire-format header")
    return _HEADER.unpack_from(payload)[1]


def _decode_confluent_avro(payload: bytes) -> dict[str, Any]:
    schema_id = _schema_id(payload)
    if schema_id not in SCHEMAS_BY_ID:
        raise DecodeError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not registered")
    if schema_id != EVENT_SCHEMA_ID:
        raise DecodeError("wrong_schema_id", f"schema id {schema_id} is not a CatalogUpdateEvent schema")
    return _read_avro_body(payload, CATALOG_UPDATE_EVENT, None)


def _decode_registry_avro(payload: bytes, writer_schemas: WriterSchemas) -> dict[str, Any]:
    schema_id = _schema_id(payload)
    writer = writer_schemas(schema_id)
    # metafix's own schema needs no resolution, which costs a third more per record.
    reader = None if writer is CATALOG_UPDATE_EVENT else CATALOG_UPDATE_EVENT
    try:
        return _read_avro_body(payload, writer, reader)
    except SchemaResolutionError as e:
        # fastavro resolves while it reads: a union branch the reader cannot take fails only
        # for the records that use it, as the Avro specification has it.
        raise DecodeError(
            INCOMPATIBLE_SCHEMA,
            f"writer schema {schema_id} does not resolve to CatalogUpdateEvent: {str(e)[:300]}",
        ) from e


def _read_avro_body(payload: bytes, writer: dict[str, Any], reader: dict[str, Any] | None) -> dict[str, Any]:
    body = io.BytesIO(payload)
    body.seek(_HEADER.size)
    try:
        record = fastavro.schemaless_reader(body, writer, reader)
    except SchemaResolutionError:
        raise  # the schemas disagree, not the bytes: the caller names it
    except (EOFError, StopIteration) as e:
        raise DecodeError("truncated_avro", f"Avro body ends early: {e!r}") from e
    except Exception as e:  # fastavro raises many types on corrupt bodies
        raise DecodeError("corrupt_avro", f"{type(e).__name__}: {e}") from e
    if body.tell() != len(payload):
        raise DecodeError("corrupt_avro", f"{len(payload) - body.tell()} trailing bytes after the Avro record")
    return _validate(record)


def _decode_json(payload: bytes) -> dict[str, Any]:
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise DecodeError("invalid_utf8", str(e)) from e
    # Nesting deeper than the limit needs more opening brackets than the limit: counting
    # them (in C) spares the scan for every ordinary event.
    if payload.count(b"[") + payload.count(b"{") > MAX_JSON_DEPTH and json_nesting_exceeds(text, MAX_JSON_DEPTH):
        raise DecodeError("json_too_deep", f"JSON nests arrays or objects deeper than {MAX_JSON_DEPTH}")
    try:
        obj = loads_json(text)
    except RecursionError as e:
        raise DecodeError("json_too_deep", "JSON nesting exceeds the parser's depth limit") from e
    except ValueError as e:
        raise DecodeError("invalid_json", str(e)) from e
    if not isinstance(obj, dict):
        raise DecodeError("wrong_type", f"top-level JSON is {type(obj).__name__}, expected an object")
    return _validate(_from_json(obj))


def loads_json(text: str) -> Any:
    """``json.loads(text)``, computed by orjson when that gives exactly the same value.

    orjson is several times faster, but it rejects what ``json`` accepts (lone surrogates,
    NaN, numbers beyond a double) and reads integers beyond 64 bits as floats. Any error,
    and any float among the values an event reads, sends the text to ``json`` instead, so
    results and error messages stay the standard library's.
    """
    try:
        obj = orjson.loads(text)
    except Exception:  # noqa: BLE001 - any refusal: the standard library decides, with its message
        return json.loads(text)
    if isinstance(obj, dict) and not _has_float(obj):
        return obj
    return json.loads(text)


def _has_float(obj: dict[str, Any]) -> bool:
    track = obj.get("track")
    values = [*obj.values(), *(track.values() if isinstance(track, dict) else ())]
    return any(isinstance(v, float) for v in values)


def json_nesting_exceeds(text: str, limit: int) -> bool:
    """True when arrays and objects in ``text`` nest deeper than ``limit`` (strings skipped).

    One linear pass over the structural characters, stopping at the first level too deep.
    """
    depth, in_string, escaped_at = 0, False, -1
    for m in _JSON_STRUCTURE.finditer(text):
        at = m.start()
        if at == escaped_at:
            continue
        char = text[at]
        if in_string:
            if char == "\\":
                escaped_at = at + 1
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def _json_text(value: Any, where: str, event_id: str | None) -> str | None:
    # Upstream systems send numbers and flags as JSON scalars; the event keeps them as text.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return json.dumps(value)
    raise DecodeError("wrong_type", f"{where} is a JSON {type(value).__name__}, expected a scalar", event_id)


def _from_json(obj: dict[str, Any]) -> dict[str, Any]:
    raw_id = obj.get("event_id")
    event_id = raw_id if isinstance(raw_id, str) else None
    track = obj.get("track")
    if track is None:
        track = {}
    if not isinstance(track, dict):
        raise DecodeError("wrong_type", f"track is a JSON {type(track).__name__}, expected an object", event_id)
    featured = track.get("featured_artists")
    if featured is None:
        featured = []
    if not isinstance(featured, list) or not all(isinstance(a, str) for a in featured):
        raise DecodeError("wrong_type", "track.featured_artists must be a list of strings", event_id)
    return {
        "event_id": _json_text(raw_id, "event_id", event_id),
        **{k: _json_text(obj.get(k), k, event_id) for k in _TOP_LEVEL_STRINGS},
        "track": {
            **{k: _json_text(track.get(k), f"track.{k}", event_id) for k in _TRACK_STRINGS},
            "featured_artists": featured,
        },
    }


def validate_event(event: dict[str, Any]) -> dict[str, Any]:
    """Checks an event read as a ``CatalogUpdateEvent`` (an Avro row) as decoding would."""
    return _validate(event)


def _validate(event: dict[str, Any]) -> dict[str, Any]:
    event_id = event.get("event_id")
    if not event_id or not event_id.strip():
        raise DecodeError("missing_event_id", "event_id is missing or empty")
    if len(event_id) > 256:
        raise DecodeError("invalid_event_id", f"event_id is {len(event_id)} characters long", event_id[:256])
    texts = [event_id]
    for value in (*(event.get(k) for k in _TOP_LEVEL_STRINGS), *event["track"].values()):
        if isinstance(value, list):
            texts += value
        elif value is not None:
            texts.append(value)
    # JSON "\ud800" escapes decode to lone surrogates that no UTF-8 writer accepts. Joined,
    # the values are checked in one call: surrogates do not pair up across a join in a str.
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        raise DecodeError("invalid_unicode", "a text value holds a lone surrogate", event_id) from None
    return event


def confluent_encode(schema_id: int, record: dict[str, Any], schema: dict[str, Any] | None = None) -> bytes:
    """Encodes a record with the wire-format header; ``strict`` so no field is silently defaulted.

    ``schema``: the parsed schema the id stands for; by default the one ``registry.json`` names.
    A writer compiled for the schema (``transforms/avro_writer.py``) encodes the records it
    takes; fastavro the rest, with the same bytes or its error.
    """
    schema = schema if schema is not None else SCHEMAS_BY_ID[schema_id]
    return _HEADER.pack(MAGIC_BYTE, schema_id) + avro_body(schema, record)


def avro_body(schema: dict[str, Any], record: Any) -> bytes:
    """A record's Avro binary encoding under a parsed schema, ``strict`` as ``confluent_encode``."""
    body = _compiled_writer(schema)(record)
    if body is not None:
        return body
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record, strict=True)
    return buf.getvalue()


def _no_fast_path(record: Any) -> None:  # a compiled writer's signature
    return None


# id(parsed schema) -> (the schema, kept alive so its id is not reused; its compiled writer).
_WRITERS: dict[int, tuple[dict[str, Any], Callable[[Any], bytes | None]]] = {}


def _compiled_writer(schema: dict[str, Any]) -> Callable[[Any], bytes | None]:
    entry = _WRITERS.get(id(schema))
    if entry is None:
        entry = _WRITERS[id(schema)] = (schema, avro_writer.compile_writer(schema) or _no_fast_path)
    return entry[1]


def reframe(value: bytes, schema_id: int) -> bytes:
    """The same Avro body behind another schema id (one record written to two subjects)."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + value[_HEADER.size :]


def confluent_decode(payload: bytes) -> tuple[int, dict[str, Any]]:
    """Reads any record this project writes (outputs, dead letters, audit entries)."""
    _, schema_id = _HEADER.unpack_from(payload)
    body = io.BytesIO(payload)
    body.seek(_HEADER.size)
    return schema_id, fastavro.schemaless_reader(body, SCHEMAS_BY_ID[schema_id], None)


def dead_letter(
    payload: bytes | None,
    *,
    stage: str,
    error_type: str,
    message: str,
    key: bytes | None = None,
    topic: str | None = None,
    partition: int | None = None,
    offset: int | None = None,
    timestamp_ms: int | None = None,
    event_id: str | None = None,
    model_version: str | None = None,
) -> dict[str, Any]:
    """Builds a ``DeadLetter`` record that keeps the input and says why it failed."""
    raw = payload or b""
    return {
        "payload": raw[:DEAD_LETTER_PAYLOAD_LIMIT],
        "payload_size": len(raw),
        "key": key[:DEAD_LETTER_PAYLOAD_LIMIT] if key is not None else None,
        "topic": topic,
        "partition": partition,
        "offset": offset,
        "timestamp_ms": timestamp_ms,
        "stage": stage,
        "error_type": error_type,
        "error_message": message[:2000],
        "event_id": event_id,
        "pipeline_version": PIPELINE_VERSION,
        "schema_version": SCHEMA_VERSION,
        "model_version": model_version,
    }


def encode_dead_letter(record: dict[str, Any]) -> bytes:
    return confluent_encode(DEAD_LETTER_SCHEMA_ID, record)


def encode_event(event: dict[str, Any]) -> bytes:
    """Confluent-framed Avro for an input event (producers, tests, the demo)."""
    return confluent_encode(EVENT_SCHEMA_ID, event)


__all__ = [
    "DEAD_LETTER",
    "INCOMPATIBLE_SCHEMA",
    "UNKNOWN_SCHEMA_ID",
    "DecodeError",
    "WriterSchemas",
    "avro_body",
    "confluent_decode",
    "confluent_encode",
    "dead_letter",
    "decode_event",
    "encode_dead_letter",
    "encode_event",
    "loads_json",
    "reframe",
    "validate_event",
]
