"""Keeps the raw input events as Avro files, so history outlives Kafka retention.

Each bundle writes one file per (topic, partition, hour of record time)::

    <archive_dir>/dt=2026-11-25/hour=14/<topic>-p<partition>-<first>-<last>.avro

Files hold ``ArchivedEvent`` records (the Kafka record with its coordinates),
which ``metafix replay --input '<archive_dir>/**/*.avro'`` reads back into the
same records the stream saw, so a replay gives byte-identical outputs. A file is
written under a temporary name and renamed in ``finish_bundle``, before the
bundle's offsets are committed. A retried bundle that covers the same offsets
rewrites the same file; one split differently can leave overlapping files, so
the archive is at-least-once like the outputs (``record_key`` de-duplicates).
"""

from __future__ import annotations

import datetime
import posixpath
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import apache_beam as beam
import fastavro
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from schemas import ARCHIVED_EVENT


def archive_path(archive_dir: str, topic: str, partition: int, first: int, last: int, timestamp_ms: int) -> str:
    hour = datetime.datetime.fromtimestamp(timestamp_ms / 1000, datetime.UTC)
    return posixpath.join(
        archive_dir,
        f"dt={hour:%Y-%m-%d}",
        f"hour={hour:%H}",
        f"{topic}-p{partition}-{first:020d}-{last:020d}.avro",
    )


def to_archived(record: Any) -> dict[str, Any]:
    return {
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "timestamp_ms": record.timestamp_ms,
        "key": record.key,
        "value": record.value if record.value is not None else b"",
    }


def write_archive_file(path: str, rows: Iterable[dict[str, Any]]) -> None:
    tmp = path + ".inprogress"
    with FileSystems.create(tmp) as f:
        fastavro.writer(f, ARCHIVED_EVENT, rows, codec="deflate")
    if FileSystems.exists(path):
        FileSystems.delete([path])
    FileSystems.rename([tmp], [path])


class _ArchiveFn(beam.DoFn):
    def __init__(self, archive_dir: str):
        self._archive_dir = archive_dir
        self._files = Metrics.counter("metafix", "archive_files")
        self._archived = Metrics.counter("metafix", "archived_records")

    def start_bundle(self) -> None:
        self._groups: dict[tuple[str, int, int], list[Any]] = defaultdict(list)

    def process(self, batch: Iterable[Any]) -> None:
        for record in batch:
            self._groups[(record.topic, record.partition, record.timestamp_ms // 3_600_000)].append(record)

    def finish_bundle(self) -> None:
        for (topic, partition, _), group in self._groups.items():
            path = archive_path(
                self._archive_dir, topic, partition, group[0].offset, group[-1].offset, group[0].timestamp_ms
            )
            write_archive_file(path, map(to_archived, group))
            self._files.inc()
            self._archived.inc(len(group))
        self._groups.clear()


class ArchiveEvents(beam.PTransform):
    """Writes every raw input record to time-partitioned Avro files (no output).

    Its input is ReadFromKafka's: batches of records.
    """

    def __init__(self, archive_dir: str):
        super().__init__()
        self._archive_dir = archive_dir

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return records | "WriteArchiveFiles" >> beam.ParDo(_ArchiveFn(self._archive_dir))
