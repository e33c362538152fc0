"""Partitions added to the input topic while ``metafix stream`` runs (on Prism, the real broker).

The job starts on a two-partition topic; the test grows it to four partitions, produces
into the new ones and checks that every input comes out exactly once and that the
group's offsets of the new partitions are committed as the old ones are.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import NewPartitions

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, committed_offsets, read_until

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.slow]


def grow_topic(bootstrap: str, topic: str, partitions: int, timeout_s: float = 30) -> None:
    """Adds partitions up to `partitions` and waits until the broker's metadata shows them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.create_partitions({topic: NewPartitions(total_count=partitions)})
    finally:
        admin.close()
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            consumer.topics()  # a fresh metadata request
            if len(consumer.partitions_for_topic(topic) or ()) == partitions:
                return
            assert time.monotonic() < deadline, f"{topic} still lacks its new partitions"
            time.sleep(0.2)
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: list[int]) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
    finally:
        consumer.close()
    return {tp.partition: offset for tp, offset in ends.items()}


def test_partitions_added_while_the_job_runs_are_read_and_committed(
    kafka_bootstrap, topic_factory, tiny_model_dir, tmp_path
) -> None:
    topics = {
        "in": topic_factory("in", partitions=2),
        "out": topic_factory("out", partitions=1),
        "review": topic_factory("review", partitions=1),
        "audit": topic_factory("audit", partitions=1),
        "dead": topic_factory("dead", partitions=1),
    }
    group = f"g-{topics['in']}"
    out_t, dead_t = topics["out"], topics["dead"]
    job = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "job.log",
                    "--partition-discovery-interval-s", "2", group_id=group).start()

    def covers(sent: list) -> Callable[[dict], bool]:
        def done(seen: dict) -> bool:
            coords = {(r["input"]["partition"], r["input"]["offset"]) for _, r in seen[out_t]}
            coords |= {(d["partition"], d["offset"]) for _, d in seen[dead_t]}
            return {(p, o) for _, p, o in sent} <= coords
        return done

    try:
        messages = list(catalog_messages(400, seed=5, bad_every=25))
        before = produce(kafka_bootstrap, topics["in"], iter(messages[:100]))
        read_until(kafka_bootstrap, [out_t, dead_t], covers(before), 240, job)

        grow_topic(kafka_bootstrap, topics["in"], 4)
        after = produce(kafka_bootstrap, topics["in"], iter(messages[100:]))
        sent = before + after
        assert {p for _, p, _ in after} == {0, 1, 2, 3}, "the keys must reach the new partitions"

        seen = read_until(kafka_bootstrap, [out_t, dead_t], covers(sent), 240, job)
        assert job.alive(), "new partitions must be read while the job runs"

        # The new partitions' offsets are committed too, up to their ends.
        ends = end_offsets(kafka_bootstrap, topics["in"], [0, 1, 2, 3])
        deadline = time.monotonic() + 120
        while committed_offsets(kafka_bootstrap, group) != ends and time.monotonic() < deadline:
            time.sleep(1)
        committed = committed_offsets(kafka_bootstrap, group)
    finally:
        job.stop()

    # Every input comes out exactly once, corrected or as a dead letter: nothing unread,
    # nothing read twice (the job never restarted, so at-least-once left no duplicates).
    coords = sorted(
        [(r["input"]["partition"], r["input"]["offset"]) for _, r in seen[out_t]]
        + [(d["partition"], d["offset"]) for _, d in seen[dead_t]]
    )
    assert coords == sorted((p, o) for _, p, o in sent)
    assert committed == ends
    assert "metafix summary" in job.log_text()
