"""Replay: the stream's logic over bounded inputs, byte-identical to what the stream wrote."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import fastavro
import pytest

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, read_until
from model.serving import resolve_version_dir
from schemas import CORRECTED_RECORD, CORRECTED_SCHEMA_ID
from streaming.options import REPO_ROOT
from transforms import codec

pytestmark = [pytest.mark.slow]


def metafix(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streaming.main", *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.kafka
@pytest.mark.prism
def test_replaying_the_archive_gives_byte_identical_records(kafka_bootstrap, topic_factory, tiny_model_dir,
                                                            tmp_path):
    topics = {name: topic_factory(name, partitions=3 if name == "in" else 1)
              for name in ("in", "out", "review", "audit", "dead")}
    archive = tmp_path / "archive"
    # One profile for both: the same event, model and profile must give the same bytes.
    profiles = tmp_path / "profiles"
    log = tmp_path / "reference.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(300, seed=3, bad_every=0, avro_share=0)))
    made = metafix("profile", "--input", str(log), "--output", str(profiles))
    assert made.returncode == 0, made.stdout + made.stderr
    profile_version = (profiles / "LATEST").read_text().strip()
    job = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log", "--start-from", "earliest",
                    "--archive-dir", str(archive), "--profile", str(profiles)).start()
    try:
        sent = produce(kafka_bootstrap, topics["in"], catalog_messages(400, seed=8, bad_every=50))
        seen = read_until(kafka_bootstrap, [topics["out"], topics["dead"]],
                          lambda s: sum(map(len, s.values())) >= len(sent), 240, job)
    finally:
        job.stop()
    streamed = {r["record_key"]: codec.confluent_encode(CORRECTED_SCHEMA_ID, r) for _, r in seen[topics["out"]]}
    streamed_dead = sorted((d["partition"], d["offset"], d["error_type"]) for _, d in seen[topics["dead"]])

    out = tmp_path / "replayed.avro"
    done = metafix("replay", "--input", str(archive / "*" / "*" / "*.avro"), "--output", str(out),
                   "--format", "avro", "--model-dir", str(tiny_model_dir), "--profile", str(profiles))
    assert done.returncode == 0, done.stdout + done.stderr
    with open(out, "rb") as f:
        replayed = {r["record_key"]: codec.confluent_encode(CORRECTED_SCHEMA_ID, r) for r in fastavro.reader(f)}
    with open(f"{out}.dead_letters.jsonl", encoding="utf-8") as f:
        replayed_dead = sorted((d["partition"], d["offset"], d["error_type"]) for d in map(json.loads, f))

    assert len(streamed) == sum(1 for m, _, _ in sent if m.bad_kind is None)
    assert replayed == streamed
    assert replayed_dead == streamed_dead
    assert {r["profile_version"] for _, r in seen[topics["out"]]} == {profile_version}


def test_replay_of_a_json_lines_log(tiny_model_dir, tmp_path):
    messages = [m for m in catalog_messages(300, seed=9, bad_every=25, avro_share=0)
                if m.bad_kind in (None, "invalid_json", "missing_event_id", "wrong_type")]
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in messages))
    out = tmp_path / "out.jsonl"

    done = metafix("replay", "--input", str(log), "--output", str(out), "--format", "jsonl",
                   "--model-dir", str(tiny_model_dir))

    assert done.returncode == 0, done.stdout + done.stderr
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    dead = [json.loads(line) for line in (tmp_path / "out.jsonl.dead_letters.jsonl").read_text().splitlines()]
    good = [m for m in messages if m.bad_kind is None]
    assert sorted(r["event_id"] for r in records) == sorted(m.event_id for m in good)
    assert sorted(d["error_type"] for d in dead) == sorted(m.bad_kind for m in messages if m.bad_kind)
    assert all(d["topic"] == str(log) for d in dead)
    assert set(records[0]) == {f["name"] for f in CORRECTED_RECORD["fields"]}
    assert all(r["record_key"] == f"{r['event_id']}@{r['model_version']}" for r in records)


def test_replay_twice_gives_the_same_output(tiny_model_dir, tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(120, seed=10, bad_every=0, avro_share=0)))
    outputs = []
    for name in ("a.jsonl", "b.jsonl"):
        done = metafix("replay", "--input", str(log), "--output", str(tmp_path / name), "--model-dir", str(tiny_model_dir))
        assert done.returncode == 0, done.stderr
        outputs.append(sorted((tmp_path / name).read_text(encoding="utf-8").splitlines()))
    assert outputs[0] == outputs[1]


def _event(i: int, source: str, **track: str) -> bytes:
    return json.dumps({"event_id": f"e-{i}", "source": source, "track": track}).encode() + b"\n"


def test_a_backfill_learns_its_sources_from_itself(tiny_model_dir, tmp_path):
    # No --profile: replay builds the profile of the log first, so the month-first
    # source's unambiguous dates resolve its "5/4/2024"; the profile version is on every record.
    events = [_event(i, "us-feed", title=f"Song {i}", artist="KAROL G", release_date=d)
              for i, d in enumerate(["4/26/2024", "1/13/2024", "12/31/2023", "5/4/2024"])]
    events.append(_event(9, "us-feed", title="I Know [feat. Wiz Khalifa] [Explicit]", artist="Big Sean",
                         explicit="false"))
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(events))
    out = tmp_path / "out.jsonl"

    done = metafix("replay", "--input", str(log), "--output", str(out), "--model-dir", str(tiny_model_dir))

    assert done.returncode == 0, done.stdout + done.stderr
    records = {r["event_id"]: r for r in map(json.loads, out.read_text(encoding="utf-8").splitlines())}
    profile_version = (tmp_path / "out.jsonl.profile" / "LATEST").read_text().strip()
    assert {r["profile_version"] for r in records.values()} == {profile_version}
    assert records["e-3"]["track"]["release_date"] == "2024-05-04"
    assert records["e-3"]["track"]["artist"] == "KAROL G"
    split = records["e-9"]
    assert (split["track"]["title"], split["track"]["featured_artists"], split["track"]["explicit"]) == (
        "I Know", ["Wiz Khalifa"], True)
    assert [c["error_class"] for c in split["corrections"] if c["field"] == "title"] == [
        "explicit_in_title", "featured_in_title"]


def test_replay_in_two_worker_processes_writes_what_one_process_writes_with_or_without_a_profile_given(tiny_model_dir, tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(600, seed=12, bad_every=40, avro_share=0)))
    profile = tmp_path / "profile"
    made = metafix("profile", "--input", str(log), "--output", str(profile))
    assert made.returncode == 0, made.stdout + made.stderr
    two = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]
    outputs = {}
    # "self": no --profile, so the replay profiles its input itself, in the same pipeline
    # and worker processes, before it corrects.
    for name, extra in (("one", ["--profile", str(profile)]), ("two", ["--profile", str(profile), *two]),
                        ("self", two)):
        out = tmp_path / f"{name}.avro"
        done = metafix("replay", "--input", str(log), "--output", str(out), "--format", "avro",
                       "--model-dir", str(tiny_model_dir), *extra)
        assert done.returncode == 0, done.stdout + done.stderr
        with open(out, "rb") as f:
            records = [codec.confluent_encode(CORRECTED_SCHEMA_ID, r) for r in fastavro.reader(f)]
        outputs[name] = (records, out.read_bytes(), (tmp_path / f"{name}.avro.dead_letters.jsonl").read_bytes())
    assert len(outputs["one"][0]) == 600 - 15
    # The same records, and the same files byte for byte: a profile version is its content's.
    assert outputs["two"] == outputs["one"]
    assert outputs["self"] == outputs["one"]
    assert (tmp_path / "self.avro.profile" / "LATEST").read_text() == (profile / "LATEST").read_text()


def test_a_missing_model_ends_a_replay_in_worker_processes_before_its_profile_pass(tmp_path):
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(20, seed=13, bad_every=0, avro_share=0)))

    done = metafix("replay", "--input", str(log), "--output", str(tmp_path / "out.avro"),
                   "--model-dir", str(tmp_path / "no-model"),
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing")

    assert done.returncode == 2
    assert "--model-dir" in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "out.avro").exists()
    assert not (tmp_path / "out.avro.profile").exists()


def test_a_corrupt_model_ends_a_replay_in_worker_processes_before_its_correction(tmp_path, tiny_model_dir):
    # Its files look right, so only loading it finds the fault, and with worker processes
    # only they load it: the runner relays their tracebacks, and the replay must still end
    # with the one line a check before the start gives, before it writes anything.
    corrupt = tmp_path / "corrupt-model"
    shutil.copytree(resolve_version_dir(tiny_model_dir), corrupt)
    (corrupt / "saved_model.pb").write_bytes(b"\x08\x01garbage, not a SavedModel" * 10)
    log = tmp_path / "events.jsonl"
    log.write_bytes(b"".join(m.value + b"\n" for m in catalog_messages(20, seed=13, bad_every=0, avro_share=0)))

    done = metafix("replay", "--input", str(log), "--output", str(tmp_path / "out.avro"),
                   "--model-dir", str(corrupt),
                   "--direct_num_workers=2", "--direct_running_mode=multi_processing")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("metafix replay: --model-dir: cannot load the SavedModel")
    assert not (tmp_path / "out.avro").exists()
    assert not (tmp_path / "out.avro.dead_letters.jsonl").exists()
    # The workers load the model when the correcting stage starts, after the profile pass.
    assert (tmp_path / "out.avro.profile" / "LATEST").exists()
