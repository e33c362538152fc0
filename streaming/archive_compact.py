"""``metafix archive compact``: merges a closed hour's small archive files into a few large ones.

    metafix archive compact --archive-dir archive/                          # closed hours of the last day
    metafix archive compact --archive-dir gs://bucket/archive --hour dt=2026-11-25/hour=14
    metafix archive compact --archive-dir archive/ --closed-before 2026-11-26T00:00:00Z --lookback-hours 720

The stream writes one file per bundle and partition (``streaming/archive.py``),
about 4 million small files a day at 1,000 events/s. This batch job rewrites
each (topic, partition) of an hour as one file, or one per ``--max-file-bytes``
(128 MiB by default)::

    <hour>/<topic>-p<partition>-<first>-<last>.compacted-<digest>.avro

in offset order, so ``metafix replay --input '<archive_dir>/**/*.avro'`` reads
compacted and uncompacted hours alike. ``<digest>`` hashes the file's records,
so a name always stands for one content.

Per partition, crash-safe and idempotent:

1. merge the inputs in offset order into ``<hour>/_compaction/*.inprogress``;
2. verify: re-read the new files and check they hold the same records (count and
   an order-independent digest) as were read from the inputs, in offset order,
   all of this topic and partition;
3. commit: write ``<hour>/_compaction/<topic>-p<partition>.json``, naming the
   inputs and the new files;
4. publish the new files under their final names, delete the inputs, delete the
   manifest.

A re-run that finds a manifest finishes steps 4 (roll forward); one that finds
``.inprogress`` files without a manifest discards them and starts again; an
hour already compacted is left alone. Between steps 4's publish and delete a
replay can read a record twice (the archive is at-least-once anyway, and
``record_key`` de-duplicates); it never misses one. Run one compaction of an
hour at a time.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import heapq
import json
import logging
import posixpath
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

import apache_beam as beam
import fastavro
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from schemas import ARCHIVED_EVENT
from streaming.composites import METRICS_NAMESPACE
from streaming.metrics_summary import collect
from streaming.options import BothSpellings, ConfigError, MetafixOptions, parse_time_ms
from streaming.runners import with_local_defaults

log = logging.getLogger("metafix")

HOUR_MS = 3_600_000
DEFAULT_MAX_FILE_BYTES = 128 * 1024 * 1024
WORK_DIR = "_compaction"
_NAME = re.compile(
    r"^(?P<topic>.+)-p(?P<partition>\d+)-(?P<first>\d{20})-(?P<last>\d{20})"
    r"(?P<compacted>\.compacted-[0-9a-f]{16})?\.avro$"
)
_MANIFEST = re.compile(r"^(?P<topic>.+)-p(?P<partition>\d+)\.json$")
_HOUR = re.compile(r"^dt=\d{4}-\d{2}-\d{2}/hour=\d{2}$")
# Per-record Avro overhead beyond key and value (coordinates, union branches), for rolling by size.
_RECORD_OVERHEAD_BYTES = 40


class CompactionError(RuntimeError):
    """A partition could not be compacted; its inputs are left as they were."""


# ----------------------------------------------------------------------------- pure planning


@dataclass(frozen=True, order=True)
class ArchiveFile:
    """One archive file of an hour, as its name describes it (sorts by offset range)."""

    first: int
    last: int
    name: str
    topic: str
    partition: int
    compacted: bool


def parse_archive_name(name: str) -> ArchiveFile | None:
    """The file an archive file name describes, or None for anything else.

    >>> parse_archive_name("updates-p2-00000000000000000010-00000000000000000019.avro").partition
    2
    """
    m = _NAME.match(name)
    if m is None:
        return None
    return ArchiveFile(int(m["first"]), int(m["last"]), name, m["topic"], int(m["partition"]),
                       m["compacted"] is not None)


def compacted_name(topic: str, partition: int, first: int, last: int, digest: str) -> str:
    return f"{topic}-p{partition}-{first:020d}-{last:020d}.compacted-{digest[:16]}.avro"


def manifest_name(topic: str, partition: int) -> str:
    return posixpath.join(WORK_DIR, f"{topic}-p{partition}.json")


def part_name(topic: str, partition: int, index: int) -> str:
    # Not *.avro, so no replay glob reads a file that is not yet verified.
    return posixpath.join(WORK_DIR, f"{topic}-p{partition}-part{index:05d}.avro.inprogress")


@dataclass(frozen=True)
class PartitionPlan:
    """The work for one (topic, partition) of an hour."""

    hour_dir: str
    topic: str
    partition: int
    inputs: tuple[ArchiveFile, ...]
    committed: bool  # a manifest says a verified merge waits to be published


def plan_hour(hour_dir: str, names: Iterable[str], manifests: Iterable[str]) -> list[PartitionPlan]:
    """What to do in one hour: finish every committed merge, merge every partition of several files.

    A partition that is one file already, or only compacted files (rolled by size), is left alone.
    """
    groups: dict[tuple[str, int], list[ArchiveFile]] = {}
    for name in names:
        f = parse_archive_name(name)
        if f is not None:
            groups.setdefault((f.topic, f.partition), []).append(f)
    committed = set()
    for name in manifests:
        m = _MANIFEST.match(name)
        if m:
            committed.add((m["topic"], int(m["partition"])))
    plans = []
    for key in sorted(set(groups) | committed):
        files = tuple(sorted(groups.get(key, ())))
        if key in committed or (len(files) > 1 and not all(f.compacted for f in files)):
            plans.append(PartitionPlan(hour_dir, key[0], key[1], files, key in committed))
    return plans


def overlap_runs(files: Sequence[ArchiveFile]) -> list[list[ArchiveFile]]:
    """Files in offset order, grouped into runs whose offset ranges overlap.

    Bundles cover disjoint ranges, so most runs are one file and the merge keeps
    one file open at a time; only a retried bundle split differently overlaps.
    """
    runs: list[list[ArchiveFile]] = []
    end = -1
    for f in sorted(files):
        if runs and f.first <= end:
            runs[-1].append(f)
            end = max(end, f.last)
        else:
            runs.append([f])
            end = f.last
    return runs


def merge_in_offset_order(runs: Sequence[Sequence[ArchiveFile]],
                          read: Callable[[ArchiveFile], Iterator[dict[str, Any]]]) -> Iterator[dict[str, Any]]:
    """The records of all runs, by offset; equal offsets keep file order (a stable merge)."""
    for run in runs:
        if len(run) == 1:
            yield from read(run[0])
        else:
            yield from heapq.merge(*(read(f) for f in run), key=_offset)


def _offset(row: dict[str, Any]) -> int:
    return row["offset"]


def closed_hours(cutoff_ms: int, lookback_hours: int) -> list[str]:
    """The ``dt=…/hour=…`` partitions of the ``lookback_hours`` hours that ended at or before ``cutoff_ms``.

    >>> closed_hours(parse_time_ms("2026-11-25T15:10:00Z"), 2)
    ['dt=2026-11-25/hour=13', 'dt=2026-11-25/hour=14']
    """
    last = cutoff_ms // HOUR_MS - 1
    return [hour_partition(h) for h in range(last - lookback_hours + 1, last + 1)]


def hour_partition(hour_index: int) -> str:
    hour = datetime.datetime.fromtimestamp(hour_index * 3600, datetime.UTC)
    return f"dt={hour:%Y-%m-%d}/hour={hour:%H}"


# ----------------------------------------------------------------------------- record digests


def record_digest(row: dict[str, Any]) -> bytes:
    """SHA-256 of an ArchivedEvent's fields, each length-prefixed (None distinct from empty)."""
    h = hashlib.sha256()
    for name in ("topic", "partition", "offset", "timestamp_ms", "key", "value"):
        value = row[name]
        if value is None:
            h.update(b"\xff")
            continue
        data = value.encode("utf-8") if isinstance(value, str) else (
            value if isinstance(value, bytes) else str(value).encode("ascii"))
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.digest()


