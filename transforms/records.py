"""Assembles output records (pure functions): the corrected record and its audit entries."""

from __future__ import annotations

import base64
import datetime
import json
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from transforms.version import PIPELINE_VERSION


def record_key(event_id: str, model_version: str) -> str:
    """The de-duplication key: the same event through the same model gives the same key."""
    return f"{event_id}@{model_version}"


def coordinates(
    topic: str | None, partition: int | None, offset: int | None, timestamp_ms: int | None
) -> dict[str, Any]:
    return {"topic": topic, "partition": partition, "offset": offset, "timestamp_ms": timestamp_ms}


def corrected_record(
    event: Mapping[str, Any],
    *,
    track: Mapping[str, Any],
    corrections: Sequence[Mapping[str, Any]],
    review: Sequence[Mapping[str, Any]],
    model_version: str,
    input_coordinates: Mapping[str, Any],
    profile_version: str | None = None,
    release_date_precision: str | None = None,
) -> dict[str, Any]:
    """A ``CorrectedRecord`` dict; nothing in it depends on when or where it was computed."""
    return {
        "record_key": record_key(event["event_id"], model_version),
        "event_id": event["event_id"],
        "entity_id": event.get("entity_id"),
        "source": event.get("source"),
        "event_time": event.get("event_time"),
        "track": dict(track),
        "corrections": [dict(c) for c in corrections],
        "review": [dict(r) for r in review],
        "model_version": model_version,
        "profile_version": profile_version,
        "release_date_precision": release_date_precision,
        "pipeline_version": PIPELINE_VERSION,
        "input": dict(input_coordinates),
    }


def audit_entries(record: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """One ``AuditEntry`` per correction of a ``CorrectedRecord``."""
    for c in record["corrections"]:
        yield {
            "record_key": record["record_key"],
            "event_id": record["event_id"],
            "entity_id": record["entity_id"],
            "source": record["source"],
            "field": c["field"],
            "before": c["before"],
            "after": c["after"],
            "error_class": c["error_class"],
            "confidence": c["confidence"],
            "model_version": c["model_version"],
            "profile_version": record.get("profile_version"),
            "pipeline_version": record["pipeline_version"],
            "input": record["input"],
        }


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json_line(record: Mapping[str, Any]) -> str:
    """One output record as a JSON line: the Avro field names, dates as ISO-8601, bytes as base64."""
    return json.dumps(record, ensure_ascii=False, default=_json_default)
