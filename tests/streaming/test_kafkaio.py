"""Kafka IO: offset resolution and config as plain functions, then reads and writes on the real
broker with Beam's FnApiRunner, including an unbounded job that streams while it runs.

Every test on the broker runs once per client (confluent-kafka and kafka-python)."""

from __future__ import annotations

import multiprocessing
import pickle
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path

import apache_beam as beam
import confluent_kafka
import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineResult
from apache_beam.runners.sdf_utils import RestrictionTrackerView, ThreadsafeRestrictionTracker
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import BeamAssertException, assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewPartitions
from kafka.record import util as kafka_record_util
from kafka.structs import OffsetAndMetadata

from harness.jobs import committed_offsets
from harness.local_kafka import LocalKafka, create_topic, free_port, unique_topic_name
from streaming.kafka_clients import CLIENT_NAMES
from streaming.kafkaio import (
    CONSUMER_CLOSE_TIMEOUT_S,
    UNBOUNDED,
    ConsumerConfig,
    KafkaBatch,
    KafkaRecord,
    KafkaSecurity,
    PartitionRead,
    PartitionTracker,
    ProducerConfig,
    ReadFromKafka,
    ReadPartitionFn,
    StartPosition,
    WriteToKafka,
    WriteToKafkaTopics,
    _StallWatch,
    _WatchPartitionsFn,
    _WriteFn,
    discovered_partition_start,
    new_partition_ids,
    resolve_start_offset,
    resolve_stop_offset,
)

RUNNER = "FnApiRunner"


# Plain functions


@pytest.mark.parametrize(
    ("start", "committed", "at_time", "expected"),
    [
        ("earliest", None, None, 5),
        ("latest", None, None, 20),
        ("committed", 12, None, 12),
        ("committed", None, None, 5),
        # Retention deleted the committed records: resume at the oldest one left.
        ("committed", 2, None, 5),
        (1_700_000_000_000, None, 9, 9),
        # No record at or after the timestamp yet: start at the end.
        (1_700_000_000_000, None, None, 20),
    ],
)
def test_resolve_start_offset(start, committed, at_time, expected) -> None:
    resolved = resolve_start_offset(
        start, beginning=5, end=20, committed=committed, at_time=at_time
    )

    assert resolved == expected


def test_resolve_stop_offset() -> None:
    assert resolve_stop_offset(None, end=20, at_time=None) is None
    assert resolve_stop_offset("end", end=20, at_time=None) == 20
    assert resolve_stop_offset(1_700_000_000_000, end=20, at_time=7) == 7
    assert resolve_stop_offset(1_700_000_000_000, end=20, at_time=None) == 20


@pytest.mark.parametrize(
    ("group_id", "committed", "expected"),
    [
        # A partition added while the job runs is new to the job: all of it is read.
        ("g", None, 5),
        # The group got there before (a job restored from a checkpoint older than the
        # discovery): resume where it committed, past records already written.
        ("g", 12, 12),
        # No group: nothing can have been committed.
        (None, None, 5),
    ],
)
def test_a_discovered_partition_starts_at_its_beginning_or_its_commit(group_id, committed, expected) -> None:
    start = discovered_partition_start(group_id)

    assert resolve_start_offset(start, beginning=5, end=20, committed=committed, at_time=None) == expected


def test_new_partition_ids_are_those_not_handed_out_yet() -> None:
    assert new_partition_ids([0, 1, 2], 0) == [0, 1, 2]
    assert new_partition_ids([1, 0, 2], 3) == []
    assert new_partition_ids([3, 0, 4, 2, 1], 3) == [3, 4]