@dataclass
class Tally:
    """Count and order-independent digest (a sum of record digests) of a set of records."""

    records: int = 0
    digest_sum: int = 0

    def add(self, digest: bytes) -> None:
        self.records += 1
        self.digest_sum = (self.digest_sum + int.from_bytes(digest, "big")) % (1 << 256)


@dataclass
class Part:
    """One merged output file as written: its offsets, records and content digest."""

    index: int
    first: int | None = None
    last: int | None = None
    records: int = 0
    approx_bytes: int = 0
    content: Any = field(default_factory=hashlib.sha256)

    def add(self, row: dict[str, Any], digest: bytes) -> None:
        if self.first is None:
            self.first = row["offset"]
        self.last = row["offset"]
        self.records += 1
        self.approx_bytes += len(row["value"]) + len(row["key"] or b"") + _RECORD_OVERHEAD_BYTES
        self.content.update(digest)


def write_parts(rows: Iterable[dict[str, Any]], create: Callable[[int], IO[bytes]], max_file_bytes: int) -> list[Part]:
    """Writes rows into Avro files of about ``max_file_bytes`` (uncompressed) each, in order."""
    parts: list[Part] = []
    f = writer = None
    try:
        for row in rows:
            if writer is None:
                parts.append(Part(len(parts)))
                f = create(parts[-1].index)
                writer = fastavro.write.Writer(f, ARCHIVED_EVENT, codec="deflate")
            writer.write(row)
            parts[-1].add(row, record_digest(row))
            if parts[-1].approx_bytes >= max_file_bytes:
                writer.flush()
                f.close()
                f = writer = None
    finally:
        if writer is not None:
            writer.flush()
        if f is not None:
            f.close()
    return parts


