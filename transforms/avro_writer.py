"""Avro binary encoding compiled for one schema: the common case of fastavro's ``schemaless_writer``, faster.

    write = compile_writer(CORRECTED_RECORD)
    body = write(record)   # bytes, or None: not a record this writer takes; use fastavro

fastavro resolves every union branch and every logical type per value, at about 17 µs for
one corrected record; the stream writes two or three records per event. A writer compiled
from the schema once (Python source, one function per record type, each field's encoding
written out for its type) does the same walk with the types already known.

It takes only values of the exact types the schema names (``str`` for string, ``int`` and
not ``bool`` for int and long, within their ranges, ``float`` for float and double,
``datetime.date`` or ``int`` for a date, ``None`` for null, plain ``dict`` records with
exactly the schema's fields, ``list`` arrays). Anything else returns None, and the caller
hands the record to fastavro, whose result (bytes or its error) stands: a compiled writer
never changes what is written or what is refused. Schemas with other unions than
``["null", T]``, maps, enums or fixed compile to None.
"""

from __future__ import annotations

import datetime
import struct
import zlib
from collections.abc import Callable
from typing import Any

# A compiled record's function: appends the record's encoding to ``out``, or raises.
Writer = Callable[[bytearray, Any], None]

_EPOCH = datetime.date(1970, 1, 1)
_FLOAT = struct.Struct("<f")
_DOUBLE = struct.Struct("<d")
_INT_RANGE = (-(2**31), 2**31)
_LONG_RANGE = (-(2**63), 2**63)


class _NotFast(Exception):
    """A value outside the compiled writer's exact types."""


class Unsupported(ValueError):
    """A schema construct the compiler leaves to fastavro."""


def _long(out: bytearray, n: int) -> None:
    """Zig-zag varint, as Avro writes int and long."""
    if 0 <= n < 64:  # one byte: most lengths and counts
        out.append(n << 1)
        return
    n = (n << 1) ^ (n >> 63)
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


