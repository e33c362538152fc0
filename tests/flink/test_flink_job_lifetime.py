"""The streaming job on Flink outlives ``--job_server_timeout``.

Beam's portable runners opened the job's state and message streams with that
deadline; the job must keep running, and keep writing, well past it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from streaming import flink
from streaming.eventgen import catalog_messages, produce
from streaming.local_kafka import free_port
from tests.flink.test_flink_runner import read_topics, start_stream_job, stop_job

pytestmark = [pytest.mark.flink, pytest.mark.slow]

DEADLINE_S = 20


def test_stream_on_flink_outlives_the_job_server_deadline(
    kafka_bootstrap: str, topic_factory, tiny_model_dir: Path, tmp_path: Path
) -> None:
    topics = {
        "in": topic_factory("flink-life-in", partitions=2),
        **{name: topic_factory(f"flink-life-{name}", partitions=1) for name in ("out", "review", "audit", "dead")},
    }
    env = {**os.environ, "FLINK_CONF_DIR": str(flink.write_conf_dir(tmp_path / "conf", rest_port=free_port()))}
    job = start_stream_job(
        kafka_bootstrap, topics, tiny_model_dir,
        *flink.runner_args(flink.job_server_jar(), parallelism=1, checkpointing_interval_ms=2000),
        f"--job_server_timeout={DEADLINE_S}", env=env,
    )
    started = time.monotonic()
    try:
        first = produce(kafka_bootstrap, topics["in"], catalog_messages(40, seed=31, bad_every=0))
        assert len(read_topics(kafka_bootstrap, [topics["out"]], len(first), 300, job)[topics["out"]]) == len(first)

        # Three deadlines after the start, the job still takes new events and writes them.
        time.sleep(max(0.0, started + 3 * DEADLINE_S - time.monotonic()))
        assert job.poll() is None, "the job ended at the job server deadline"
        second = produce(kafka_bootstrap, topics["in"], catalog_messages(40, seed=32, bad_every=0))
        total = len(first) + len(second)
        assert len(read_topics(kafka_bootstrap, [topics["out"]], total, 120, job)[topics["out"]]) == total
        assert time.monotonic() - started > 3 * DEADLINE_S
        assert job.poll() is None
    finally:
        log = stop_job(job)
    assert "DEADLINE_EXCEEDED" not in log
    assert "the pipeline failed" not in log