def check_merged(topic: str, partition: int, rows: Iterable[dict[str, Any]], expected: Tally) -> None:
    """Raises CompactionError unless ``rows`` are exactly the expected records, in offset order."""
    seen = Tally()
    previous = -1
    for row in rows:
        if (row["topic"], row["partition"]) != (topic, partition):
            raise CompactionError(f"a record of {row['topic']}/{row['partition']} in {topic}/{partition}")
        if row["offset"] < previous:
            raise CompactionError(f"offset {row['offset']} after {previous}: not in offset order")
        previous = row["offset"]
        seen.add(record_digest(row))
    if (seen.records, seen.digest_sum) != (expected.records, expected.digest_sum):
        raise CompactionError(f"merged {seen.records} records, read {expected.records}, or their contents differ")


# ----------------------------------------------------------------------------- file system steps


def _open(path: str) -> IO[bytes]:
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _create(path: str) -> IO[bytes]:
    return FileSystems.create(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _read_rows(path: str) -> Iterator[dict[str, Any]]:
    with _open(path) as f:
        yield from fastavro.reader(f)


def _delete_if_present(paths: Sequence[str]) -> None:
    present = [p for p in paths if FileSystems.exists(p)]
    if present:
        FileSystems.delete(present)


def list_hour(hour_dir: str) -> tuple[list[str], list[str], list[str]]:
    """Base names of the hour's archive files, and the manifests and part files under its work folder."""

    def names(pattern: str) -> list[str]:
        matched = FileSystems.match([pattern])[0].metadata_list
        return sorted(posixpath.basename(m.path) for m in matched)

    work = posixpath.join(hour_dir, WORK_DIR)
    return (names(posixpath.join(hour_dir, "*.avro")), names(posixpath.join(work, "*.json")),
            names(posixpath.join(work, "*.inprogress")))


def plan_hour_dir(hour_dir: str) -> list[PartitionPlan]:
    archive_files, manifests, _ = list_hour(hour_dir)
    return plan_hour(hour_dir, archive_files, manifests)


@dataclass(frozen=True)
class CompactionResult:
    hour_dir: str
    topic: str
    partition: int
    status: str  # compacted | recovered | failed
    files_in: int = 0
    files_out: int = 0
    records: int = 0
    error: str | None = None


def compact_partition(plan: PartitionPlan, max_file_bytes: int) -> CompactionResult:
    """Merges, verifies, commits and publishes one partition of an hour (or finishes a committed merge)."""
    if plan.committed:
        manifest = _read_manifest(plan)
        finish_compaction(plan.hour_dir, manifest)
        return CompactionResult(plan.hour_dir, plan.topic, plan.partition, "recovered",
                                len(manifest["inputs"]), len(manifest["outputs"]), manifest["records"])
    _discard_uncommitted_parts(plan)
    read = Tally()
    finished: list[ArchiveFile] = []

    def read_file(f: ArchiveFile) -> Iterator[dict[str, Any]]:
        for row in _read_rows(posixpath.join(plan.hour_dir, f.name)):
            read.add(record_digest(row))
            yield row
        finished.append(f)

    rows = merge_in_offset_order(overlap_runs(plan.inputs), read_file)
    parts = write_parts(rows, lambda i: _create(posixpath.join(plan.hour_dir, part_name(plan.topic, plan.partition, i))),
                        max_file_bytes)
    if len(finished) != len(plan.inputs):
        raise CompactionError(f"read {len(finished)} of {len(plan.inputs)} input files to the end")
    temps = [posixpath.join(plan.hour_dir, part_name(plan.topic, plan.partition, p.index)) for p in parts]
    check_merged(plan.topic, plan.partition, (row for t in temps for row in _read_rows(t)), read)
    manifest = {
        "topic": plan.topic,
        "partition": plan.partition,
        "inputs": [f.name for f in plan.inputs],
        "outputs": [{"part": part_name(plan.topic, plan.partition, p.index),
                     "name": compacted_name(plan.topic, plan.partition, p.first, p.last, p.content.hexdigest()),
                     "records": p.records} for p in parts],
        "records": read.records,
    }
    _write_manifest(plan, manifest)
    finish_compaction(plan.hour_dir, manifest)
    return CompactionResult(plan.hour_dir, plan.topic, plan.partition, "compacted",
                            len(plan.inputs), len(parts), read.records)


def finish_compaction(hour_dir: str, manifest: dict[str, Any]) -> None:
    """Publishes a committed merge's files, deletes its inputs, then its manifest; safe to repeat."""
    published = []
    for out in manifest["outputs"]:
        part, final = posixpath.join(hour_dir, out["part"]), posixpath.join(hour_dir, out["name"])
        if FileSystems.exists(part):
            if FileSystems.exists(final):
                # An object store's rename (copy, then delete) stopped half way; the name
                # carries the content digest, so the published copy is the same file.
                FileSystems.delete([part])
            else:
                FileSystems.rename([part], [final])
        elif not FileSystems.exists(final):
            raise CompactionError(f"{out['name']} is neither published nor staged; inputs kept")
        published.append(out["name"])
    _delete_if_present([posixpath.join(hour_dir, name) for name in manifest["inputs"] if name not in published])
    FileSystems.delete([posixpath.join(hour_dir, manifest_name(manifest["topic"], manifest["partition"]))])


def _discard_uncommitted_parts(plan: PartitionPlan) -> None:
    # Parts without a manifest were never verified: a crash before the commit left them.
    _, _, parts = list_hour(plan.hour_dir)
    prefix = f"{plan.topic}-p{plan.partition}-part"
    _delete_if_present([posixpath.join(plan.hour_dir, WORK_DIR, n) for n in parts if n.startswith(prefix)])


def _write_manifest(plan: PartitionPlan, manifest: dict[str, Any]) -> None:
    path = posixpath.join(plan.hour_dir, manifest_name(plan.topic, plan.partition))
    with _create(path + ".inprogress") as f:
        f.write(json.dumps(manifest, indent=1, sort_keys=True).encode("utf-8"))
    FileSystems.rename([path + ".inprogress"], [path])


def _read_manifest(plan: PartitionPlan) -> dict[str, Any]:
    with _open(posixpath.join(plan.hour_dir, manifest_name(plan.topic, plan.partition))) as f:
        return json.loads(f.read().decode("utf-8"))


# ----------------------------------------------------------------------------- Beam batch job


class _CompactPartitionFn(beam.DoFn):
    def __init__(self, max_file_bytes: int):
        self._max_file_bytes = max_file_bytes
        self._partitions = Metrics.counter(METRICS_NAMESPACE, "archive_partitions_compacted")
        self._recovered = Metrics.counter(METRICS_NAMESPACE, "archive_partitions_recovered")
        self._failed = Metrics.counter(METRICS_NAMESPACE, "archive_partitions_failed")
        self._files_in = Metrics.counter(METRICS_NAMESPACE, "archive_files_merged")
        self._files_out = Metrics.counter(METRICS_NAMESPACE, "archive_files_written")
        self._records = Metrics.counter(METRICS_NAMESPACE, "archive_records_compacted")

    def process(self, plan: PartitionPlan) -> Iterator[CompactionResult]:
        try:
            result = compact_partition(plan, self._max_file_bytes)
        except Exception as e:  # noqa: BLE001 - one partition's failure is reported, the others go on
            log.error("archive compact: %s %s/%d failed: %s", plan.hour_dir, plan.topic, plan.partition, e)
            self._failed.inc()
            yield CompactionResult(plan.hour_dir, plan.topic, plan.partition, "failed", error=f"{type(e).__name__}: {e}")
            return
        (self._recovered if result.status == "recovered" else self._partitions).inc()
        self._files_in.inc(result.files_in)
        self._files_out.inc(result.files_out)
        self._records.inc(result.records)
        yield result


class CompactArchive(beam.PTransform):
    """Compacts the given hour folders, one (topic, partition) per work item; outputs a result per item."""

    def __init__(self, hour_dirs: Sequence[str], max_file_bytes: int):
        super().__init__()
        self._hour_dirs = list(hour_dirs)
        self._max_file_bytes = max_file_bytes

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "HourFolders" >> beam.Create(self._hour_dirs)
            | "PlanPartitions" >> beam.FlatMap(plan_hour_dir)
            # Planning is one listing per hour; compaction is per partition, so spread it over workers.
            | "SpreadPartitions" >> beam.Reshuffle()
            | "CompactPartitions" >> beam.ParDo(_CompactPartitionFn(self._max_file_bytes))
        )


