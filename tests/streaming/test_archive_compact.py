"""Archive compaction: one file per partition, the same records for replay, safe after a crash at any step."""

from __future__ import annotations

import glob
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import fastavro
import pytest

from harness.eventgen import catalog_messages
from schemas import ARCHIVED_EVENT
from streaming import archive_compact
from streaming.archive import archive_path, to_archived, write_archive_file
from streaming.archive_compact import (
    ArchiveFile,
    CompactionError,
    Tally,
    check_merged,
    closed_hours,
    compact_config,
    compact_partition,
    overlap_runs,
    parse_archive_name,
    plan_hour,
    plan_hour_dir,
    record_digest,
    write_parts,
)
from streaming.kafkaio import KafkaRecord
from streaming.options import REPO_ROOT, ConfigError, parse_time_ms

HOUR = "dt=2026-11-25/hour=14"
HOUR_START_MS = parse_time_ms("2026-11-25T14:00:00Z")
TOPIC = "catalog.updates"


def small_archive(root: Path, n: int = 240, partitions: int = 3, bundle: int = 4) -> Path:
    """An hour written by the stream's own writer: ``bundle`` records per file and partition.

    One bundle of partition 0 is written again split differently (a retried bundle),
    so two files overlap and the archive holds duplicates, as it can in production.
    """
    archive = root / "archive"
    by_partition: dict[int, list[KafkaRecord]] = {p: [] for p in range(partitions)}
    for i, m in enumerate(catalog_messages(n, seed=13, bad_every=40)):
        p = i % partitions
        offset = len(by_partition[p])
        by_partition[p].append(KafkaRecord(TOPIC, p, offset, HOUR_START_MS + i * 1000, m.key, m.value))
    for records in by_partition.values():
        for start in range(0, len(records), bundle):
            write_bundle(archive, records[start:start + bundle])
    write_bundle(archive, by_partition[0][2:7])
    return archive


def write_bundle(archive: Path, group: list[KafkaRecord]) -> None:
    first = group[0]
    path = archive_path(str(archive), first.topic, first.partition, first.offset, group[-1].offset, first.timestamp_ms)
    write_archive_file(path, map(to_archived, group))


def archive_files(archive: Path) -> list[str]:
    return sorted(os.path.relpath(p, archive) for p in glob.glob(str(archive / "**" / "*.avro"), recursive=True))


def replay_view(archive: Path) -> list[tuple]:
    """Every record a replay glob over the archive reads, as a sorted list (duplicates kept)."""
    rows = []
    for path in glob.glob(str(archive / "*" / "*" / "*.avro")):
        with open(path, "rb") as f:
            rows += [tuple(r.values()) for r in fastavro.reader(f)]
    return sorted(rows)


def compact(archive: Path, *extra: str) -> int:
    return archive_compact.run(["compact", "--archive-dir", str(archive), "--hour", HOUR, *extra])


