"""The Avro contract: schemas parsed once, and the Confluent wire-format ids.

Usage::

    from schemas import CATALOG_UPDATE_EVENT, CORRECTED_RECORD, DEAD_LETTER, EVENT_SCHEMA_ID
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import fastavro

SCHEMA_DIR = Path(__file__).resolve().parent
SCHEMA_VERSION = "1"


def _load(filename: str) -> dict[str, Any]:
    with open(SCHEMA_DIR / filename, encoding="utf-8") as f:
        return fastavro.parse_schema(json.load(f))


def _registry() -> dict[int, str]:
    with open(SCHEMA_DIR / "registry.json", encoding="utf-8") as f:
        entries = json.load(f)
    return {int(k): v for k, v in entries.items() if not k.startswith("_")}


CATALOG_UPDATE_EVENT = _load("catalog_update_event.avsc")
CORRECTED_RECORD = _load("corrected_record.avsc")
DEAD_LETTER = _load("dead_letter.avsc")
AUDIT_ENTRY = _load("audit_entry.avsc")
ARCHIVED_EVENT = _load("archived_event.avsc")

# File name -> parsed schema; the file's text is what a schema registry is given.
SCHEMAS_BY_FILE: dict[str, dict[str, Any]] = {
    "catalog_update_event.avsc": CATALOG_UPDATE_EVENT,
    "corrected_record.avsc": CORRECTED_RECORD,
    "dead_letter.avsc": DEAD_LETTER,
    "audit_entry.avsc": AUDIT_ENTRY,
    "archived_event.avsc": ARCHIVED_EVENT,
}
# Confluent schema id -> parsed schema.
SCHEMAS_BY_ID: dict[int, dict[str, Any]] = {i: SCHEMAS_BY_FILE[f] for i, f in _registry().items()}
SCHEMA_IDS: dict[str, int] = {f: i for i, f in _registry().items()}
EVENT_SCHEMA_ID = SCHEMA_IDS["catalog_update_event.avsc"]
CORRECTED_SCHEMA_ID = SCHEMA_IDS["corrected_record.avsc"]
DEAD_LETTER_SCHEMA_ID = SCHEMA_IDS["dead_letter.avsc"]
AUDIT_SCHEMA_ID = SCHEMA_IDS["audit_entry.avsc"]


def schema_text(filename: str) -> str:
    """The ``.avsc`` file as written, for registering it with a schema registry."""
    return (SCHEMA_DIR / filename).read_text(encoding="utf-8")
