"""The streaming job outlives ``--job_server_timeout`` on the local runner (Prism).

Beam's portable runners opened the job's state and message streams with that
deadline (300 s by default), so every stream died after five minutes. Here the
deadline is 20 s and the job must still be running, and still writing, well past it.
"""

from __future__ import annotations

import time

import pytest

from streaming.eventgen import catalog_messages, produce
from tests.streaming.jobs import read_until, start_stream_job, stop_job

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

DEADLINE_S = 20


def test_stream_outlives_the_job_server_deadline(kafka_bootstrap, topic_factory, tiny_model_dir):
    topics = {
        "in": topic_factory("life-in", partitions=2),
        **{name: topic_factory(f"life-{name}", partitions=1) for name in ("out", "review", "audit", "dead")},
    }
    job = start_stream_job(kafka_bootstrap, topics, str(tiny_model_dir), "--start-from", "earliest",
                           f"--job_server_timeout={DEADLINE_S}")
    started = time.monotonic()
    try:
        first = produce(kafka_bootstrap, topics["in"], catalog_messages(50, seed=21, bad_every=0))
        seen = read_until(kafka_bootstrap, [topics["out"]], lambda s: len(s[topics["out"]]) >= len(first),
                          timeout_s=240, job=job)
        assert len(seen[topics["out"]]) == len(first)

        # Well past the deadline (three times it), the job still takes new events and writes them.
        time.sleep(max(0.0, started + 3 * DEADLINE_S - time.monotonic()))
        assert job.poll() is None, "the job ended at the job server deadline"
        second = produce(kafka_bootstrap, topics["in"], catalog_messages(50, seed=22, bad_every=0))
        total = len(first) + len(second)
        seen = read_until(kafka_bootstrap, [topics["out"]], lambda s: len(s[topics["out"]]) >= total,
                          timeout_s=120, job=job)
        assert len(seen[topics["out"]]) == total
        assert time.monotonic() - started > 3 * DEADLINE_S
        assert job.poll() is None
    finally:
        log = stop_job(job)
    assert "DEADLINE_EXCEEDED" not in log
    assert "the pipeline failed" not in log