@dataclass(frozen=True)
class CompactConfig:
    hour_dirs: tuple[str, ...]
    max_file_bytes: int


class ArchiveCompactOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        g = BothSpellings(parser.add_argument_group("metafix archive compact"))
        g.add_argument("--hour", dest="hours", action="append", default=None,
                       help="compact this hour, dt=YYYY-MM-DD/hour=HH, closed or not (repeatable)")
        g.add_argument("--closed-before", dest="closed_before", default=None,
                       help="compact the hours that ended at or before this ISO-8601 time (default: now less the grace)")
        g.add_argument("--grace-minutes", dest="grace_minutes", type=int, default=30,
                       help="an hour is closed this long after its end, when late records have been archived")
        g.add_argument("--lookback-hours", dest="lookback_hours", type=int, default=24,
                       help="how many closed hours, back from the newest, to compact")
        g.add_argument("--max-file-bytes", dest="max_file_bytes", type=int, default=DEFAULT_MAX_FILE_BYTES,
                       help="roll a partition's merged file at about this many (uncompressed) bytes")


def compact_config(options: PipelineOptions, now_ms: int) -> CompactConfig:
    archive_dir = options.view_as(MetafixOptions).archive_dir
    o = options.view_as(ArchiveCompactOptions)
    if not archive_dir:
        raise ConfigError("give --archive-dir (the stream's archive)")
    if o.hours and o.closed_before:
        raise ConfigError("give --hour or --closed-before, not both")
    if o.max_file_bytes <= 0 or o.lookback_hours <= 0 or o.grace_minutes < 0:
        raise ConfigError("--max-file-bytes and --lookback-hours must be positive, --grace-minutes not negative")
    for hour in o.hours or ():
        if not _HOUR.match(hour):
            raise ConfigError(f"--hour {hour!r}: expected dt=YYYY-MM-DD/hour=HH")
    if o.hours:
        hours = list(o.hours)
    else:
        cutoff = parse_time_ms(o.closed_before) if o.closed_before else now_ms - o.grace_minutes * 60_000
        hours = closed_hours(cutoff, o.lookback_hours)
    return CompactConfig(tuple(posixpath.join(archive_dir, h) for h in hours), o.max_file_bytes)


