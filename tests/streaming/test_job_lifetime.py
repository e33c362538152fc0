"""The streaming job outlives ``--job_server_timeout`` on the local runner (Prism).

Beam's portable runners opened the job's state and message streams with that
deadline (300 s by default), so every stream died after five minutes. Here the
deadline is 20 s and the job must still be running, and still writing, well past it.
``tests/flink/test_flink_job_lifetime.py`` runs the same check on Flink.
"""

from __future__ import annotations

import time

import pytest

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, read_until

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.slow]

DEADLINE_S = 20
DEADLINE_FLAG = f"--job_server_timeout={DEADLINE_S}"


def lifetime_topics(topic_factory, prefix: str) -> dict[str, str]:
    return {
        "in": topic_factory(f"{prefix}-in", partitions=2),
        **{name: topic_factory(f"{prefix}-{name}", partitions=1) for name in ("out", "review", "audit", "dead")},
    }


def assert_outlives_deadline(bootstrap: str, topics: dict[str, str], job: StreamJob) -> None:
    """Events written before the deadline come out, and so do events sent three deadlines later."""
    started = time.monotonic()
    out = topics["out"]
    try:
        first = produce(bootstrap, topics["in"], catalog_messages(40, seed=21, bad_every=0))
        seen = read_until(bootstrap, [out], lambda s: len(s[out]) >= len(first), 300, job)
        assert len(seen[out]) == len(first)

        time.sleep(max(0.0, started + 3 * DEADLINE_S - time.monotonic()))
        assert job.alive(), "the job ended at the job server deadline"
        second = produce(bootstrap, topics["in"], catalog_messages(40, seed=22, bad_every=0))
        total = len(first) + len(second)
        seen = read_until(bootstrap, [out], lambda s: len(s[out]) >= total, 120, job)
        assert len(seen[out]) == total
        assert time.monotonic() - started > 3 * DEADLINE_S
        assert job.alive()
    finally:
        job.stop()
    log = job.log_text()
    assert "DEADLINE_EXCEEDED" not in log
    assert "the pipeline failed" not in log


def test_stream_outlives_the_job_server_deadline(kafka_bootstrap, topic_factory, tiny_model_dir, tmp_path):
    topics = lifetime_topics(topic_factory, "life")
    job = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log",
                    "--start-from", "earliest", DEADLINE_FLAG).start()
    assert_outlives_deadline(kafka_bootstrap, topics, job)