def replay(archive: Path, out: Path, model_dir: Path) -> tuple[list[str], list[str]]:
    done = subprocess.run(
        [sys.executable, "-m", "streaming.main", "replay", "--input", str(archive / "*" / "*" / "*.avro"),
         "--output", str(out), "--format", "jsonl", "--model-dir", str(model_dir)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    dead = Path(f"{out}.dead_letters.jsonl")
    return sorted(out.read_text().splitlines()), sorted(dead.read_text().splitlines())


# A record's scores can differ in their last bits with the batch it is scored in (on some
# CPUs TensorFlow's kernels depend on the batch's rows), and a compaction changes the
# batches, since a replay reads whole files' blocks. What must not change: the records,
# every decision and every value, and the dead letters.
CONFIDENCE_TOLERANCE = 1e-5


def _without_confidences(line: str) -> tuple[str, list[float]]:
    record = json.loads(line)
    confidences = []
    for item in [*record["corrections"], *record["review"]]:
        confidences.append(item["confidence"])
        item["confidence"] = None
    return json.dumps(record, sort_keys=True), confidences


def assert_same_replay(after: tuple[list[str], list[str]], before: tuple[list[str], list[str]]) -> None:
    """The same records, decisions and dead letters; confidences within CONFIDENCE_TOLERANCE."""
    assert after[1] == before[1]
    got, expected = sorted(map(_without_confidences, after[0])), sorted(map(_without_confidences, before[0]))
    assert [text for text, _ in got] == [text for text, _ in expected]
    for (_, a), (_, b) in zip(got, expected, strict=True):
        assert a == pytest.approx(b, abs=CONFIDENCE_TOLERANCE)


def plans(archive: Path):
    return plan_hour_dir(str(archive / HOUR))


# ----------------------------------------------------------------------------- pure functions


def test_archive_names_are_parsed_whatever_the_topic():
    small = parse_archive_name("a.b-p3-c-p7-00000000000000000010-00000000000000000019.avro")
    big = parse_archive_name("t-p0-00000000000000000000-00000000000000000099.compacted-0123456789abcdef.avro")
    assert (small.topic, small.partition, small.first, small.last, small.compacted) == ("a.b-p3-c", 7, 10, 19, False)
    assert (big.topic, big.partition, big.compacted) == ("t", 0, True)
    assert parse_archive_name("t-p0-00000000000000000000-00000000000000000099.avro.inprogress") is None


def test_plan_merges_only_partitions_of_several_files_and_finishes_committed_ones():
    names = [
        "t-p0-00000000000000000000-00000000000000000009.avro",
        "t-p0-00000000000000000010-00000000000000000019.avro",
        "t-p1-00000000000000000000-00000000000000000009.avro",
        "t-p2-00000000000000000000-00000000000000000009.compacted-0123456789abcdef.avro",
        "t-p2-00000000000000000010-00000000000000000019.compacted-fedcba9876543210.avro",
        "t-p3-00000000000000000000-00000000000000000009.compacted-0123456789abcdef.avro",
        "t-p3-00000000000000000010-00000000000000000010.avro",
    ]
    planned = {(p.partition, p.committed, len(p.inputs)) for p in plan_hour("h", names, ["t-p5.json"])}
    assert planned == {(0, False, 2), (3, False, 2), (5, True, 0)}


def test_overlapping_files_form_one_run_and_disjoint_files_their_own():
    def f(first: int, last: int) -> ArchiveFile:
        return ArchiveFile(first, last, f"{first}-{last}", "t", 0, False)

    runs = overlap_runs([f(8, 11), f(0, 3), f(4, 7), f(2, 6), f(12, 15)])
    assert [[(x.first, x.last) for x in run] for run in runs] == [[(0, 3), (2, 6), (4, 7)], [(8, 11)], [(12, 15)]]


def test_closed_hours_respect_the_grace_period():
    from apache_beam.options.pipeline_options import PipelineOptions

    now = parse_time_ms("2026-11-25T15:20:00Z")
    opts = PipelineOptions(["--archive-dir", "a", "--lookback-hours", "2", "--grace-minutes", "30"])
    assert compact_config(opts, now).hour_dirs == ("a/dt=2026-11-25/hour=12", "a/dt=2026-11-25/hour=13")
    assert closed_hours(parse_time_ms("2026-11-26T00:00:00Z"), 1) == ["dt=2026-11-25/hour=23"]
    with pytest.raises(ConfigError):
        compact_config(PipelineOptions(["--archive-dir", "a", "--hour", "2026-11-25T14"]), now)


def rows(n: int, partition: int = 0) -> list[dict]:
    return [{"topic": "t", "partition": partition, "offset": i, "timestamp_ms": i, "key": None,
             "value": b"x" * 100} for i in range(n)]


def test_write_parts_rolls_at_the_size_and_keeps_the_order():
    files: list[io.BytesIO] = []

    def create(index: int) -> io.BytesIO:
        files.append(_KeptOpen())
        return files[-1]

    parts = write_parts(rows(50), create, max_file_bytes=1400)
    assert [(p.first, p.last, p.records) for p in parts] == [(0, 9, 10), (10, 19, 10), (20, 29, 10), (30, 39, 10),
                                                             (40, 49, 10)]
    read_back = [r for f in files for r in fastavro.reader(io.BytesIO(f.getvalue()))]
    assert read_back == rows(50)


class _KeptOpen(io.BytesIO):
    def close(self) -> None:  # keep the bytes readable after the writer closes the file
        pass


def test_check_merged_rejects_a_lost_record_an_alien_one_and_a_wrong_order():
    expected = Tally()
    for r in rows(5):
        expected.add(record_digest(r))
    check_merged("t", 0, rows(5), expected)
    with pytest.raises(CompactionError, match="merged 4 records"):
        check_merged("t", 0, rows(5)[:4], expected)
    with pytest.raises(CompactionError, match="offset order"):
        check_merged("t", 0, rows(5)[::-1], expected)
    with pytest.raises(CompactionError, match="a record of t/1"):
        check_merged("t", 0, rows(5, partition=1), expected)
    changed = rows(5)
    changed[2]["value"] = b"y"
    with pytest.raises(CompactionError, match="contents differ"):
        check_merged("t", 0, changed, expected)


# ----------------------------------------------------------------------------- on an archive


@pytest.mark.slow
def test_a_compacted_hour_replays_to_the_same_records_and_decisions(tmp_path, tiny_model_dir):
    archive = small_archive(tmp_path)
    assert len(archive_files(archive)) == 61
    before = replay(archive, tmp_path / "before.jsonl", tiny_model_dir)

    assert compact(archive) == 0

    files = archive_files(archive)
    assert len(files) == 3
    assert {parse_archive_name(os.path.basename(f)).partition for f in files} == {0, 1, 2}
    assert not glob.glob(str(archive / HOUR / "_compaction" / "*"))
    after = replay(archive, tmp_path / "after.jsonl", tiny_model_dir)
    assert_same_replay(after, before)
    assert len(before[0]) + len(before[1]) == 245  # 240 events and the retried bundle's 5 duplicates


def test_records_stay_in_offset_order_within_each_partition(tmp_path):
    archive = small_archive(tmp_path)
    assert compact(archive) == 0
    for path in glob.glob(str(archive / HOUR / "*.avro")):
        with open(path, "rb") as f:
            offsets = [r["offset"] for r in fastavro.reader(f)]
        expected = sorted(offsets)
        assert offsets == expected
        assert len(offsets) == 80 + (5 if "-p0-" in path else 0)


def test_a_partition_larger_than_the_size_is_rolled_into_several_files(tmp_path):
    archive = small_archive(tmp_path)
    view = replay_view(archive)
    assert compact(archive, "--max-file-bytes", "20000") == 0
    files = archive_files(archive)
    assert 3 < len(files) < 20
    assert all(parse_archive_name(os.path.basename(f)).compacted for f in files)
    assert replay_view(archive) == view
    assert compact(archive, "--max-file-bytes", "20000") == 0
    assert archive_files(archive) == files


def test_a_rerun_changes_nothing(tmp_path):
    archive = small_archive(tmp_path)
    assert compact(archive) == 0
    stamps = {f: os.stat(archive / f).st_mtime_ns for f in archive_files(archive)}
    assert plans(archive) == []
    assert compact(archive) == 0
    assert {f: os.stat(archive / f).st_mtime_ns for f in archive_files(archive)} == stamps


def test_files_archived_after_compaction_are_merged_by_the_next_run(tmp_path):
    archive = small_archive(tmp_path)
    view = replay_view(archive)
    assert compact(archive) == 0
    late = KafkaRecord(TOPIC, 1, 80, HOUR_START_MS + 3_599_000, b"k", b"late")
    write_bundle(archive, [late])
    assert len(archive_files(archive)) == 4
    assert compact(archive) == 0
    assert len(archive_files(archive)) == 3
    assert replay_view(archive) == sorted([*view, tuple(to_archived(late).values())])


def test_a_crash_before_the_commit_leaves_the_inputs_and_a_rerun_converges(tmp_path, monkeypatch):
    archive = small_archive(tmp_path)
    view, files = replay_view(archive), archive_files(archive)

    def crash(*args):
        raise KeyboardInterrupt("killed after writing the merged files")

    monkeypatch.setattr(archive_compact, "_write_manifest", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_partition(plans(archive)[0], archive_compact.DEFAULT_MAX_FILE_BYTES)
    monkeypatch.undo()

    assert glob.glob(str(archive / HOUR / "_compaction" / "*.inprogress"))
    assert (replay_view(archive), archive_files(archive)) == (view, files)
    assert compact(archive) == 0
    assert len(archive_files(archive)) == 3
    assert replay_view(archive) == view
    assert not glob.glob(str(archive / HOUR / "_compaction" / "*"))


def test_a_crash_after_the_commit_before_publishing_is_rolled_forward(tmp_path, monkeypatch):
    archive = small_archive(tmp_path)
    view = replay_view(archive)

    def crash(*args):
        raise KeyboardInterrupt("killed after the commit")

    monkeypatch.setattr(archive_compact, "finish_compaction", crash)
    with pytest.raises(KeyboardInterrupt):
        compact_partition(plans(archive)[0], archive_compact.DEFAULT_MAX_FILE_BYTES)
    monkeypatch.undo()

    assert [(p.partition, p.committed) for p in plans(archive)] == [(0, True), (1, False), (2, False)]
    assert replay_view(archive) == view
    assert compact(archive) == 0
    assert len(archive_files(archive)) == 3
    assert replay_view(archive) == view


@pytest.mark.slow
def test_a_crash_between_publish_and_delete_never_loses_a_record_and_a_rerun_converges(
        tmp_path, monkeypatch, tiny_model_dir):
    archive = small_archive(tmp_path)
    view = replay_view(archive)
    before = replay(archive, tmp_path / "before.jsonl", tiny_model_dir)
    deleted: list[str] = []
    real_delete = archive_compact.FileSystems.delete

    def delete_some_then_crash(paths):
        if len(paths) > 1:  # the inputs: delete half, as a process killed while deleting would
            real_delete(paths[: len(paths) // 2])
            deleted.extend(paths[: len(paths) // 2])
            raise KeyboardInterrupt("killed while deleting the inputs")
        real_delete(paths)

    monkeypatch.setattr(archive_compact.FileSystems, "delete", delete_some_then_crash)
    with pytest.raises(KeyboardInterrupt):
        compact_partition(plans(archive)[0], archive_compact.DEFAULT_MAX_FILE_BYTES)
    monkeypatch.undo()
    assert deleted

    # Published and half the inputs still there: a replay now may read a record twice, never miss one.
    midway = replay_view(archive)
    assert set(midway) == set(view) and len(midway) > len(view)
    # An object store's rename that copied but did not delete the staged part is finished too.
    published = next(f for f in archive_files(archive) if ".compacted-" in f)
    part = archive / HOUR / "_compaction" / "catalog.updates-p0-part00000.avro.inprogress"
    part.write_bytes((archive / published).read_bytes())

    assert compact(archive) == 0

    assert len(archive_files(archive)) == 3
    assert not glob.glob(str(archive / HOUR / "_compaction" / "*"))
    assert replay_view(archive) == view
    assert_same_replay(replay(archive, tmp_path / "after.jsonl", tiny_model_dir), before)


def test_a_failed_verification_deletes_nothing_and_the_command_fails(tmp_path, monkeypatch):
    archive = small_archive(tmp_path)
    view, files = replay_view(archive), archive_files(archive)

    def drop_one(rows, create, max_file_bytes):
        rows = iter(rows)
        next(rows)
        return write_parts(rows, create, max_file_bytes)

    monkeypatch.setattr(archive_compact, "write_parts", drop_one)
    assert compact(archive) == 1
    assert (replay_view(archive), archive_files(archive)) == (view, files)


def test_the_merged_records_are_the_archived_event_schema(tmp_path):
    archive = small_archive(tmp_path, n=30)
    assert compact(archive) == 0
    with open(archive / archive_files(archive)[0], "rb") as f:
        reader = fastavro.reader(f)
        assert reader.writer_schema["name"] == ARCHIVED_EVENT["name"]
        assert reader.codec == "deflate"
