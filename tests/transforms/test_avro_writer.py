"""The compiled Avro writers give fastavro's bytes, and leave every other record to fastavro."""

from __future__ import annotations

import datetime
import io
import random
from typing import Any

import fastavro
import pytest

from schemas import SCHEMAS_BY_FILE, schema_text
from transforms import codec
from transforms.avro_writer import compile_writer, container_header, deflate_block

SCHEMAS = sorted(SCHEMAS_BY_FILE)

_TEXT = ["", "a", "KAROL G", "Beyoncé", "渋谷系", "🎵 emoji", "x" * 300, "tab\tnew\nline", "\x00nul"]
_INTS = [0, 1, -1, 63, 64, -64, -65, 127, 128, 8191, 8192, 2**31 - 1, -(2**31), 123_456_789]
_LONGS = [*_INTS, 2**31, 2**40, -(2**40), 2**63 - 1, -(2**63)]


def _value(schema: Any, rng: random.Random, named: dict[str, Any]) -> Any:
    """A random value that fits ``schema`` (a parsed fastavro schema)."""
    if isinstance(schema, list):
        return _value(rng.choice(schema), rng, named)
    if isinstance(schema, str):
        if schema in named:
            return _value(named[schema], rng, named)
        schema = {"type": schema}
    kind = schema["type"]
    if schema.get("logicalType") == "date":
        return rng.choice([datetime.date(rng.randint(1, 9999), rng.randint(1, 12), rng.randint(1, 28)),
                           rng.choice(_INTS)])
    if kind == "record":
        named[schema["name"]] = schema
        return {f["name"]: _value(f["type"], rng, named) for f in schema["fields"]}
    if kind == "array":
        return [_value(schema["items"], rng, named) for _ in range(rng.choice([0, 0, 1, 2, 5, 70]))]
    return {
        "null": lambda: None,
        "string": lambda: rng.choice(_TEXT) + rng.choice(_TEXT),
        "bytes": lambda: rng.randbytes(rng.choice([0, 1, 10, 200])),
        "boolean": lambda: rng.random() < 0.5,
        "int": lambda: rng.choice(_INTS),
        "long": lambda: rng.choice(_LONGS),
        "float": lambda: rng.choice([0.0, 0.5, -1.25, 0.999, 1e-8, rng.random()]),
        "double": lambda: rng.random(),
    }[kind]()


def _fastavro(schema: dict, record: Any) -> bytes:
    buf = io.BytesIO()
    fastavro.schemaless_writer(buf, schema, record, strict=True)
    return buf.getvalue()


@pytest.mark.parametrize("name", SCHEMAS)
def test_every_fitting_record_is_written_as_fastavro_writes_it(name: str) -> None:
    schema = SCHEMAS_BY_FILE[name]
    write = compile_writer(schema)
    assert write is not None
    rng = random.Random(name)
    for _ in range(3000):
        record = _value(schema, rng, {})
        assert write(record) == _fastavro(schema, record)


# Values that are off the compiled writer's exact types: each is fastavro's to write or refuse.
_ODD = [True, False, 1.0, 3, "3", b"3", None, [], {}, datetime.datetime(2024, 1, 2, 3, 4),
        2**31, 2**63, -(2**63) - 1, "\ud800 lone surrogate", ("a",), 2.5e40, float("nan"), float("inf")]


@pytest.mark.parametrize("name", SCHEMAS)
def test_a_record_off_the_fast_path_is_left_to_fastavro(name: str) -> None:
    schema = SCHEMAS_BY_FILE[name]
    write = compile_writer(schema)
    rng = random.Random(f"odd {name}")
    declined = 0
    for _ in range(2000):
        record = _value(schema, rng, {})
        target, path = record, []
        # Replace one value somewhere in the record, or drop or add a field.
        while isinstance(target, dict) and target and rng.random() < 0.6:
            key = rng.choice(sorted(target))
            if not isinstance(target[key], dict):
                break
            target = target[key]
        key = rng.choice(sorted(target))
        change = rng.choice(["replace", "replace", "drop", "add"])
        if change == "replace":
            target[key] = rng.choice(_ODD)
        elif change == "drop":
            del target[key]
        else:
            target["unexpected"] = 1
        body = write(record)
        if body is None:
            declined += 1
        else:
            # Taken only where fastavro writes the same bytes.
            assert body == _fastavro(schema, record), (path, record)
    assert declined > 1000


def test_confluent_encode_gives_fastavro_bytes_or_fastavro_error() -> None:
    schema = SCHEMAS_BY_FILE["corrected_record.avsc"]
    record = _value(schema, random.Random(1), {})
    assert codec.confluent_encode(7, record, schema)[5:] == _fastavro(schema, record)
    record["track"]["duration_ms"] = "not a number"
    with pytest.raises((ValueError, TypeError)) as compiled:
        codec.confluent_encode(7, record, schema)
    with pytest.raises(type(compiled.value)):
        _fastavro(schema, record)


def _reads_back(schema: dict, record: Any) -> bool:
    """Whether fastavro reads the record back (it cannot turn some day counts into dates)."""
    try:
        fastavro.schemaless_reader(io.BytesIO(_fastavro(schema, record)), schema, None)
    except (OverflowError, ValueError):
        return False
    return True


def test_blocks_of_bodies_make_a_container_fastavro_reads_back() -> None:
    schema = SCHEMAS_BY_FILE["corrected_record.avsc"]
    rng = random.Random("blocks")
    readable = (r for r in iter(lambda: _value(schema, rng, {}), None) if _reads_back(schema, r))
    batches = [[next(readable) for _ in range(n)] for n in (1, 300, 2)]
    file = container_header(schema_text("corrected_record.avsc"), "deflate", b"\x5a" * 16) + b"".join(
        deflate_block([codec.avro_body(schema, r) for r in batch]) + b"\x5a" * 16 for batch in batches)

    read = list(fastavro.reader(io.BytesIO(file)))
    # What fastavro reads back from its own file of the same records.
    own = io.BytesIO()
    fastavro.writer(own, schema, [r for batch in batches for r in batch], codec="deflate")
    assert read == list(fastavro.reader(io.BytesIO(own.getvalue())))
    assert len(read) == 303