class _Source:
    """The Python source of one schema's writer: a function per named record, each field's
    encoding written out inline for its type, so a record costs one call and no dispatch."""

    def __init__(self) -> None:
        self.functions: list[list[str]] = []
        self.records: dict[str, str] = {}  # record name -> its function's name
        self._names = 0

    def name(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def record(self, schema: dict[str, Any]) -> str:
        function = self.records[schema["name"]] = self.name("_record")
        lines = [f"def {function}(out, value):",
                 # The same number of keys and every field present: no field missing, none extra.
                 f"    if type(value) is not dict or len(value) != {len(schema['fields'])}:",
                 "        raise _NotFast"]
        self.functions.append(lines)
        for f in schema["fields"]:
            var = self.name("v")
            lines.append(f"    {var} = value[{f['name']!r}]")  # a missing field: KeyError
            lines.extend(self.value(f["type"], var, "    "))
        return function

    def value(self, schema: Any, var: str, indent: str) -> list[str]:
        """Lines that append ``var`` encoded as ``schema`` to ``out``, or raise."""
        if isinstance(schema, str):
            if schema in self.records:
                return [f"{indent}{self.records[schema]}(out, {var})"]
            schema = {"type": schema}
        if isinstance(schema, list):
            branches = [b for b in schema if b != "null"]
            if len(schema) != 2 or schema[0] != "null" or len(branches) != 1:
                raise Unsupported(f"union {schema!r}")
            inner = self.value(branches[0], var, indent + "    ")
            # Branch 1, zig-zag encoded, is 2.
            return [f"{indent}if {var} is None:", f"{indent}    out.append(0)",
                    f"{indent}else:", f"{indent}    out.append(2)", *inner]
        kind = schema.get("type")
        logical = schema.get("logicalType")
        if logical is not None:
            if logical == "date" and kind == "int":
                return [f"{indent}if type({var}) is _date_type:",
                        f"{indent}    _long(out, ({var} - _EPOCH).days)",
                        f"{indent}elif type({var}) is int and {_INT_RANGE[0]} <= {var} < {_INT_RANGE[1]}:",
                        f"{indent}    _long(out, {var})",
                        f"{indent}else:",
                        f"{indent}    raise _NotFast"]
            raise Unsupported(f"logical type {logical!r}")
        if kind == "record":
            function = self.record(schema)
            return [f"{indent}{function}(out, {var})"]
        if kind == "array":
            item = self.name("v")
            return [f"{indent}if type({var}) is not list:", f"{indent}    raise _NotFast",
                    f"{indent}if {var}:", f"{indent}    _long(out, len({var}))",
                    f"{indent}    for {item} in {var}:", *self.value(schema["items"], item, indent + "        "),
                    f"{indent}out.append(0)"]
        if kind in ("string", "bytes"):
            encode = [f"{indent}data = {var}.encode()"] if kind == "string" else [f"{indent}data = {var}"]
            return [f"{indent}if type({var}) is not {'str' if kind == 'string' else 'bytes'}:",
                    f"{indent}    raise _NotFast", *encode,
                    f"{indent}if len(data) < 64:",  # one byte: most lengths
                    f"{indent}    out.append(len(data) << 1)",
                    f"{indent}else:",
                    f"{indent}    _long(out, len(data))",
                    f"{indent}out += data"]
        if kind == "boolean":
            return [f"{indent}if {var} is True:", f"{indent}    out.append(1)",
                    f"{indent}elif {var} is False:", f"{indent}    out.append(0)",
                    f"{indent}else:", f"{indent}    raise _NotFast"]
        if kind == "null":
            return [f"{indent}if {var} is not None:", f"{indent}    raise _NotFast"]
        if kind in ("int", "long"):
            low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
            return [f"{indent}if type({var}) is not int or not {low} <= {var} < {high}:",
                    f"{indent}    raise _NotFast",
                    f"{indent}_long(out, {var})"]
        if kind in ("float", "double"):
            # NaN's bits are fastavro's (its C cast) to choose.
            return [f"{indent}if type({var}) is not float or {var} != {var}:",
                    f"{indent}    raise _NotFast",
                    f"{indent}out += _pack_{kind}({var})"]
        raise Unsupported(f"type {kind!r}")


def _compile(schema: dict[str, Any]) -> Writer:
    source = _Source()
    if schema.get("type") != "record":
        raise Unsupported("not a record schema")
    root = source.record(schema)
    namespace: dict[str, Any] = {"_NotFast": _NotFast, "_long": _long, "_EPOCH": _EPOCH,
                                 "_date_type": datetime.date, "_pack_float": _FLOAT.pack,
                                 "_pack_double": _DOUBLE.pack}
    # The source is ours: names are generated, and the schema's field names enter only as repr() literals.
    exec("\n\n".join("\n".join(lines) for lines in source.functions), namespace)
    return namespace[root]


def compile_writer(schema: dict[str, Any]) -> Callable[[Any], bytes | None] | None:
    """A writer for a parsed record schema; None when the schema has constructs left to fastavro."""
    try:
        root = _compile(schema)
    except Unsupported:
        return None

    def write(record: Any) -> bytes | None:
        out = bytearray()
        try:
            root(out, record)
        except (_NotFast, KeyError, UnicodeEncodeError, OverflowError):
            return None
        return bytes(out)

    return write


def container_header(schema_json: str, codec: str, sync_marker: bytes) -> bytes:
    """The header of an Avro container file: the magic bytes, the metadata map (the writer's
    schema as the JSON text given, the codec's name) and the sync marker.

    The schema goes in as text, not as a parsed schema: fastavro writes a parsed schema's
    JSON in its dicts' key order, which differs from one process to the next.
    """
    metadata = {"avro.codec": codec.encode("utf-8"), "avro.schema": schema_json.encode("utf-8")}
    out = bytearray(b"Obj\x01")
    _long(out, len(metadata))
    for key, value in metadata.items():
        _long(out, len(key))
        out += key.encode("utf-8")
        _long(out, len(value))
        out += value
    out.append(0)  # the end of the map
    return bytes(out + sync_marker)


def deflate_block(bodies: list[bytes]) -> bytes:
    """One block of an Avro container file with the "deflate" codec, all but its sync marker:
    the record count, the data's size, then the records' bodies compressed as one raw deflate
    stream (as the Avro spec's codec asks: no zlib header).

    >>> import fastavro, io, json
    >>> schema = {"type": "record", "name": "R", "fields": [{"name": "n", "type": "long"}]}
    >>> write = compile_writer(fastavro.parse_schema(schema))
    >>> file = (container_header(json.dumps(schema), "deflate", b"s" * 16)
    ...         + deflate_block([write({"n": n}) for n in (1, 2)]) + b"s" * 16)
    >>> list(fastavro.reader(io.BytesIO(file)))
    [{'n': 1}, {'n': 2}]
    """
    compressor = zlib.compressobj(zlib.Z_DEFAULT_COMPRESSION, zlib.DEFLATED, -zlib.MAX_WBITS)
    data = compressor.compress(b"".join(bodies)) + compressor.flush()
    out = bytearray()
    _long(out, len(bodies))
    _long(out, len(data))
    return bytes(out + data)