def build_compact_pipeline(p: beam.Pipeline, config: CompactConfig) -> beam.PCollection:
    return p | "CompactArchive" >> CompactArchive(config.hour_dirs, config.max_file_bytes)


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix archive compact``: merges closed hours of the stream's archive, one file per partition."""
    args = list(argv or [])
    if not args or args[0] != "compact":
        raise ConfigError("usage: metafix archive compact --archive-dir DIR [--hour dt=YYYY-MM-DD/hour=HH]")
    if {"-h", "--help"} & set(args):
        parser = argparse.ArgumentParser(prog="metafix archive compact", description=__doc__,
                                         formatter_class=argparse.RawDescriptionHelpFormatter,
                                         epilog="Standard Beam pipeline options (--runner, ...) are accepted too.")
        parser.add_argument("--archive-dir", help="the stream's --archive-dir (a local path or gs://...)")
        ArchiveCompactOptions._add_argparse_args(parser)  # the options class owns its flags
        parser.print_help()
        return 0
    options = PipelineOptions(args[1:])
    now_ms = int(datetime.datetime.now(datetime.UTC).timestamp() * 1000)
    config = compact_config(options, now_ms)
    options = with_local_defaults(options, streaming=False)
    pipeline = beam.Pipeline(options=options)
    build_compact_pipeline(pipeline, config)
    result = pipeline.run()
    result.wait_until_finish()
    values = collect(result)
    for name in ("archive_partitions_compacted", "archive_partitions_recovered", "archive_partitions_failed",
                 "archive_files_merged", "archive_files_written", "archive_records_compacted"):
        print(f"  {name:<32} {values.get(name, 0):>10}", flush=True)
    if values.get("archive_partitions_failed", 0):
        print("metafix archive compact: some partitions failed (inputs kept); see the log", file=sys.stderr)
        return 1
    return 0