def test_config_repr_hides_secrets_but_the_config_keeps_them() -> None:
    security = KafkaSecurity(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_plain_username="metafix",
        sasl_plain_password="s3cret",
    )
    config = ConsumerConfig("127.0.0.1:1", ("events",), security=security)

    assert "s3cret" not in repr(config)
    assert "sasl_plain_password=***" in repr(config)
    assert "metafix" in repr(config)
    assert config.settings().security.client_kwargs()["sasl_plain_password"] == "s3cret"
    assert config.settings().security.librdkafka_config()["sasl.password"] == "s3cret"
    assert pickle.loads(pickle.dumps(config)) == config


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"topics": ()}, "at least one topic"),
        ({"start": "newest"}, "start must be"),
        ({"stop": "latest"}, "stop must be"),
        ({"start": "committed"}, "needs a group_id"),
        ({"max_records_per_call": 0}, "must be positive"),
        ({"partition_discovery_interval_s": 0}, "must be positive"),
    ],
)
def test_config_rejects_bad_settings(settings: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ConsumerConfig(**{"bootstrap_servers": "127.0.0.1:1", "topics": ("t",), **settings})


def test_a_single_topic_name_becomes_a_tuple() -> None:
    assert ConsumerConfig("127.0.0.1:1", "events").topics == ("events",)


@pytest.mark.parametrize("stop", [100, UNBOUNDED])
def test_partition_tracker_splits_only_to_checkpoint(stop: int) -> None:
    tracker = PartitionTracker(OffsetRange(0, stop))
    assert tracker.try_claim(5)

    assert tracker.try_split(0.5) is None
    primary, residual = tracker.try_split(0)
    assert (primary.start, primary.stop, residual.start, residual.stop) == (0, 6, 6, stop)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


TP = ("events", 0)


def stall_watch(stall_s: float = 30) -> tuple[_StallWatch, Clock]:
    clock = Clock()
    watch = _StallWatch(stall_s, clock)
    watch.started(TP)
    return watch, clock


def test_a_consumer_quiet_for_the_stall_time_with_records_waiting_is_replaced_once() -> None:
    watch, clock = stall_watch()
    clock.now += 29
    assert watch.probe_due(TP, position=672) is None
    clock.now += 1
    probe = watch.probe_due(TP, position=672)
    assert probe is not None
    assert watch.probe_due(TP, position=672) is None  # one probe at a time
    watch.probed(probe, end_offset=700)
    assert "offsets 672 to 699" in watch.replacement(TP)
    assert watch.replacement(TP) is None
    watch.started(TP)  # the new consumer starts with a clean record
    clock.now += 29
    assert watch.probe_due(TP, position=672) is None


def test_a_quiet_partition_with_nothing_to_read_keeps_its_consumer_and_is_asked_again_later() -> None:
    watch, clock = stall_watch()
    clock.now += 30
    watch.probed(watch.probe_due(TP, position=672), end_offset=672)
    assert watch.replacement(TP) is None
    clock.now += 29
    assert watch.probe_due(TP, position=672) is None
    clock.now += 1
    assert watch.probe_due(TP, position=672) is not None


def test_an_outage_replaces_nothing_and_the_next_probe_waits_a_stall_time() -> None:
    watch, clock = stall_watch()
    watch.commit_unanswered(TP)
    clock.now += 30
    watch.probed(watch.probe_due(TP, position=672), end_offset=None)  # nobody gets answers
    assert watch.replacement(TP) is None
    clock.now += 29
    assert watch.probe_due(TP, position=672) is None
    clock.now += 1
    watch.probed(watch.probe_due(TP, position=672), end_offset=700)  # the broker is back
    assert watch.replacement(TP) is not None


def test_offsets_a_new_consumer_also_delivered_nothing_from_do_not_replace_it_again() -> None:
    # A transaction still open upstream: the broker's end offset counts records that no
    # reader of committed records gets until it ends, however new the consumer.
    watch, clock = stall_watch()
    clock.now += 30
    watch.probed(watch.probe_due(TP, position=672), end_offset=673)
    assert watch.replacement(TP) is not None
    watch.started(TP)
    clock.now += 30
    watch.probed(watch.probe_due(TP, position=672), end_offset=673)
    assert watch.replacement(TP) is None
    # Records came and went quiet again at a later position: a stall there is a new one.
    watch.delivered(TP)
    clock.now += 30
    watch.probed(watch.probe_due(TP, position=700), end_offset=720)
    assert watch.replacement(TP) is not None


def test_a_delivery_while_the_probe_is_out_cancels_its_verdict() -> None:
    watch, clock = stall_watch()
    clock.now += 30
    probe = watch.probe_due(TP, position=672)
    clock.now += 1
    watch.delivered(TP)
    watch.probed(probe, end_offset=700)
    assert watch.replacement(TP) is None


def test_commits_unanswered_for_the_stall_time_replace_a_consumer_that_still_reads() -> None:
    watch, clock = stall_watch()
    watch.commit_unanswered(TP)
    for _ in range(30):
        clock.now += 1
        watch.delivered(TP)
        watch.commit_unanswered(TP)
    probe = watch.probe_due(TP, position=900)
    assert probe is not None
    watch.probed(probe, end_offset=900)
    assert "commits got no answer" in watch.replacement(TP)


def test_a_commit_answered_even_with_a_refusal_clears_the_unanswered_ones() -> None:
    watch, clock = stall_watch()
    watch.commit_unanswered(TP)
    clock.now += 29
    watch.delivered(TP)
    watch.commit_answered(TP)
    clock.now += 1
    assert watch.probe_due(TP, position=900) is None


def test_kafka_python_checks_crcs_with_the_native_crc32c() -> None:
    # Without the crc32c package kafka-python silently falls back to a much slower
    # pure-Python CRC for every fetched batch.
    assert kafka_record_util.crc32c_c is not None
    assert kafka_record_util.calc_crc32c(b"123456789") == 0xE3069283


# Real broker

Message = tuple[bytes, bytes, int]  # key, value, partition


def produce(
    bootstrap: str,
    topic: str,
    messages: Sequence[Message],
    timestamps: Sequence[int] | None = None,
) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    stamps = timestamps if timestamps is not None else [None] * len(messages)
    futures = [
        producer.send(topic, key=key, value=value, partition=partition, timestamp_ms=stamp)
        for (key, value, partition), stamp in zip(messages, stamps, strict=True)
    ]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()


def spread(count: int, prefix: str = "k") -> list[Message]:
    """`count` messages over 3 partitions; keys and values carry the message's number."""
    return [(f"{prefix}{i}".encode(), f"value-{i}".encode(), i % 3) for i in range(count)]


def total_end_offset(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic)]
        return sum(consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def consume_all(bootstrap: str, topic: str, expected: int, timeout_s: float = 30) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    consumer.subscribe([topic])
    records: list = []
    deadline = time.monotonic() + timeout_s
    while len(records) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            records += batch
    consumer.close()
    return records


@pytest.fixture(params=CLIENT_NAMES)
def client(request: pytest.FixtureRequest) -> str:
    return request.param


def coordinates(record: KafkaRecord) -> tuple[int, int]:
    return record.partition, record.offset


def batch_shape(batch: KafkaBatch) -> tuple[int, bool, bool]:
    """(size, one partition, consecutive offsets) of one element of ReadFromKafka."""
    offsets = [r.offset for r in batch]
    return len(batch), len({r.partition for r in batch}) == 1, offsets == list(range(offsets[0], offsets[-1] + 1))


def polls_of_at_most(limit: int) -> Callable[[list], None]:
    def check(shapes: list[tuple[int, bool, bool]]) -> None:
        if not shapes or not all(0 < n <= limit and one and consecutive for n, one, consecutive in shapes):
            raise BeamAssertException(f"not one poll per element of at most {limit} records: {shapes}")

    return check


def key_and_timestamps_ms(
    batch: KafkaBatch, timestamp=beam.DoFn.TimestampParam
) -> Iterator[tuple[bytes, int, bool]]:
    # A batch is stamped with its earliest record's time.
    stamped_earliest = timestamp.micros // 1000 == min(r.timestamp_ms for r in batch)
    for record in batch:
        yield record.key, record.timestamp_ms, stamped_earliest


def key_and_upper_value(record: KafkaRecord) -> tuple[bytes | None, bytes]:
    return record.key, record.value.upper()


def route_by_parity(record: KafkaRecord, even: str, odd: str) -> tuple[str, bytes | None, bytes]:
    return (even if record.offset % 2 == 0 else odd), record.key, record.value


def metric(result: PipelineResult, name: str, kind: str = "counters") -> list:
    return result.metrics().query(MetricsFilter().with_name(name))[kind]


@pytest.mark.kafka
def test_bounded_read_yields_every_offset_exactly_once(kafka_bootstrap, topic_factory, client) -> None:
    topic = topic_factory("read")
    produce(kafka_bootstrap, topic, spread(90))
    config = ConsumerConfig(kafka_bootstrap, (topic,), stop="end", max_records_per_call=7, client=client)

    pipeline = BeamTestPipeline(runner=RUNNER)
    batches = pipeline | "Read" >> ReadFromKafka(config)
    assert_that(
        batches | "Records" >> beam.FlatMap(iter) | "Coordinates" >> beam.Map(coordinates),
        equal_to([(p, o) for p in range(3) for o in range(30)]),
    )
    # One element per poll: at most 7 records, of one partition, in offset order.
    assert_that(batches | "Shapes" >> beam.Map(batch_shape), polls_of_at_most(7), label="BatchesArePolls")
    result = pipeline.run()
    result.wait_until_finish()

    [read] = metric(result, "records_read")
    assert read.key.metric.namespace == f"kafkaio.{topic}" and read.committed == 90
    [batches] = metric(result, "poll_batch_size", "distributions")
    assert batches.committed.max <= 7
    [size] = metric(result, "bytes_read")
    assert size.committed == sum(len(k) + len(v) for k, v, _ in spread(90))


@pytest.mark.kafka
def test_read_between_two_timestamps_stamps_records_with_kafka_time(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("time")
    base = int(time.time() * 1000) - 600_000
    produce(kafka_bootstrap, topic, spread(30), timestamps=[base + i * 1000 for i in range(30)])
    config = ConsumerConfig(kafka_bootstrap, (topic,), start=base + 10_000, stop=base + 20_000, client=client)

    with BeamTestPipeline(runner=RUNNER) as pipeline:
        batches = pipeline | "Read" >> ReadFromKafka(config)
        assert_that(
            batches | "KeyAndTimestamps" >> beam.FlatMap(key_and_timestamps_ms),
            equal_to([(f"k{i}".encode(), base + i * 1000, True) for i in range(10, 20)]),
        )


@pytest.mark.kafka
def test_bounded_read_stops_at_the_end_seen_at_start(kafka_bootstrap, topic_factory, client) -> None:
    # The job writes every record back to the topic it reads: only a stop fixed at the start
    # lets it finish, and then only with the original records.
    topic = topic_factory("loop")
    produce(kafka_bootstrap, topic, spread(30))
    config = ConsumerConfig(kafka_bootstrap, (topic,), stop="end", max_records_per_call=4, client=client)

    with BeamTestPipeline(runner=RUNNER) as pipeline:
        records = pipeline | "Read" >> ReadFromKafka(config) | "Records" >> beam.FlatMap(iter)
        (
            records
            | "Echo" >> beam.Map(key_and_upper_value)
            | "Write" >> WriteToKafka(ProducerConfig(kafka_bootstrap, client=client), topic)
        )
        assert_that(
            records | "Coordinates" >> beam.Map(coordinates),
            equal_to([(p, o) for p in range(3) for o in range(10)]),
        )

    assert len(consume_all(kafka_bootstrap, topic, expected=60)) == 60


@pytest.mark.kafka
def test_offsets_are_committed_after_the_run_and_the_next_run_resumes_there(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("resume")
    group = f"{topic}-group"
    config = ConsumerConfig(
        kafka_bootstrap, (topic,), group_id=group, start="committed", stop="end", client=client
    )

    def read_once(expected: list[tuple[int, int]]) -> None:
        with BeamTestPipeline(runner=RUNNER) as pipeline:
            records = pipeline | "Read" >> ReadFromKafka(config) | "Records" >> beam.FlatMap(iter)
            assert_that(records | "Coordinates" >> beam.Map(coordinates), equal_to(expected))

    produce(kafka_bootstrap, topic, spread(30))
    read_once([(p, o) for p in range(3) for o in range(10)])
    assert committed_offsets(kafka_bootstrap, group) == {0: 10, 1: 10, 2: 10}

    produce(kafka_bootstrap, topic, spread(15, prefix="late"))
    read_once([(p, o) for p in range(3) for o in range(10, 15)])
    assert committed_offsets(kafka_bootstrap, group) == {0: 15, 1: 15, 2: 15}


@pytest.mark.kafka
def test_a_failed_write_keeps_its_input_offsets_uncommitted(kafka_bootstrap, topic_factory, client) -> None:
    source = topic_factory("source")
    # The broker rejects the oversized record after the send returned: the failure surfaces
    # only in the writer's finish_bundle, after the reader's process() call has ended.
    sink = topic_factory("sink", config={"max.message.bytes": "2048"})
    group = f"{source}-group"
    messages = spread(30)
    poison_offset = 6
    messages[poison_offset * 3] = (b"poison", b"x" * 10_000, 0)
    produce(kafka_bootstrap, source, messages)
    config = ConsumerConfig(
        kafka_bootstrap, (source,), group_id=group, stop="end", max_records_per_call=3, client=client
    )

    pipeline = BeamTestPipeline(runner=RUNNER)
    (
        pipeline
        | "Read" >> ReadFromKafka(config)
        | "Records" >> beam.FlatMap(iter)
        | "KeyValue" >> beam.Map(key_and_upper_value)
        | "Write" >> WriteToKafka(ProducerConfig(kafka_bootstrap, client=client), sink)
    )
    # kafka-python: MessageSizeTooLargeError; librdkafka: MSG_SIZE_TOO_LARGE.
    with pytest.raises(Exception, match="TooLarge|TOO_LARGE"):
        pipeline.run()

    committed = committed_offsets(kafka_bootstrap, group)
    # Bundles before the failing one were finalized and committed; the failing bundle was
    # not. A commit made inside process() would already stand at poison_offset + 3.
    assert 3 <= committed[0] <= poison_offset


@pytest.mark.kafka
def test_writers_produce_keyed_records_that_decode(kafka_bootstrap, topic_factory, client) -> None:
    source, upper, even, odd = (topic_factory(name) for name in ("src", "upper", "even", "odd"))
    produce(kafka_bootstrap, source, spread(30))
    config = ConsumerConfig(kafka_bootstrap, (source,), stop="end", client=client)
    producer_config = ProducerConfig(kafka_bootstrap, client=client)

    pipeline = BeamTestPipeline(runner=RUNNER)
    records = pipeline | "Read" >> ReadFromKafka(config) | "Records" >> beam.FlatMap(iter)
    (
        records
        | "Upper" >> beam.Map(key_and_upper_value)
        | "WriteUpper" >> WriteToKafka(producer_config, upper)
    )
    (
        records
        | "Route" >> beam.Map(route_by_parity, even, odd)
        | "WriteRouted" >> (WriteToKafkaTopics(producer_config))
    )
    result = pipeline.run()
    result.wait_until_finish()

    written = consume_all(kafka_bootstrap, upper, expected=30)
    assert sorted((r.key, r.value) for r in written) == sorted(
        (k, v.upper()) for k, v, _ in spread(30)
    )
    routed_even = consume_all(kafka_bootstrap, even, expected=15)
    routed_odd = consume_all(kafka_bootstrap, odd, expected=15)
    assert len(routed_even) + len(routed_odd) == 30
    assert {r.key for r in routed_even + routed_odd} == {k for k, _, _ in spread(30)}
    [counted] = [
        m for m in metric(result, "records_written") if m.key.metric.namespace.endswith(upper)
    ]
    assert counted.committed == 30


@pytest.mark.kafka
def test_reading_a_missing_topic_fails_with_its_name(kafka_bootstrap, client) -> None:
    config = ConsumerConfig(kafka_bootstrap, ("no-such-topic",), stop="end", client=client)
    pipeline = BeamTestPipeline(runner=RUNNER)
    pipeline | "Read" >> ReadFromKafka(config)

    with pytest.raises(Exception, match="'no-such-topic' does not exist"):
        pipeline.run()


def copy_topic_forever(
    bootstrap: str, source: str, sink: str, group: str, start: StartPosition, client: str
) -> None:
    """An unbounded job (run in a child process): source -> upper-case -> sink."""
    config = ConsumerConfig(bootstrap, (source,), group_id=group, start=start, client=client)
    pipeline = beam.Pipeline(options=PipelineOptions([f"--runner={RUNNER}"]))
    (
        pipeline
        | "Read" >> ReadFromKafka(config)
        | "Records" >> beam.FlatMap(iter)
        | "Upper" >> beam.Map(key_and_upper_value)
        | "Write" >> WriteToKafka(ProducerConfig(bootstrap, client=client), sink)
    )
    pipeline.run()


def start_copy_job(bootstrap: str, source: str, sink: str, start: StartPosition, client: str) -> BaseProcess:
    # A fresh interpreter: FnApiRunner's run() of an unbounded job only returns when killed.
    job = multiprocessing.get_context("spawn").Process(
        target=copy_topic_forever,
        args=(bootstrap, source, sink, f"{source}-group", start, client),
        daemon=True,
    )
    job.start()
    return job


def wait_for(condition: Callable[[], bool], timeout_s: float, every_s: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(every_s)
    return False


def committed_read_of_filled_partition(
    bootstrap: str, topic_factory, name: str, count: int, client: str
) -> tuple[ConsumerConfig, PartitionRead, str]:
    """A one-partition topic holding records 0..count-1 (value b"v<i>"); the config of a read
    that commits to its group, 10 records a bundle; the partition's read; the group."""
    topic = topic_factory(name, partitions=1)
    group = f"{topic}-group"
    produce(bootstrap, topic, [(b"k%d" % i, b"v%d" % i, 0) for i in range(count)])
    config = ConsumerConfig(bootstrap, (topic,), group_id=group, start="committed",
                            max_records_per_call=10, client=client)
    return config, PartitionRead(topic, 0, 0, None, count), group


@pytest.mark.kafka
def test_copies_of_the_reader_share_a_partitions_consumer(kafka_bootstrap, topic_factory, client) -> None:
    """A runner hands a partition's residual to whichever bundle processor is free, each with
    its own copy of the DoFn: the copy that gets it goes on with the consumer that read up to
    there (a consumer of its own would seek and drop what librdkafka had prefetched)."""
    config, partition, group = committed_read_of_filled_partition(kafka_bootstrap, topic_factory, "shared", 30,
                                                                  client)
    first, second = ReadPartitionFn(config), ReadPartitionFn(config)
    first.setup()
    second.setup()
    finalizer = BundleFinalizer()
    try:
        read = read_records(first, partition, 0, finalizer, 10)
        [consumer] = first._shared.consumers.values()
        read += read_records(second, partition, 10, finalizer, 10)
        finalizer.finalize()
        assert list(second._shared.consumers.values()) == [consumer]
        assert consumer.position() == 20
        # The first copy goes (the harness recreates idle DoFns); the second reads on.
        first.teardown()
        read += read_records(second, partition, 20, finalizer, 10)
        finalizer.finalize()
        assert list(second._shared.consumers.values()) == [consumer]
    finally:
        second.teardown()
    assert [r.offset for r in read] == list(range(30))
    assert [r.value for r in read] == [b"v%d" % i for i in range(30)]
    assert committed_offsets(kafka_bootstrap, group) == {0: 30}
    # The last copy closed the consumers: a new one starts afresh.
    third = ReadPartitionFn(config)
    third.setup()
    try:
        assert third._shared.consumers == {}
        assert [r.offset for r in read_bundle(third, partition, 30, finalizer)] == []
    finally:
        third.teardown()


@pytest.mark.kafka
def test_a_commit_that_waits_does_not_hold_up_the_partitions_reads(kafka_bootstrap, topic_factory) -> None:
    """librdkafka's consumer takes a commit and a poll at once: a commit that waits for the
    group coordinator (a broker restarting) must leave the partition's next bundles reading."""
    config, partition, group = committed_read_of_filled_partition(kafka_bootstrap, topic_factory, "slowcommit", 20,
                                                                  "confluent")
    fn = ReadPartitionFn(config)
    fn.setup()
    finalizer = BundleFinalizer()
    try:
        read = read_records(fn, partition, 0, finalizer, 10)
        [consumer] = fn._shared.consumers.values()
        waiting, release = threading.Event(), threading.Event()
        commit = consumer.commit

        def commit_after_release(offset: int, timeout_ms: int) -> None:
            waiting.set()
            release.wait(60)
            commit(offset, timeout_ms)

        consumer.commit = commit_after_release
        finalizing = threading.Thread(target=finalizer.finalize)
        finalizing.start()
        assert waiting.wait(30)
        read += read_records(fn, partition, 10, finalizer, 10)
        # The second bundle read while the first one's commit was still waiting.
        assert finalizing.is_alive()
        release.set()
        finalizing.join(30)
        finalizer.finalize()
    finally:
        release.set()
        fn.teardown()
    assert [r.offset for r in read] == list(range(20))
    assert committed_offsets(kafka_bootstrap, group) == {0: 20}


@pytest.mark.kafka
@pytest.mark.slow
def test_unbounded_job_streams_output_while_it_runs(kafka_bootstrap, topic_factory, client) -> None:
    source, sink = topic_factory("live-in"), topic_factory("live-out")
    group = f"{source}-group"
    produce(kafka_bootstrap, source, spread(9, prefix="before"))
    job = start_copy_job(kafka_bootstrap, source, sink, start="latest", client=client)
    sink_consumer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest")
    sink_consumer.subscribe([sink])
    seen: set[bytes] = set()

    def poll_sink() -> set[bytes]:
        for batch in sink_consumer.poll(timeout_ms=300).values():
            seen.update(r.key for r in batch)
        return seen

    try:
        # start="latest" is resolved once the child has started, at a moment the test cannot
        # see: probe until a record comes through.
        deadline = time.monotonic() + 90
        probe = 0
        while not any(key.startswith(b"probe") for key in poll_sink()):
            assert time.monotonic() < deadline and job.is_alive(), "the job produced nothing"
            produce(kafka_bootstrap, source, [(b"probe-%d" % probe, b"p", 0)])
            probe += 1
        live = spread(30, prefix="live")
        produce(kafka_bootstrap, source, live)

        assert wait_for(lambda: {k for k, _, _ in live} <= poll_sink(), timeout_s=60)
        assert job.is_alive()
        assert not any(key.startswith(b"before") for key in seen)
        end = total_end_offset(kafka_bootstrap, source)
        # Commits follow finalized bundles while the job keeps running.
        assert wait_for(
            lambda: sum(committed_offsets(kafka_bootstrap, group).values()) == end, timeout_s=60
        )
        assert job.is_alive()
    finally:
        job.terminate()
        job.join(timeout=30)
        sink_consumer.close()


@pytest.fixture
def private_broker(tmp_path: Path) -> Iterator[LocalKafka]:
    """A broker of the test's own, free to be restarted."""
    broker = LocalKafka(port=free_port(), state_dir=tmp_path)
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.kafka
@pytest.mark.slow
def test_unbounded_job_rides_out_a_broker_restart(private_broker: LocalKafka, client) -> None:
    bootstrap = private_broker.bootstrap
    source, sink = unique_topic_name("restart-in"), unique_topic_name("restart-out")
    create_topic(bootstrap, source)
    create_topic(bootstrap, sink)
    before, after = spread(30, prefix="before"), spread(30, prefix="after")
    produce(bootstrap, source, before)
    job = start_copy_job(bootstrap, source, sink, start="earliest", client=client)
    try:
        assert len(consume_all(bootstrap, sink, expected=30, timeout_s=90)) >= 30

        private_broker.stop()
        # Seconds without a broker: polls, position checks and offset commits fail meanwhile.
        time.sleep(3)
        private_broker.start()
        produce(bootstrap, source, after)

        keys = {r.key for r in consume_all(bootstrap, sink, expected=60, timeout_s=90)}
        assert keys >= {k for k, _, _ in before + after}
        assert job.is_alive()
    finally:
        job.terminate()
        job.join(timeout=30)


@pytest.mark.kafka
@pytest.mark.slow
def test_an_offset_commit_gives_up_while_the_broker_is_away_and_a_later_bundle_makes_it_good(
    private_broker: LocalKafka, client
) -> None:
    bootstrap = private_broker.bootstrap
    topic = unique_topic_name("commit-away")
    create_topic(bootstrap, topic, 1)
    group = f"{topic}-group"
    produce(bootstrap, topic, [(b"k%d" % i, b"v", 0) for i in range(10)])
    fn = ReadPartitionFn(ConsumerConfig(bootstrap, (topic,), group_id=group, start="committed",
                                        commit_timeout_ms=2000, client=client))
    fn.setup()
    partition = PartitionRead(topic, 0, 0, None, 10)
    finalizer = BundleFinalizer()
    try:
        assert len(read_records(fn, partition, 0, finalizer, 10)) == 10
        private_broker.stop()
        # The runner finalizes on its own thread, and every partition's next bundle waits for
        # it: it must give up while the broker is still away, not wait for its return.
        finalizing = threading.Thread(target=finalizer.finalize, daemon=True)
        finalizing.start()
        finalizing.join(timeout=30)
        assert not finalizing.is_alive()
        private_broker.start()

        def quiet_bundle_commits() -> bool:
            # No record arrives after the failed commit.
            assert read_bundle(fn, partition, 10, finalizer) == []
            finalizer.finalize()
            return committed_offsets(bootstrap, group) == {0: 10}

        assert wait_for(quiet_bundle_commits, timeout_s=90, every_s=1)
    finally:
        fn.teardown()


@pytest.mark.kafka
@pytest.mark.slow
def test_a_reader_torn_down_while_the_broker_is_gone_for_good_still_ends(private_broker: LocalKafka, client) -> None:
    bootstrap = private_broker.bootstrap
    topic = unique_topic_name("teardown-away")
    create_topic(bootstrap, topic, 3)
    produce(bootstrap, topic, [(b"k%d" % i, b"v", i % 3) for i in range(30)])
    fn = ReadPartitionFn(ConsumerConfig(bootstrap, (topic,), group_id=f"{topic}-group", start="committed",
                                        commit_timeout_ms=2000, client=client))
    fn.setup()
    finalizer = BundleFinalizer()
    for p in range(3):
        assert len(read_records(fn, PartitionRead(topic, p, 0, None, 10), 0, finalizer, 10)) == 10
    private_broker.stop()
    # Each commit gives up after 2 s and stays queued in the client, which never gets an answer.
    finalizer.finalize()
    # A job cancelled or drained with its broker gone for good must still end: its teardown
    # may not wait for those commits.
    tearing_down = threading.Thread(target=fn.teardown, daemon=True)
    tearing_down.start()
    tearing_down.join(timeout=CONSUMER_CLOSE_TIMEOUT_S + 15)
    assert not tearing_down.is_alive()


class BundleFinalizer:
    """What the runner does with a bundle's finalization callbacks, once the bundle is committed."""

    def __init__(self) -> None:
        self._callbacks: list[Callable[[], None]] = []

    def register(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)

    def finalize(self) -> None:
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback()


def read_bundle(fn: ReadPartitionFn, partition: PartitionRead, start: int, finalizer: BundleFinalizer) -> list:
    """The records of one bundle of an unbounded read of `partition` from `start`, as a runner calls it."""
    tracker = RestrictionTrackerView(ThreadsafeRestrictionTracker(PartitionTracker(OffsetRange(start, UNBOUNDED))))
    return [record for batch in fn.process(partition, finalizer, tracker, ManualWatermarkEstimator(None))
            for record in batch.value]


def read_records(fn: ReadPartitionFn, partition: PartitionRead, start: int, finalizer: BundleFinalizer,
                 count: int | None, timeout_s: float = 60) -> list:
    """`count` records of `partition` from `start`, read in as many bundles as that takes
    within `timeout_s`; with `count` None, whatever bundle after bundle reads in `timeout_s`.

    A consumer's first bundles can read nothing while it still looks up its broker and offset
    (a bundle ends after one empty poll): only the records, not how they are split, are asserted.
    """
    records: list = []
    deadline = time.monotonic() + timeout_s
    while (count is None or len(records) < count) and time.monotonic() < deadline:
        records += read_bundle(fn, partition, start + len(records), finalizer)
    return records


@pytest.mark.kafka
def test_a_failed_offset_commit_is_made_good_by_the_next_bundle_even_if_it_reads_nothing(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("quiet", partitions=1)
    group = f"{topic}-group"
    produce(kafka_bootstrap, topic, [(b"k%d" % i, b"v", 0) for i in range(10)])
    # A member of the job's group (someone's console consumer, a rebalance under way) makes
    # the broker refuse the reader's commits, which come from outside the group's generation.
    member = KafkaConsumer(topic, bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
    deadline = time.monotonic() + 30
    while not member.assignment() and time.monotonic() < deadline:
        member.poll(timeout_ms=200)
    fn = ReadPartitionFn(ConsumerConfig(kafka_bootstrap, (topic,), group_id=group, start="committed", client=client))
    fn.setup()
    partition = PartitionRead(topic, 0, 0, None, 10)
    finalizer = BundleFinalizer()
    try:
        assert len(read_records(fn, partition, 0, finalizer, 10)) == 10
        finalizer.finalize()
        assert committed_offsets(kafka_bootstrap, group) == {}

        # The member leaves; no record arrives after the failed commit.
        member.close()
        assert read_bundle(fn, partition, 10, finalizer) == []
        finalizer.finalize()
    finally:
        fn.teardown()

    assert committed_offsets(kafka_bootstrap, group) == {0: 10}


def stop_fetching(consumer: object) -> None:
    """Makes a real partition consumer deliver nothing more: what librdkafka's does, for good,
    after some broker restarts (that cannot be caused on demand)."""
    inner = consumer._consumer
    if isinstance(inner, KafkaConsumer):
        inner.pause(consumer._tp)
    else:
        inner.pause([confluent_kafka.TopicPartition(consumer._topic, consumer._partition)])


@pytest.mark.kafka
def test_a_consumer_that_stops_fetching_is_replaced_where_it_stood_and_a_quiet_one_is_kept(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("stalled", partitions=1)
    produce(kafka_bootstrap, topic, [(b"k%d" % i, b"v", 0) for i in range(10)])
    fn = ReadPartitionFn(ConsumerConfig(kafka_bootstrap, (topic,), stall_timeout_ms=1000, client=client))
    fn.setup()
    partition = PartitionRead(topic, 0, 0, None, 10)
    finalizer = BundleFinalizer()

    def read_from(start: int, seconds: float, until: int | None = None) -> list[int]:
        return [r.offset for r in read_records(fn, partition, start, finalizer, until, timeout_s=seconds)]

    try:
        assert read_from(0, 30, until=10) == list(range(10))
        stalled = fn._shared.consumers[(topic, 0)]
        stop_fetching(stalled)
        produce(kafka_bootstrap, topic, [(b"k%d" % i, b"v", 0) for i in range(10, 20)])

        assert read_from(10, 30, until=10) == list(range(10, 20))
        fresh = fn._shared.consumers[(topic, 0)]
        assert fresh is not stalled
        # Caught up, on a partition nobody writes to: probed three times, replaced never.
        assert read_from(20, 3.5) == []
        assert fn._shared.consumers[(topic, 0)] is fresh
    finally:
        fn.teardown()


def run_bundles(fn: ReadPartitionFn, partition: PartitionRead, timeout_s: float) -> tuple[list[KafkaRecord], int | None]:
    """Runs the read of `partition` bundle after bundle, each from the last one's residual, as
    a runner does, for at most `timeout_s`: the records, and where the residual starts (None
    once the read has ended)."""
    records: list[KafkaRecord] = []
    start = partition.start_offset
    stop = UNBOUNDED if partition.stop_offset is None else partition.stop_offset
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        tracker = ThreadsafeRestrictionTracker(PartitionTracker(OffsetRange(start, stop)))
        for batch in fn.process(partition, BundleFinalizer(), RestrictionTrackerView(tracker),
                                ManualWatermarkEstimator(None)):
            records += batch.value
        deferred = tracker.deferred_status()
        if deferred is None:
            return records, None
        start = deferred[0].start
    return records, start


@pytest.mark.kafka
def test_a_bounded_read_of_a_transactional_log_ends_with_only_the_committed_records(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("transactional", partitions=1)
    producer = confluent_kafka.Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"{topic}-producer"})
    producer.init_transactions(30)
    for keys, commit in ((["c0", "c1", "c2"], True), (["a0", "a1"], False), (["c3", "c4"], True)):
        producer.begin_transaction()
        for key in keys:
            producer.produce(topic, key=key.encode(), value=b"v", partition=0)
        producer.flush(30)  # or an abort drops the records before they reach the log
        producer.commit_transaction(30) if commit else producer.abort_transaction(30)
    # 7 records and 3 transaction markers, the last of them past the last record. The
    # coordinator writes the markers after the commit returns.
    assert wait_for(lambda: log_ends(kafka_bootstrap, topic) == (10, 10), timeout_s=30)
    committed_keys = [b"c0", b"c1", b"c2", b"c3", b"c4"]
    fn = ReadPartitionFn(ConsumerConfig(kafka_bootstrap, (topic,), stop="end", client=client))
    fn.setup()
    try:
        records, residual = run_bundles(fn, PartitionRead(topic, 0, 0, 10, 10), timeout_s=30)
    finally:
        fn.teardown()
    assert [r.key for r in records] == committed_keys
    assert records[-1].offset < 9
    assert residual is None  # the read ended
    # An unbounded read goes on past the last marker, where its consumer is: it does not
    # seek back onto the marker at every poll.
    fn = ReadPartitionFn(ConsumerConfig(kafka_bootstrap, (topic,), client=client))
    fn.setup()
    try:
        records, residual = run_bundles(fn, PartitionRead(topic, 0, 0, None, 10), timeout_s=3)
    finally:
        fn.teardown()
    assert [r.key for r in records] == committed_keys
    assert residual == 10


def log_ends(bootstrap: str, topic: str) -> tuple[int, int]:
    """The partition's end offset for a reader of committed records, and for any reader."""
    tp = TopicPartition(topic, 0)
    ends = []
    for isolation in ("read_committed", "read_uncommitted"):
        consumer = KafkaConsumer(bootstrap_servers=bootstrap, isolation_level=isolation)
        try:
            ends.append(consumer.end_offsets([tp])[tp])
        finally:
            consumer.close()
    return ends[0], ends[1]


@pytest.mark.kafka
@pytest.mark.slow
def test_reads_writes_and_commits_go_on_after_the_broker_closes_idle_connections(tmp_path: Path, client) -> None:
    # The broker drops connections idle for a second (10 minutes by default): a quiet output
    # topic's producer and the commit path's coordinator connection meet this after every pause.
    broker = LocalKafka(port=free_port(), state_dir=tmp_path,
                        extra_properties={"connections.max.idle.ms": "1000"})
    broker.start()
    bootstrap = broker.bootstrap
    source, sink = unique_topic_name("idle-in"), unique_topic_name("idle-out")
    create_topic(bootstrap, source, 1)
    create_topic(bootstrap, sink, 1)
    group = f"{source}-group"
    reader = ReadPartitionFn(ConsumerConfig(bootstrap, (source,), group_id=group, start="committed", client=client))
    writer = _WriteFn(ProducerConfig(bootstrap, retry_timeout_ms=30_000, client=client))
    reader.setup()
    writer.setup()
    finalizer = BundleFinalizer()
    position = 0
    try:
        for pause in range(3):
            produce(bootstrap, source, [(b"k%d-%d" % (pause, i), b"v", 0) for i in range(5)])
            # One bundle is one poll, which may return part of what was produced.
            records = read_records(reader, PartitionRead(source, 0, position, None, 0), position, finalizer, 5)
            writer.start_bundle()
            for record in records:
                writer.process((sink, record.key, record.value))
            writer.finish_bundle()
            finalizer.finalize()
            position += len(records)
            # Idle for several times the broker's limit: it closes every connection of both clients.
            time.sleep(3)
    finally:
        writer.teardown()
        reader.teardown()
    try:
        written = consume_all(bootstrap, sink, expected=15)
        committed = committed_offsets(bootstrap, group)
    finally:
        broker.stop()

    assert sorted(m.key for m in written) == sorted(b"k%d-%d" % (p, i) for p in range(3) for i in range(5))
    assert committed == {0: 15}


def watch_call(fn: _WatchPartitionsFn, topic: str, first_unclaimed: int,
               estimator: ManualWatermarkEstimator) -> tuple[list[PartitionRead], list, OffsetRange]:
    """One call of the partition watch as a runner makes it: the reads, their timestamps, the residual."""
    tracker = ThreadsafeRestrictionTracker(PartitionTracker(OffsetRange(first_unclaimed, UNBOUNDED)))
    out = list(fn.process(topic, RestrictionTrackerView(tracker), estimator))
    residual, _ = tracker.deferred_status()
    reads = [o.value if isinstance(o, TimestampedValue) else o for o in out]
    stamps = [o.timestamp if isinstance(o, TimestampedValue) else None for o in out]
    return reads, stamps, residual


@pytest.mark.kafka
def test_the_watch_hands_out_partitions_added_later_from_their_beginning(
    kafka_bootstrap, topic_factory, client
) -> None:
    topic = topic_factory("grow", partitions=2)
    group = f"{topic}-group"
    produce(kafka_bootstrap, topic, [(b"a", b"v", 0), (b"b", b"v", 0), (b"c", b"v", 1)])
    config = ConsumerConfig(kafka_bootstrap, (topic,), group_id=group, start="latest", client=client,
                            partition_discovery_interval_s=0.001)
    fn = _WatchPartitionsFn(config)
    fn.setup()
    estimator = ManualWatermarkEstimator(None)
    try:
        # The partitions there are start where the read's start says.
        reads, _, residual = watch_call(fn, topic, 0, estimator)
        assert reads == [PartitionRead(topic, 0, 2, None, 2), PartitionRead(topic, 1, 1, None, 1)]
        assert residual.start == 2
        first_watermark = estimator.current_watermark()
        assert first_watermark is not None

        reads, _, residual = watch_call(fn, topic, 2, estimator)
        assert (reads, residual.start) == ([], 2)

        admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        try:
            admin.create_partitions({topic: NewPartitions(total_count=4)})
        finally:
            admin.close()
        produce(kafka_bootstrap, topic, [(b"d", b"v", 2), (b"e", b"v", 2), (b"f", b"v", 3), (b"g", b"v", 3)])
        # The group has been in partition 3 before (a restore from an older checkpoint).
        committer = KafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        try:
            committer.commit({TopicPartition(topic, 3): OffsetAndMetadata(1, "", -1)})
        finally:
            committer.close()

        # Partitions added later start at their beginning, whatever start says, or at the group's commit.
        reads, stamps, residual = watch_call(fn, topic, 2, estimator)
        assert reads == [PartitionRead(topic, 2, 0, None, 2), PartitionRead(topic, 3, 1, None, 2)]
        assert residual.start == 4
        # Not behind the watermark the watch had reported; which then moves on.
        assert all(stamp is not None and stamp >= first_watermark for stamp in stamps)
        assert estimator.current_watermark() >= first_watermark
    finally:
        fn.teardown()
