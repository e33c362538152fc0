"""The replay and the streaming job on Beam's FlinkRunner, against an embedded Flink cluster.

    make test-flink          # or: .venv/bin/pytest -m flink

The job server (harness/flink.py) runs Flink as a MiniCluster in its own JVM
(``--flink_master=[local]``); the Python SDK harness runs in the job's process
(LOOPBACK). Each test runs the same input through the local runner (Prism) and
checks that Flink writes exactly the same records.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

from harness import flink
from harness.eventgen import catalog_messages, produce
from harness.jobs import JobExited, StreamJob, committed_offsets
from harness.local_kafka import free_port
from streaming.options import REPO_ROOT
from streaming.replay import dead_letter_path
from transforms.codec import confluent_decode

pytestmark = [pytest.mark.flink, pytest.mark.prism, pytest.mark.slow]

# Enough partitions that both instances of the reading step get some: Flink spreads
# them by a hash of the partition's restriction, so with 12 the chance that one
# instance gets all of them is 2 in 4096.
INPUT_PARTITIONS = 12
BROKEN_LINE = b'{"event_id": "broken", "track": {"title": "Half a rec'


@pytest.fixture(scope="module")
def flink_jar() -> Path:
    return flink.job_server_jar()


def metafix(*args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "streaming.main", *args]
    return subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=timeout_s)


def test_replay_on_flink_writes_what_prism_writes(tmp_path: Path, tiny_model_dir: Path, flink_jar: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = [m.value for m in catalog_messages(200, seed=5, bad_every=0, avro_share=0)]
    events.write_bytes(b"\n".join([*lines, BROKEN_LINE]) + b"\n")

    written = {}
    for name, runner_args in (("prism", []), ("flink", flink.runner_args(flink_jar, parallelism=2))):
        out = tmp_path / f"{name}.jsonl"
        done = metafix("replay", "--input", str(events), "--output", str(out),
                       "--model-dir", str(tiny_model_dir), *runner_args)
        assert done.returncode == 0, f"{name}:\n{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
        written[name] = (
            sorted(out.read_text(encoding="utf-8").splitlines()),
            sorted(Path(dead_letter_path(str(out))).read_text(encoding="utf-8").splitlines()),
        )

    corrected, dead = written["flink"]
    assert len(corrected) == len(lines)
    assert [json.loads(d)["error_type"] for d in dead] == ["invalid_json"]
    assert written["flink"] == written["prism"]


def read_topics(bootstrap: str, topics: list[str], expected: int, timeout_s: float,
                job: StreamJob | None = None) -> dict[str, dict[tuple, dict]]:
    """Decoded records per topic by input (partition, offset), read until ``expected`` in all."""
    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    seen: dict[str, dict[tuple, dict]] = {t: {} for t in topics}
    deadline = time.monotonic() + timeout_s
    try:
        while sum(map(len, seen.values())) < expected and time.monotonic() < deadline:
            if job is not None and not job.alive():
                raise JobExited(job)
            for tp, batch in consumer.poll(timeout_ms=500).items():
                for message in batch:
                    record = confluent_decode(message.value)[1]
                    coords = record["input"] if "input" in record else record
                    key = (coords["partition"], coords["offset"])
                    assert key not in seen[tp.topic], f"{key} written twice to {tp.topic}"
                    seen[tp.topic][key] = record
    finally:
        consumer.close()
    return seen


def wait_for(condition: Callable[[], bool], timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.5)
    return condition()


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def flink_rest(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
        return json.load(response)


def running_job(port: int) -> str:
    running = [j["id"] for j in flink_rest(port, "/jobs")["jobs"] if j["status"] == "RUNNING"]
    assert len(running) == 1, running
    return running[0]


def test_stream_on_flink_with_parallelism_2_writes_what_prism_writes(
    kafka_bootstrap: str, topic_factory, tiny_model_dir: Path, flink_jar: Path, tmp_path: Path
) -> None:
    topics = {
        "in": topic_factory("flink-in", partitions=INPUT_PARTITIONS),
        **{name: topic_factory(f"flink-{name}", partitions=1) for name in ("out", "review", "audit", "dead")},
    }
    sent = produce(kafka_bootstrap, topics["in"], catalog_messages(360, seed=9, bad_every=40))
    rest_port = free_port()
    env = {**os.environ, "FLINK_CONF_DIR": str(flink.write_conf_dir(tmp_path / "flink-conf", rest_port=rest_port))}
    job = StreamJob(
        kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log", "--start-from", "earliest",
        *flink.runner_args(flink_jar, parallelism=2, checkpointing_interval_ms=2000),
        env=env,
    ).start()
    try:
        on_flink = read_topics(kafka_bootstrap, [topics["out"], topics["dead"]], len(sent), 300, job)
        assert job.alive(), "outputs must appear while the unbounded job is still running"

        # The steps after the source run as two instances, and both read partitions.
        job_id = running_job(rest_port)
        vertices = flink_rest(rest_port, f"/jobs/{job_id}")["vertices"]
        reading = [v for v in vertices if "CorrectCatalog" in v["name"]]
        assert len(reading) == 1 and reading[0]["parallelism"] == 2, [v["name"] for v in vertices]

        def partitions_read() -> list[int]:
            subtasks = flink_rest(rest_port, f"/jobs/{job_id}/vertices/{reading[0]['id']}")["subtasks"]
            return [s["metrics"]["read-records"] for s in subtasks]

        # The REST API refreshes task metrics every few seconds.
        assert wait_for(lambda: sum(partitions_read()) == INPUT_PARTITIONS, 60), partitions_read()
        assert all(partitions_read()), partitions_read()

        # Checkpoints complete, and the offsets of everything written get committed.
        assert wait_for(lambda: flink_rest(rest_port, f"/jobs/{job_id}/checkpoints")["counts"]["completed"] > 0, 60)
        ends = end_offsets(kafka_bootstrap, topics["in"])
        assert wait_for(lambda: committed_offsets(kafka_bootstrap, f"g-{topics['in']}") == ends, 60), (
            committed_offsets(kafka_bootstrap, f"g-{topics['in']}"), ends)
    finally:
        job.stop(timeout_s=90)
    log = job.log_text()
    assert "metafix stream: running" in log

    # The same topic through the same composites on the local runner.
    prism_topics = {name: topic_factory(f"prism-{name}", partitions=1) for name in ("out", "dead")}
    done = metafix("replay", "--bootstrap-servers", kafka_bootstrap, "--input-topic", topics["in"],
                   "--output-topic", prism_topics["out"], "--dead-letter-topic", prism_topics["dead"],
                   "--model-dir", str(tiny_model_dir))
    assert done.returncode == 0, f"{done.stdout[-3000:]}\n{done.stderr[-5000:]}"
    on_prism = read_topics(kafka_bootstrap, list(prism_topics.values()), len(sent), 120)

    assert set(on_flink[topics["out"]]) | set(on_flink[topics["dead"]]) == {(p, o) for _, p, o in sent}
    assert len(on_flink[topics["dead"]]) == sum(1 for m, _, _ in sent if m.bad_kind)
    assert on_flink[topics["out"]] == on_prism[prism_topics["out"]]
    assert on_flink[topics["dead"]] == on_prism[prism_topics["dead"]]
