"""The streaming job on Flink outlives ``--job_server_timeout``.

Beam opened the job's state and message streams with that deadline; on Flink the
old code happened to survive it (Beam's Flink job server does not know the
preparation id, so Beam reopened both streams without a deadline). This keeps it so.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness import flink
from harness.jobs import StreamJob
from harness.local_kafka import free_port
from tests.streaming.test_job_lifetime import (
    DEADLINE_FLAG,
    assert_outlives_deadline,
    lifetime_topics,
)

pytestmark = [pytest.mark.flink, pytest.mark.slow]


def test_stream_on_flink_outlives_the_job_server_deadline(
    kafka_bootstrap: str, topic_factory, tiny_model_dir: Path, tmp_path: Path
) -> None:
    topics = lifetime_topics(topic_factory, "flink-life")
    env = {**os.environ, "FLINK_CONF_DIR": str(flink.write_conf_dir(tmp_path / "conf", rest_port=free_port()))}
    job = StreamJob(
        kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log", "--start-from", "earliest",
        *flink.runner_args(flink.job_server_jar(), parallelism=1, checkpointing_interval_ms=2000),
        DEADLINE_FLAG, env=env,
    ).start()
    assert_outlives_deadline(kafka_bootstrap, topics, job)
