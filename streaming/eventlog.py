"""Event-log files (JSON lines, Avro events, the stream's Avro archive) as batches of records.

``metafix replay`` and ``metafix profile`` read logs the same way::

    batches = p | "ReadEventLog" >> ReadEventLog("archive/**/*.avro")   # RecordBatch elements
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any, NamedTuple

import apache_beam as beam
import fastavro
from apache_beam.io import fileio
from apache_beam.io.filesystems import FileSystems

from streaming.composites import EventRecord, RecordBatch
from streaming.kafka_clients import KafkaRecord

# Records per element read from a file: a few model batches, so that scoring stays efficient
# and one element's outputs stay small. Avro blocks are never cut; lines never either.
RECORDS_PER_RANGE = 2048
_AVRO_MAGIC = b"Obj\x01"
_SYNC_SIZE = 16


class FileRange(NamedTuple):
    """Whole Avro blocks or whole lines of one input file: [start, end) in bytes.

    ``file_index`` is the file's place among the matched files (sorted by path), so the
    outputs can be put back in input order.
    """

    path: str
    file_index: int
    start: int
    end: int


def matched_bytes(pattern: str) -> int:
    """The size of the files a pattern matches, read from the filesystem's listing."""
    [result] = FileSystems.match([pattern])
    return sum(m.size_in_bytes for m in result.metadata_list)


def _read_long(f: Any) -> int:
    """One zig-zag varint (Avro long) from a binary file."""
    shift, value = 0, 0
    while True:
        byte = f.read(1)
        if not byte:
            raise EOFError("Avro file ends inside a number")
        b = byte[0]
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return (value >> 1) ^ -(value & 1)
        shift += 7


def avro_header_size(f: Any) -> int:
    """Bytes of an Avro container's header (magic, metadata map, sync marker); ``f`` at offset 0."""
    if f.read(4) != _AVRO_MAGIC:
        raise ValueError("not an Avro container file")
    while True:
        count = _read_long(f)
        if count == 0:
            break
        if count < 0:
            _read_long(f)  # the block's size in bytes, then |count| entries as usual
            count = -count
        for _ in range(2 * count):
            f.seek(_read_long(f), io.SEEK_CUR)
    f.seek(_SYNC_SIZE, io.SEEK_CUR)
    return f.tell()


def avro_block_ranges(path: str, file_index: int, records_per_range: int = RECORDS_PER_RANGE) -> Iterator[FileRange]:
    """Runs of whole blocks of an Avro container, each of at least ``records_per_range`` records
    (but the last): only the block headers are read, nothing is decoded."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        start = position = avro_header_size(f)
        in_range = 0
        while f.read(1):
            f.seek(-1, io.SEEK_CUR)
            in_range += _read_long(f)
            f.seek(_read_long(f) + _SYNC_SIZE, io.SEEK_CUR)
            position = f.tell()
            if in_range >= records_per_range:
                yield FileRange(path, file_index, start, position)
                start, in_range = position, 0
        if in_range:
            yield FileRange(path, file_index, start, position)


def line_ranges(path: str, file_index: int, records_per_range: int = RECORDS_PER_RANGE) -> Iterator[FileRange]:
    """Runs of ``records_per_range`` whole lines of a text file (the last may be shorter)."""
    with FileSystems.open(path, compression_type="uncompressed") as f:
        start = position = 0
        lines = 0
        for line in f:
            position += len(line)
            lines += 1
            if lines == records_per_range:
                yield FileRange(path, file_index, start, position)
                start, lines = position, 0
        if lines:
            yield FileRange(path, file_index, start, position)


class _ListRangesFn(beam.DoFn):
    """All matched files (one element: their sorted metadata) to FileRanges.

    ``_after`` is a side input read only for its order: no range is listed before it is complete.
    """

    def process(self, matched: list[Any], _after: Any = ()) -> Iterator[FileRange]:
        for index, path in enumerate(sorted(m.path for m in matched)):
            ranges = avro_block_ranges if path.endswith(".avro") else line_ranges
            yield from ranges(path, index)


def _read_range(path: str, start: int, end: int) -> bytes:
    with FileSystems.open(path, compression_type="uncompressed") as f:
        f.seek(start)
        return f.read(end - start)


def _from_avro(row: dict[str, Any]) -> KafkaRecord | EventRecord:
    if "value" in row and "event_id" not in row:
        return KafkaRecord(row["topic"], row["partition"], row["offset"], row["timestamp_ms"], row["key"], row["value"])
    return EventRecord(None, None, None, None, None, row)


def _from_text_line(path: str, line: bytes) -> KafkaRecord:
    # The file name stands in for the topic, so a dead letter says where its line came from.
    return KafkaRecord(path, None, None, None, None, line)


class _ReadRangeFn(beam.DoFn):
    """A FileRange to one RecordBatch: Avro rows or the range's non-blank lines."""

    def setup(self) -> None:
        self._headers: dict[str, bytes] = {}

    def process(self, file_range: FileRange) -> Iterator[RecordBatch]:
        path = file_range.path
        data = _read_range(path, file_range.start, file_range.end)
        if path.endswith(".avro"):
            header = self._headers.get(path)
            if header is None:
                with FileSystems.open(path, compression_type="uncompressed") as f:
                    size = avro_header_size(f)
                    f.seek(0)
                    header = self._headers[path] = f.read(size)
            batch = list(map(_from_avro, fastavro.reader(io.BytesIO(header + data))))
        else:
            batch = [_from_text_line(path, line) for line in data.splitlines() if line.strip()]
        yield RecordBatch((file_range.file_index, file_range.start), batch)


class ReadEventLog(beam.PTransform):
    """Event-log files (JSON lines or Avro) as RecordBatches of Kafka-like records, in bounded memory.

    Files are cut into ranges of whole Avro blocks or whole lines; the ranges are reshuffled,
    so that with several worker processes each reads and corrects its share; each range is
    read and decoded only where it is processed. Avro rows of ``CatalogUpdateEvent`` come
    out as EventRecords, decoded once; rows of ``ArchivedEvent`` as the Kafka records they were.

    ``after``: a PCollection that must be complete before anything is read (a replay's
    profile of the same files). Waiting at the listing, which is one element, holds back
    the whole read on every runner, and nothing of it waits in memory.
    """

    def __init__(self, pattern: str, after: beam.PCollection | None = None):
        super().__init__()
        self._pattern = pattern
        self._after = after

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        after = () if self._after is None else (beam.pvalue.AsList(self._after),)
        return (
            pbegin
            | "MatchFiles" >> fileio.MatchFiles(self._pattern)
            | "AllFiles" >> beam.combiners.ToList()
            | "ListRanges" >> beam.ParDo(_ListRangesFn(), *after)
            | "SpreadRanges" >> beam.Reshuffle()
            | "ReadRanges" >> beam.ParDo(_ReadRangeFn()).with_output_types(RecordBatch)
        )
