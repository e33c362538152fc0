"""Kafka IO for Apache Beam: a splittable-DoFn reader and an at-least-once writer.

    config = ConsumerConfig("127.0.0.1:19092", topics=("events",), group_id="metafix",
                            start="committed", client="confluent")
    batches = p | "ReadEvents" >> ReadFromKafka(config)          # PCollection[list[KafkaRecord]]
    messages | "WriteOutput" >> WriteToKafka(ProducerConfig("127.0.0.1:19092"), topic="out")
    message_batches | "WriteAll" >> WriteBatchesToKafka(ProducerConfig("127.0.0.1:19092"))

The reader emits one element per poll: the list of records it claimed, in offset order.
Beam's per-element cost (about 5 µs per DoFn call) is then paid once per batch instead of
once per record, and every step downstream works on whole batches. The client is
kafka-python or confluent-kafka (``streaming/kafka_clients.py``), chosen by ``client``.

Delivery is at-least-once end to end. The reader commits a partition's offset only from a
bundle finalizer, which runs after the bundle's outputs have been committed by the runner; in
a fused read -> write stage the writer's finish_bundle flushes the producer and raises on any
failed send before that, so an input offset is never committed past an unwritten output.
That holds only while the writers are fused with the reader: a runner-side Flatten (Prism
executes every Flatten in the runner) or a GroupByKey between them ends the stage, and the
read bundle is then finalized before the writes happen. So give every PCollection bound for
Kafka its own write step instead of flattening them first; the write steps of a process
share one producer.

Faults are retried, with bounds: the reader retries a failed poll with back-off for
`read_retry_timeout_ms`; the writer re-sends records whose send failed with a retriable error
(broker away, topic missing) with back-off for `retry_timeout_ms`; past either bound the
bundle fails with a one-line reason, its offsets stay uncommitted, and a restart with
start="committed" resumes there.

An unbounded read with `partition_discovery_interval_s` lists its topics that often and reads
the partitions added since from their beginning (or the group's commit there); without it,
and for bounded reads, the partitions are listed once, when the read starts.

The reader checkpoints after every poll batch (defer_remainder), each checkpoint ends a
bundle, and the runner schedules the residual as the next bundle. FnApiRunner does not honour
resume delays, so an idle reader blocks in poll() for `poll_timeout_ms` instead of spinning.
"""

from __future__ import annotations

import functools
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import apache_beam as beam
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker
from apache_beam.io.watermark_estimators import ManualWatermarkEstimator
from apache_beam.metrics import Metrics
from apache_beam.transforms.core import RestrictionProvider
from apache_beam.transforms.window import TimestampedValue
from apache_beam.utils.timestamp import Duration, Timestamp

from streaming import live_metrics
from streaming.batch_coder import BatchList
from streaming.kafka_clients import (
    DEFAULT_CLIENT,
    ClientName,
    ConsumerSettings,
    KafkaClientError,
    KafkaRecord,
    KafkaSecurity,
    MetadataClient,
    PartitionConsumer,
    Producer,
    ProducerSettings,
    kafka_client,
)

log = logging.getLogger(__name__)

# How long a read's teardown waits for its consumers to close. librdkafka's close() waits for
# the offset commits it still holds: with the broker gone for good, 43 s per consumer here,
# one after another. A job cancelled then would take minutes to end; its commits add nothing
# (each bundle's records were written before its commit was asked for).
CONSUMER_CLOSE_TIMEOUT_S = 15

# The stop of an unbounded partition restriction: larger than any Kafka offset.
UNBOUNDED = sys.maxsize

StartPosition = Literal["earliest", "latest", "committed"] | int
StopPosition = Literal["end"] | int | None

# Records one poll of a partition may emit as one batch (one bundle). Every bundle pays a
# fixed cost (Prism hands the reader's residual back, the producer flushes with acks=all,
# the offsets are committed, the first model call is not overlapped); a job that has fallen
# behind catches up faster with fewer, larger bundles. Here, 300k events through the stream:
# 4.6k events/s with 2,000, 8.0k with 5,000, 7.8k with 20,000. A job that keeps up polls
# fewer records than this: the cap matters while it catches up.
DEFAULT_MAX_RECORDS_PER_POLL = 5000


@dataclass(frozen=True)
class ConsumerConfig:
    """Plain, picklable settings of a Kafka read.

    start: "earliest", "latest", "committed" (the group's committed offset, else earliest)
        or a timestamp in ms (the first record at or after it).
    stop: None reads forever; "end" stops at the end offsets seen when the read starts; a
        timestamp in ms stops before the first record at or after it (among the records present
        when the read starts). Either stop makes the read bounded.
    group_id: offsets are committed to this group after each finalized bundle; None commits
        nothing.
    """

    bootstrap_servers: str
    topics: tuple[str, ...]
    group_id: str | None = None
    start: StartPosition = "earliest"
    stop: StopPosition = None
    # Records per process() call: one call is one checkpoint, so this bounds a bundle.
    max_records_per_call: int = DEFAULT_MAX_RECORDS_PER_POLL
    # How long an idle reader blocks in poll() before it checkpoints.
    poll_timeout_ms: int = 300
    # A caught-up partition moves its watermark to now minus this, leaving room for records
    # whose create time precedes their arrival at the broker.
    idle_watermark_lag_ms: int = 2000
    # How long a partition may keep failing (broker away) before its bundle fails.
    read_retry_timeout_ms: int = 300_000
    # A commit waits this long for the group coordinator; a failed commit is retried by the
    # next finalized bundle, which commits a later offset.
    commit_timeout_ms: int = 10_000
    # A partition consumer that delivers nothing for this long while the broker holds records
    # past it, or whose commits keep failing this long while the broker answers, is replaced
    # (_StallWatch).
    stall_timeout_ms: int = 30_000
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    client: ClientName = DEFAULT_CLIENT
    # An unbounded read lists its topics this often and reads the partitions added since;
    # None reads the partitions there are when the read starts. Bounded reads list once.
    partition_discovery_interval_s: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.topics, str):
            object.__setattr__(self, "topics", (self.topics,))
        if not self.topics:
            raise ValueError("ConsumerConfig needs at least one topic")
        if not (self.start in ("earliest", "latest", "committed") or _is_timestamp(self.start)):
            raise ValueError(
                f"start must be earliest, latest, committed or a ms timestamp, got {self.start!r}"
            )
        if not (self.stop in (None, "end") or _is_timestamp(self.stop)):
            raise ValueError(f"stop must be None, 'end' or a ms timestamp, got {self.stop!r}")
        if self.start == "committed" and self.group_id is None:
            raise ValueError("start='committed' needs a group_id")
        if self.max_records_per_call < 1 or self.poll_timeout_ms < 1 or self.stall_timeout_ms < 1:
            raise ValueError("max_records_per_call, poll_timeout_ms and stall_timeout_ms must be positive")
        if self.partition_discovery_interval_s is not None and self.partition_discovery_interval_s <= 0:
            raise ValueError("partition_discovery_interval_s must be positive (or None: no discovery)")

    def settings(self) -> ConsumerSettings:
        return ConsumerSettings(self.bootstrap_servers, self.group_id, self.max_records_per_call, self.security)


@dataclass(frozen=True)
class ProducerConfig:
    bootstrap_servers: str
    linger_ms: int = 5
    # How long a send may wait for a topic's metadata (a missing topic) before the record is
    # held for the bundle's retries instead.
    max_block_ms: int = 10_000
    # How long the client itself keeps trying to deliver a record before reporting it failed.
    delivery_timeout_ms: int = 120_000
    # Producer batch size: kafka-python's default 16 KB costs 1.8x the CPU per record.
    batch_bytes: int = 512 * 1024
    # How long a bundle keeps re-sending records that failed with a retriable error.
    retry_timeout_ms: int = 300_000
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    client: ClientName = DEFAULT_CLIENT

    def settings(self) -> ProducerSettings:
        return ProducerSettings(self.bootstrap_servers, self.linger_ms, self.max_block_ms,
                                self.delivery_timeout_ms, self.batch_bytes, self.security)


class KafkaWriteError(RuntimeError):
    """Records could not be written within the retry bound (or failed for good)."""


class KafkaReadError(RuntimeError):
    """A partition could not be read within the retry bound."""


# One element of ReadFromKafka: the records of one poll of one partition, in offset order.
KafkaBatch = list[KafkaRecord]


class PartitionRead(NamedTuple):
    """One partition's share of a read, with offsets resolved when the read starts."""

    topic: str
    partition: int
    start_offset: int
    # None for an unbounded read.
    stop_offset: int | None
    # The log end offset when the read started: the backlog estimate before any poll.
    end_offset: int


def _is_timestamp(position: object) -> bool:
    return isinstance(position, int) and not isinstance(position, bool) and position >= 0


def resolve_start_offset(
    start: StartPosition,
    *,
    beginning: int,
    end: int,
    committed: int | None,
    at_time: int | None,
) -> int:
    """The first offset to read. `at_time` is offsets_for_times' answer for a timestamp start."""
    if start == "earliest":
        return beginning
    if start == "latest":
        return end
    if start == "committed":
        # Retention may have deleted the records at a committed offset.
        return beginning if committed is None else min(max(committed, beginning), end)
    return end if at_time is None else at_time


def resolve_stop_offset(stop: StopPosition, *, end: int, at_time: int | None) -> int | None:
    """The offset a bounded read stops before; None when the read is unbounded."""
    if stop is None:
        return None
    if stop == "end":
        return end
    return end if at_time is None else at_time


class PartitionTracker(OffsetRestrictionTracker):
    """An offset tracker that splits only to checkpoint (fraction 0).

    Runners split slow bundles (Prism does); splitting [start, UNBOUNDED) at a fraction of
    what is left makes a residual that starts near 2**62, an offset no partition has: its
    consumer would be reset to the earliest offset and claim records outside its range.
    A bounded range is kept whole too: two pieces of one partition read side by side could
    commit the later piece's offset while the earlier piece is still unread.
    """

    def try_split(self, fraction_of_remainder: float):
        if fraction_of_remainder > 0:
            return None
        return super().try_split(fraction_of_remainder)


def _timestamp_of(ms: int) -> Timestamp:
    return Timestamp(micros=ms * 1000)


def discovered_partition_start(group_id: str | None) -> StartPosition:
    """Where a partition found after the read started begins, whatever the read's own start.

    It did not exist when the read started, so all of it is new: from its beginning, unless
    the group has committed an offset there (a job restored from a checkpoint that predates
    the discovery), which lies past records already written.

    >>> discovered_partition_start("metafix"), discovered_partition_start(None)
    ('committed', 'earliest')
    """
    return "earliest" if group_id is None else "committed"


def new_partition_ids(listed: Iterable[int], first_unclaimed: int) -> list[int]:
    """The listed partition ids not handed out yet; Kafka numbers partitions 0, 1, ... and only adds.

    >>> new_partition_ids([2, 0, 3, 1], 2)
    [2, 3]
    """
    return sorted(p for p in listed if p >= first_unclaimed)


def _partition_reads(
    metadata: MetadataClient, config: ConsumerConfig, topic: str, ids: list[int], start: StartPosition
) -> Iterator[PartitionRead]:
    """One PartitionRead per partition in `ids`, reading from `start` to the config's stop."""
    offsets = metadata.offsets(topic, ids, with_committed=start == "committed")
    start_times = _offsets_at(metadata, start, topic, ids)
    stop_times = _offsets_at(metadata, config.stop, topic, ids)
    for p in ids:
        known = offsets[p]
        first = resolve_start_offset(
            start,
            beginning=known.beginning,
            end=known.end,
            committed=known.committed,
            at_time=start_times.get(p),
        )
        stop = resolve_stop_offset(config.stop, end=known.end, at_time=stop_times.get(p))
        if stop is not None:
            first = min(first, stop)
        log.info(
            "reading %s[%d] from offset %d to %s",
            topic,
            p,
            first,
            "the end of time" if stop is None else stop,
        )
        yield PartitionRead(topic, p, first, stop, known.end)


def _offsets_at(
    metadata: MetadataClient, position: StartPosition | StopPosition, topic: str, ids: list[int]
) -> Mapping[int, int]:
    if not _is_timestamp(position):
        return {}
    return metadata.offsets_at(topic, ids, position)


def _missing_topic(topic: str, config: ConsumerConfig) -> ValueError:
    return ValueError(f"Kafka topic {topic!r} does not exist on {config.bootstrap_servers}")


class _ListPartitionsFn(beam.DoFn):
    """Impulse -> one PartitionRead per partition of the configured topics."""

    def __init__(self, config: ConsumerConfig) -> None:
        self._config = config

    def setup(self) -> None:
        self._metadata: MetadataClient = kafka_client(self._config.client).metadata(self._config.settings())

    def process(self, unused_impulse: bytes) -> Iterator[PartitionRead]:
        for topic in self._config.topics:
            ids = self._metadata.partitions(topic)
            if not ids:
                raise _missing_topic(topic, self._config)
            yield from _partition_reads(self._metadata, self._config, topic, ids, self._config.start)

    def teardown(self) -> None:
        self._metadata.close()


def _each(unused_impulse: bytes, items: Iterable[str]) -> Iterable[str]:
    return items


class _WatchPartitionsFn(beam.DoFn, RestrictionProvider):
    """Splittable DoFn: topic -> a PartitionRead for each of its partitions, as they appear.

    The restriction is a range of partition ids: claiming id k hands out partitions up to k.
    The first call hands out the partitions there are, from the read's start; each later
    call, every `partition_discovery_interval_s`, hands out the partitions added since, from
    their beginning (``discovered_partition_start``). It never ends, like the reads it feeds.

    Its watermark is the time of the last listing (less `idle_watermark_lag_ms`): a partition
    not listed yet was created after it, so its records are no older (up to the lag).
    """

    def __init__(self, config: ConsumerConfig) -> None:
        self._config = config

    def setup(self) -> None:
        self._metadata: MetadataClient = kafka_client(self._config.client).metadata(self._config.settings())
        # Per topic: when this instance last listed it. A runner that ignores resume delays
        # (FnApiRunner) calls back at once; those calls defer without asking the broker.
        self._listed_at: dict[str, float] = {}
        self._discovered = Metrics.counter("kafkaio", "partitions_discovered")

    def teardown(self) -> None:
        self._metadata.close()

    # RestrictionProvider

    def initial_restriction(self, topic: str) -> OffsetRange:
        return OffsetRange(0, UNBOUNDED)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return PartitionTracker(restriction)

    def restriction_size(self, topic: str, restriction: OffsetRange) -> int:
        # Nothing to size: one listing a call, whatever the range.
        return 1

    # DoFn

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        topic: str,
        tracker=beam.DoFn.RestrictionParam(),
        watermark_estimator=beam.DoFn.WatermarkEstimatorParam(
            ManualWatermarkEstimator.default_provider()
        ),
    ) -> Iterator[PartitionRead | TimestampedValue]:
        interval_s = self._config.partition_discovery_interval_s
        assert interval_s is not None, "ReadFromKafka watches partitions only with an interval"
        restriction = tracker.current_restriction()
        first = restriction.start == 0
        wait_s = self._listed_at.get(topic, -interval_s) + interval_s - time.monotonic()
        if not first and wait_s > 0:
            tracker.defer_remainder(Duration.of(wait_s))
            return
        try:
            reads = self._new_reads(topic, restriction.start, first)
        except KafkaClientError as error:
            if first:
                raise
            # The broker is away: the partitions being read retry on their own, and the next
            # listing finds what this one missed.
            log.warning("listing the partitions of %s failed (%s); next try in %.0f s", topic, error, interval_s)
            tracker.defer_remainder(Duration.of(interval_s))
            return
        self._listed_at[topic] = time.monotonic()
        if reads and not tracker.try_claim(reads[-1].partition):
            # The runner checkpointed the restriction meanwhile: the residual lists again.
            return
        # Not behind the watermark this DoFn has reported so far.
        stamp = watermark_estimator.current_watermark()
        for read in reads:
            yield read if stamp is None else TimestampedValue(read, stamp)
        if reads and not first:
            self._discovered.inc(len(reads))
        listed = Timestamp.now() - Duration(micros=self._config.idle_watermark_lag_ms * 1000)
        if stamp is None or listed > stamp:
            watermark_estimator.set_watermark(listed)
        tracker.defer_remainder(Duration.of(interval_s))

    def _new_reads(self, topic: str, first_unclaimed: int, first: bool) -> list[PartitionRead]:
        listed = self._metadata.partitions(topic)
        if not listed:
            if first:
                raise _missing_topic(topic, self._config)
            # Deleted meanwhile, or the broker answered without it: nothing new.
            return []
        ids = new_partition_ids(listed, first_unclaimed)
        if not ids:
            return []
        start = self._config.start if first else discovered_partition_start(self._config.group_id)
        if not first:
            log.info("found %d new partition(s) of %s: %s", len(ids), topic, ids)
        return list(_partition_reads(self._metadata, self._config, topic, ids, start))


@dataclass
class _PartitionHealth:
    """What _StallWatch knows of one partition's current consumer."""

    # Since when the consumer has delivered nothing (or since a probe found it caught up).
    quiet_since: float
    # Since when its offset commits have got no answer, every one; None after one answered
    # (done, or refused: a refusal is an answer).
    unanswered_since: float | None = None
    last_probe: float = float("-inf")
    probing: bool = False
    replace_because: str | None = None


class _StallProbe(NamedTuple):
    """A question to the broker, asked on behalf of one partition's consumer."""

    tp: tuple[str, int]
    position: int
    asked_at: float


class _StallWatch:
    """Finds partition consumers that stopped working while their broker still answers.

    A librdkafka consumer given its partition with assign() can come back from a broker
    restart unable to fetch or commit, for good (librdkafka issue 5153, open, reports one
    that stops reading; only a new consumer helps). Here, after a 17-s restart, one of a
    job's three partition consumers fetched nothing and got no answer to any commit for the
    5 minutes the test waited, while the other two, in the same process and group, went on.

    The reader tells the watch what its consumers do. A consumer that has delivered nothing
    for ``stall_s``, or whose commits have all gone unanswered for ``stall_s``, is checked by
    asking the broker, from another client, for the partition's end offset (``probe_due``,
    then ``probed``). The consumer is marked for replacement only if that client gets an
    answer, and, for a quiet one, only if the broker holds records past the consumer's
    position. So an outage (nobody gets answers) or a quiet partition (nothing to read)
    replaces nothing. A partition is probed at most once per ``stall_s``. Records past the
    position can also be out of any reader's reach for a while (those of a transaction still
    open upstream: the end offset librdkafka's probe gets counts them): a consumer that was
    already replaced at the same position and still delivers nothing is not replaced again
    there.
    """

    def __init__(self, stall_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._stall_s = stall_s
        self._clock = clock
        self._health: dict[tuple[str, int], _PartitionHealth] = {}
        # Per partition: the position of the last replacement made because it was quiet.
        self._replaced_quiet_at: dict[tuple[str, int], int] = {}
        self._guard = threading.Lock()

    def started(self, tp: tuple[str, int]) -> None:
        """A new consumer reads the partition: it has a clean record."""
        with self._guard:
            self._health[tp] = _PartitionHealth(quiet_since=self._clock())

    def delivered(self, tp: tuple[str, int]) -> None:
        with self._guard:
            if tp in self._health:
                self._health[tp].quiet_since = self._clock()

    def commit_answered(self, tp: tuple[str, int]) -> None:
        with self._guard:
            if tp in self._health:
                self._health[tp].unanswered_since = None

    def commit_unanswered(self, tp: tuple[str, int]) -> None:
        with self._guard:
            health = self._health.get(tp)
            if health is not None and health.unanswered_since is None:
                health.unanswered_since = self._clock()

    def probe_due(self, tp: tuple[str, int], position: int) -> _StallProbe | None:
        """A probe to run now for this partition's consumer, at `position`, or None."""
        now = self._clock()
        with self._guard:
            health = self._health.get(tp)
            if (health is None or health.probing or health.replace_because is not None
                    or now - health.last_probe < self._stall_s):
                return None
            quiet = now - health.quiet_since >= self._stall_s
            unanswered = health.unanswered_since is not None and now - health.unanswered_since >= self._stall_s
            if not (quiet or unanswered):
                return None
            health.probing = True
            health.last_probe = now
            return _StallProbe(tp, position, now)

    def probed(self, probe: _StallProbe, end_offset: int | None) -> None:
        """The probe's answer: the partition's end offset, or None when the broker did not answer."""
        with self._guard:
            health = self._health.get(probe.tp)
            if health is None:
                return
            health.probing = False
            if end_offset is None:
                return  # The broker is away for everyone: not this consumer's fault.
            if health.unanswered_since is not None and health.unanswered_since <= probe.asked_at - self._stall_s:
                health.replace_because = (f"its offset commits got no answer for {self._stall_s:.0f} s "
                                          "while the broker answers another client")
            elif health.quiet_since <= probe.asked_at - self._stall_s:
                if end_offset > probe.position and self._replaced_quiet_at.get(probe.tp) != probe.position:
                    self._replaced_quiet_at[probe.tp] = probe.position
                    health.replace_because = (f"it delivered nothing for {self._stall_s:.0f} s while the "
                                              f"broker holds offsets {probe.position} to {end_offset - 1}")
                else:
                    # Nothing to read, or nothing a new consumer could deliver either. Ask
                    # again after another stall_s.
                    health.quiet_since = self._clock()

    def replacement(self, tp: tuple[str, int]) -> str | None:
        """Why the partition's consumer must be replaced, or None; asking clears the mark."""
        with self._guard:
            health = self._health.get(tp)
            if health is None or health.replace_because is None:
                return None
            reason, health.replace_because = health.replace_because, None
            return reason


class _PartitionConsumers:
    """The partition consumers of one read, shared by every copy of its DoFn in this process.

    The runner gives a partition's residual to whichever bundle processor is free, and each
    has its own copy of the DoFn. With a consumer per copy, the copy that got the residual
    had a consumer elsewhere in the partition (or none): it seeked, and the client dropped
    what it had prefetched and fetched again. On Prism, 300k events from 3 partitions: 66 of
    113 bundles started so (16 consumers were made), and bundles waited 22 s in all in their
    polls; with the consumers shared, 3 were made, none seeked, and the polls took 3-4 s.
    The stream's rate went from 7.6-9.1k to 8.9-9.7k events/s, and its resident memory
    fell by about 0.5 GB: each consumer prefetches up to 32 MB.

    ``lock(tp)`` is held while a bundle polls a partition's consumer, while a finalizer
    commits with one that is not thread-safe (kafka-python's), and while a stalled consumer is
    replaced.
    """

    def __init__(self, config: ConsumerConfig) -> None:
        self._config = config
        self.consumers: dict[tuple[str, int], PartitionConsumer] = {}
        self.stalls = _StallWatch(config.stall_timeout_ms / 1000)
        # The client that probes for _StallWatch: made on first use, used by one probe at a time.
        self._prober: MetadataClient | None = None
        self._probe_guard = threading.Lock()
        self._closed = False
        # Per partition: (time of the first failure in a row, failures in a row).
        self.read_failures: dict[tuple[str, int], tuple[float, int]] = {}
        # Partitions whose last offset commit failed (coordinator away, a group rebalancing):
        # their next bundle commits even if it reads nothing, or a partition that went quiet
        # would keep its old offset and a restart would read it all again.
        self.commit_behind: set[tuple[str, int]] = set()
        self.users = 0
        self._locks: dict[tuple[str, int], threading.Lock] = {}
        self._guard = threading.Lock()

    def lock(self, tp: tuple[str, int]) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(tp, threading.Lock())

    def replace_if_stalled(self, tp: tuple[str, int]) -> str | None:
        """Drops the partition's consumer if _StallWatch marked it; the caller holds lock(tp).

        Returns why, or None. The next bundle opens a new consumer at its restriction's start,
        right after the last record emitted: nothing is skipped or read twice. The old one is
        closed in the background: librdkafka's close() waits for the commits it holds.
        """
        reason = self.stalls.replacement(tp)
        if reason is None:
            return None
        stalled = self.consumers.pop(tp, None)
        if stalled is not None:
            _run_in_background(f"metafix-close-{tp[0]}-{tp[1]}", stalled.close)
        return reason

    def probe(self, probe: _StallProbe) -> None:
        """Asks the broker for the probed partition's end offset, off the reading thread."""
        _run_in_background(f"metafix-probe-{probe.tp[0]}-{probe.tp[1]}", self._probe, probe)

    def _probe(self, probe: _StallProbe) -> None:
        topic, partition = probe.tp
        end: int | None = None
        try:
            with self._probe_guard:
                if self._closed:
                    return  # Torn down meanwhile: the job is stopping.
                if self._prober is None:
                    self._prober = kafka_client(self._config.client).metadata(self._config.settings())
                end = self._prober.offsets(topic, [partition], with_committed=False)[partition].end
        except Exception as error:  # noqa: BLE001 - a probe that fails is no answer; the job goes on
            log.info("probing %s[%d] got no answer: %s", topic, partition, error)
        self.stalls.probed(probe, end)

    def _close_prober(self) -> None:
        with self._probe_guard:
            self._closed = True
            prober, self._prober = self._prober, None
        if prober is not None:
            prober.close()

    def close_all(self) -> None:
        # At shutdown the harness tears DoFns down from another thread while a bundle may
        # still open a consumer: close the ones there are, without iterating the live dict.
        consumers, self.consumers = self.consumers, {}
        # Each on a thread of its own, all within one bound (CONSUMER_CLOSE_TIMEOUT_S). A consumer
        # still closing after it is left to finish on its thread: librdkafka gives up on the
        # commits in the end (43 s here), and a process that exits first ends the thread.
        closing = [_run_in_background(f"metafix-close-{tp[0]}-{tp[1]}", c.close) for tp, c in consumers.items()]
        closing.append(_run_in_background("metafix-close-prober", self._close_prober))
        deadline = time.monotonic() + CONSUMER_CLOSE_TIMEOUT_S
        for thread in closing:
            thread.join(max(deadline - time.monotonic(), 0))
        left = [thread.name for thread in closing if thread.is_alive()]
        if left:
            log.warning("%d Kafka consumer(s) still closing after %d s, left behind: %s",
                        len(left), CONSUMER_CLOSE_TIMEOUT_S, ", ".join(left))


def _run_in_background(name: str, target: Callable[..., None], *args: Any) -> threading.Thread:
    # A daemon thread: a client call the broker never answers must not keep the process alive.
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread


_shared_consumers: dict[ConsumerConfig, _PartitionConsumers] = {}
_shared_consumers_guard = threading.Lock()


class ReadPartitionFn(beam.DoFn, RestrictionProvider):
    """Splittable DoFn reading one Kafka partition per element over an offset restriction.

    Each process() call polls once (up to ``max_records_per_call`` records), claims the
    batch with one try_claim and emits it as one element. The DoFn is its own
    RestrictionProvider so that backlog estimates can use the high watermark its consumer
    already knows instead of asking the broker.
    """

    def __init__(self, config: ConsumerConfig, with_timestamps: bool = True) -> None:
        self._config = config
        self._with_timestamps = with_timestamps

    def setup(self) -> None:
        # Consumers are per partition, created on first use and shared by this process's
        # copies of the DoFn (_PartitionConsumers); never pickled.
        self._client = kafka_client(self._config.client)
        with _shared_consumers_guard:
            self._shared = _shared_consumers.setdefault(self._config, _PartitionConsumers(self._config))
            self._shared.users += 1
        self._read_failures = self._shared.read_failures
        self._commit_behind = self._shared.commit_behind
        self._batch_size = Metrics.distribution("kafkaio", "poll_batch_size")
        self._commits = Metrics.counter("kafkaio", "offset_commits")
        self._commit_failures = Metrics.counter("kafkaio", "offset_commit_failures")
        self._read_retries = Metrics.counter("kafkaio", "read_retries")
        self._replacements = Metrics.counter("kafkaio", "stalled_consumers_replaced")

    def teardown(self) -> None:
        # The last copy to go closes the consumers; a later setup starts afresh.
        with _shared_consumers_guard:
            self._shared.users -= 1
            if self._shared.users > 0:
                return
            if _shared_consumers.get(self._config) is self._shared:
                del _shared_consumers[self._config]
        self._shared.close_all()

    def _read_backoff(self, tp: tuple[str, int], error: KafkaClientError) -> float:
        """Seconds to wait before the next attempt; raises once the retry bound is spent."""
        first, failures = self._read_failures.get(tp, (time.monotonic(), 0))
        failing_s = time.monotonic() - first
        if failing_s * 1000 > self._config.read_retry_timeout_ms:
            raise KafkaReadError(
                f"reading {tp[0]}[{tp[1]}] failed for {failing_s:.0f} s, giving up: {error}"
            ) from error
        self._read_failures[tp] = (first, failures + 1)
        self._read_retries.inc()
        delay_s = _backoff_s(failures)
        log.warning("reading %s[%d] failed (%s); retry %d in %.1f s", tp[0], tp[1], error, failures + 1, delay_s)
        return delay_s

    # RestrictionProvider

    def initial_restriction(self, partition: PartitionRead) -> OffsetRange:
        stop = UNBOUNDED if partition.stop_offset is None else partition.stop_offset
        return OffsetRange(partition.start_offset, stop)

    def create_tracker(self, restriction: OffsetRange) -> OffsetRestrictionTracker:
        return PartitionTracker(restriction)

    def restriction_size(self, partition: PartitionRead, restriction: OffsetRange) -> int:
        if restriction.stop != UNBOUNDED:
            return restriction.stop - restriction.start
        # The copies of this DoFn that pair and size restrictions are never set up, so they
        # have no consumer and fall back to the end offset seen when the read started.
        shared = getattr(self, "_shared", None)
        consumer = shared.consumers.get((partition.topic, partition.partition)) if shared else None
        highwater = consumer.highwater() if consumer else None
        end = partition.end_offset if highwater is None else highwater
        return max(0, end - restriction.start)

    # DoFn

    def process(
        self,
        partition: PartitionRead,
        # Must precede the restriction and watermark parameters, which Beam fills by keyword.
        bundle_finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(),
        watermark_estimator=beam.DoFn.WatermarkEstimatorParam(
            ManualWatermarkEstimator.default_provider()
        ),
    ) -> Iterator[KafkaBatch | TimestampedValue]:
        restriction = tracker.current_restriction()
        if restriction.start >= restriction.stop:
            return
        tp = (partition.topic, partition.partition)
        try:
            with self._shared.lock(tp):
                self._replace_if_stalled(tp)
                consumer = self._consumer_at(tp, restriction.start)
                polled = self._poll(consumer)
                position = consumer.position()
                highwater = consumer.highwater()
        except KafkaClientError as error:
            if not error.retriable:
                raise
            self._watch_for_stall(tp, restriction.start, delivered=False)
            # The broker is away (a restart, say). Nothing was claimed, so the residual
            # retries from the same offset, after a back-off; the pause stands in for the
            # resume delay that FnApiRunner does not honour.
            delay_s = self._read_backoff(tp, error)
            time.sleep(min(delay_s, self._config.poll_timeout_ms / 1000))
            tracker.defer_remainder(Duration.of(delay_s))
            return
        self._read_failures.pop(tp, None)
        self._watch_for_stall(tp, position, delivered=bool(polled))
        live_metrics.record_poll(tp[0], tp[1], position, highwater)
        # Records at or past the stop of a bounded read are not ours; the rest is claimed
        # at once by claiming its last offset.
        claimed = BatchList(r for r in polled if r.offset < restriction.stop)
        if claimed and not tracker.try_claim(claimed[-1].offset):
            # The runner checkpointed the restriction meanwhile: the residual re-reads these.
            bundle_finalizer.register(_nothing_to_commit)
            return
        if claimed:
            yield self._output(claimed)
            self._count(tp[0], claimed)
        # Offsets before the consumer's position that hold nothing to deliver (transaction
        # markers, records of aborted transactions) are claimed too: the residual then starts
        # past them, where the consumer is, instead of seeking it back onto them every poll.
        if restriction.start < position <= restriction.stop and (not claimed or claimed[-1].offset < position - 1):
            tracker.try_claim(position - 1)
        # Every record before this bundle's start came out in an earlier, completed bundle.
        commit_to = claimed[-1].offset + 1 if claimed else restriction.start
        if self._config.group_id is not None and (claimed or tp in self._commit_behind):
            bundle_finalizer.register(functools.partial(self._commit, tp, commit_to))
        else:
            # Prism asks to finalize every bundle of a stage that may need it, and the SDK
            # harness logs a traceback for a bundle that registered nothing.
            bundle_finalizer.register(_nothing_to_commit)
        # Records past the stop were polled, or the consumer is past it (offsets before the
        # stop that hold no record: transaction markers, compaction): claiming the stop
        # itself marks the restriction done.
        if len(claimed) < len(polled) or position >= restriction.stop:
            tracker.try_claim(restriction.stop)
        else:
            self._advance_watermark(watermark_estimator, _is_caught_up(position, highwater), polled)
            tracker.defer_remainder()

    def _replace_if_stalled(self, tp: tuple[str, int]) -> None:
        reason = self._shared.replace_if_stalled(tp)
        if reason is not None:
            self._replacements.inc()
            log.warning("replacing the consumer of %s[%d]: %s", tp[0], tp[1], reason)

    def _watch_for_stall(self, tp: tuple[str, int], position: int, delivered: bool) -> None:
        stalls = self._shared.stalls
        if delivered:
            stalls.delivered(tp)
        probe = stalls.probe_due(tp, position)
        if probe is not None:
            self._shared.probe(probe)

    def _consumer_at(self, tp: tuple[str, int], offset: int) -> PartitionConsumer:
        consumers = self._shared.consumers
        consumer = consumers.get(tp)
        if consumer is None:
            consumer = self._client.partition_consumer(self._config.settings(), tp[0], tp[1], offset)
            consumers[tp] = consumer
            self._shared.stalls.started(tp)
        elif consumer.position() != offset:
            # A residual from another worker, or a retried bundle: resume where it says.
            consumer.seek(offset)
        return consumer

    def _poll(self, consumer: PartitionConsumer) -> list[KafkaRecord]:
        records: list[KafkaRecord] = []
        limit = self._config.max_records_per_call
        while len(records) < limit:
            batch = consumer.poll(limit - len(records), self._config.poll_timeout_ms)
            records += batch
            if not batch or _is_caught_up(consumer.position(), consumer.highwater()):
                break
        self._batch_size.update(len(records))
        return records

    def _output(self, batch: BatchList) -> BatchList | TimestampedValue:
        if self._with_timestamps:
            # The batch's earliest record time: nothing in it is later than the element.
            return TimestampedValue(batch, _timestamp_of(min(r.timestamp_ms for r in batch)))
        return batch

    def _count(self, topic: str, claimed: KafkaBatch) -> None:
        Metrics.counter(f"kafkaio.{topic}", "records_read").inc(len(claimed))
        Metrics.counter(f"kafkaio.{topic}", "bytes_read").inc(
            sum(len(r.key or b"") + len(r.value or b"") for r in claimed)
        )

    def _advance_watermark(
        self, estimator: ManualWatermarkEstimator, caught_up: bool, polled: list[KafkaRecord]
    ) -> None:
        if caught_up:
            candidate = Timestamp.now() - Duration(micros=self._config.idle_watermark_lag_ms * 1000)
        elif polled:
            candidate = _timestamp_of(max(r.timestamp_ms for r in polled))
        else:
            return
        current = estimator.current_watermark()
        if current is None or candidate > current:
            estimator.set_watermark(candidate)

    def _commit(self, tp: tuple[str, int], offset: int) -> None:
        consumer = self._shared.consumers.get(tp)
        if consumer is None:
            # Torn down (the job is stopping) before the runner finalized this bundle: a restart
            # re-reads from the partition's last commit.
            return
        try:
            if consumer.thread_safe:
                # Without the partition's lock: a commit that waits for a coordinator (the
                # broker restarting) must not hold up the partition's reads.
                consumer.commit(offset, self._config.commit_timeout_ms)
            else:
                with self._shared.lock(tp):
                    # Looked up again under the lock: the consumer may have been replaced.
                    consumer = self._shared.consumers.get(tp)
                    if consumer is None:
                        return
                    consumer.commit(offset, self._config.commit_timeout_ms)
            self._commits.inc()
            self._commit_behind.discard(tp)
            self._shared.stalls.commit_answered(tp)
        except KafkaClientError as error:
            # Best effort, like any finalization: the partition's next finalized bundle commits
            # again, and a crash before then only re-reads records.
            self._commit_failures.inc()
            self._commit_behind.add(tp)
            if error.timed_out:
                self._shared.stalls.commit_unanswered(tp)
            else:
                self._shared.stalls.commit_answered(tp)
            log.warning("committing %s[%d] at %d failed: %s", tp[0], tp[1], offset, error)


class ReadUnboundedPartitionFn(ReadPartitionFn):
    """ReadPartitionFn for reads without a stop; its output PCollection is unbounded."""

    @beam.DoFn.unbounded_per_element()
    def process(
        self,
        partition: PartitionRead,
        bundle_finalizer=beam.DoFn.BundleFinalizerParam,
        tracker=beam.DoFn.RestrictionParam(),
        watermark_estimator=beam.DoFn.WatermarkEstimatorParam(
            ManualWatermarkEstimator.default_provider()
        ),
    ) -> Iterator[KafkaBatch | TimestampedValue]:
        yield from super().process(partition, bundle_finalizer, tracker, watermark_estimator)


def _nothing_to_commit() -> None:
    pass


def _backoff_s(failures: int, first_s: float = 0.5, most_s: float = 30.0) -> float:
    """Exponential back-off: 0.5, 1, 2, 4 ... seconds, at most `most_s`."""
    return min(most_s, first_s * 2 ** min(failures, 16))


def _is_caught_up(position: int, highwater: int | None) -> bool:
    """True when the consumer has read everything the broker last reported."""
    return highwater is not None and position >= highwater


class ReadFromKafka(beam.PTransform):
    """Reads batches of KafkaRecords, one per poll of a partition, in offset order.

    Each batch is stamped with its earliest Kafka timestamp unless `with_timestamps` is off.
    Bounded when `config.stop` is set (the pipeline then finishes on its own), else unbounded;
    an unbounded read with `config.partition_discovery_interval_s` also reads the partitions
    added to its topics while it runs.
    """

    def __init__(self, config: ConsumerConfig, with_timestamps: bool = True) -> None:
        super().__init__()
        self._config = config
        self._with_timestamps = with_timestamps

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        config = self._config
        impulse = pbegin | "Impulse" >> beam.Impulse()
        if config.stop is not None or config.partition_discovery_interval_s is None:
            partitions = impulse | "ListPartitions" >> beam.ParDo(_ListPartitionsFn(config))
        else:
            # The watch only feeds the reader; what the reader feeds is as without it, so the
            # read stays fused with the writes (tests/streaming/test_reliability.py checks it).
            partitions = (
                impulse
                | "Topics" >> beam.FlatMap(_each, config.topics)
                | "WatchPartitions" >> beam.ParDo(_WatchPartitionsFn(config))
            )
        read_fn = ReadPartitionFn if config.stop is not None else ReadUnboundedPartitionFn
        return partitions | "ReadPartitions" >> beam.ParDo(
            read_fn(config, self._with_timestamps)).with_output_types(BatchList)


Message = tuple[str, bytes | None, bytes]


class _SharedProducers:
    """One producer per config in a process, shared by every write step of a pipeline.

    Each write step flushes it in its finish_bundle and checks the outcomes of its own sends
    only; both clients' producers are thread-safe.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._producers: dict[ProducerConfig, tuple[Producer, int]] = {}

    def acquire(self, config: ProducerConfig) -> Producer:
        with self._lock:
            producer, users = self._producers.get(config, (None, 0))
            if producer is None:
                producer = kafka_client(config.client).producer(config.settings())
            self._producers[config] = (producer, users + 1)
            return producer

    def release(self, config: ProducerConfig) -> None:
        with self._lock:
            if config not in self._producers:
                # A teardown after a setup that failed to make the producer.
                return
            producer, users = self._producers.pop(config)
            if users > 1:
                self._producers[config] = (producer, users - 1)
                return
        producer.close()


_PRODUCERS = _SharedProducers()


class _WriteFn(beam.DoFn):
    """Sends (topic, key, value) asynchronously; a bundle succeeds only once every send has.

    A send that fails with a retriable error (broker away, topic missing) is retried from
    finish_bundle with back-off for `retry_timeout_ms`; then, or on any other error, the
    bundle fails and its input offsets stay uncommitted.
    """

    def __init__(self, config: ProducerConfig) -> None:
        self._config = config

    def setup(self) -> None:
        self._producer = _PRODUCERS.acquire(self._config)
        self._retries = Metrics.counter("kafkaio", "write_retries")

    def start_bundle(self) -> None:
        self._pending: list[tuple[Message, Any]] = []
        # Records whose send raised, with the error: they wait for finish_bundle's retries.
        self._held: list[tuple[Message, KafkaClientError]] = []

    def process(self, message: Message) -> None:
        self._send(message)

    def finish_bundle(self) -> None:
        written: dict[str, int] = {}
        failed = self._settle(written)
        started = time.monotonic()
        attempt = 0
        while failed:
            topics = ", ".join(sorted({m[0] for m, _ in failed}))
            error = failed[-1][1]
            failing_s = time.monotonic() - started
            if failing_s * 1000 > self._config.retry_timeout_ms:
                raise KafkaWriteError(
                    f"writing {len(failed)} record(s) to {topics} failed for {failing_s:.0f} s, "
                    f"giving up: {error}"
                ) from error
            delay_s = _backoff_s(attempt)
            attempt += 1
            self._retries.inc(len(failed))
            log.warning("writing %d record(s) to %s failed (%s); retry %d in %.1f s",
                        len(failed), topics, error, attempt, delay_s)
            time.sleep(delay_s)
            for message, _ in failed:
                self._send(message)
            failed = self._settle(written)
        for topic, count in written.items():
            Metrics.counter(f"kafkaio.{topic}", "records_written").inc(count)

    def teardown(self) -> None:
        _PRODUCERS.release(self._config)

    def _send(self, message: Message) -> None:
        if self._held:
            # The producer is failing, and while a topic is missing every send may block for
            # max_block_ms: hold the rest of the bundle for the retries instead.
            self._held.append((message, self._held[-1][1]))
            return
        topic, key, value = message
        try:
            self._pending.append((message, self._producer.send(topic, key, value)))
        except KafkaClientError as error:
            if not error.retriable:
                raise KafkaWriteError(f"writing to {topic} failed and cannot be retried: {error}") from error
            self._held.append((message, error))

    def _settle(self, written: dict[str, int]) -> list[tuple[Message, KafkaClientError]]:
        """Waits for every send; counts the written ones and returns the retriable failures."""
        if self._pending:
            self._producer.flush()
        pending, self._pending = self._pending, []
        failed, self._held = self._held, []
        for message, handle in pending:
            try:
                self._producer.result(handle)
            except KafkaClientError as error:
                if not error.retriable:
                    # The bundle fails, so its input offsets stay uncommitted.
                    raise KafkaWriteError(
                        f"writing to {message[0]} failed and cannot be retried: {error}"
                    ) from error
                failed.append((message, error))
            else:
                written[message[0]] = written.get(message[0], 0) + 1
        return failed


class _WriteBatchFn(_WriteFn):
    """_WriteFn for elements that each carry many (topic, key, value) messages."""

    def process(self, messages: Iterable[Message]) -> None:
        for message in messages:
            self._send(message)


def _leave_the_stage(written: beam.PCollection) -> beam.PCollection:
    """Gives the write's (always empty) output a consumer outside the fused stage.

    Prism (2.77) watches an SDK bundle in a loop that also waits for the stage's outputs to
    be complete; a stage without outputs counts as complete from the start, and the loop
    spins on it for as long as the bundle runs: a whole core, all the time, for a
    read -> write stage whose reader blocks in poll(). A Flatten runs in the runner, so the
    write's output leaves the stage and the loop blocks until the bundle ends. Nothing is
    ever emitted on it, so it holds no data and does not split the read from the writes.
    """
    return (written,) | "EndOfStage" >> beam.Flatten()


def _with_topic(
    key_value: tuple[bytes | None, bytes], topic: str
) -> tuple[str, bytes | None, bytes]:
    return (topic, *key_value)


class WriteToKafkaTopics(beam.PTransform):
    """Writes (topic, key, value) triples: one producer serves every topic a job writes to."""

    def __init__(self, config: ProducerConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, messages: beam.PCollection) -> beam.PCollection:
        return _leave_the_stage(messages | "Produce" >> beam.ParDo(_WriteFn(self._config)))


class WriteBatchesToKafka(beam.PTransform):
    """Writes elements that are each an iterable of (topic, key, value) triples."""

    def __init__(self, config: ProducerConfig) -> None:
        super().__init__()
        self._config = config

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return _leave_the_stage(batches | "Produce" >> beam.ParDo(_WriteBatchFn(self._config)))


class WriteToKafka(beam.PTransform):
    """Writes (key, value) pairs to one topic."""

    def __init__(self, config: ProducerConfig, topic: str) -> None:
        super().__init__()
        self._config = config
        self._topic = topic

    def expand(self, pairs: beam.PCollection) -> beam.PCollection:
        return (
            pairs
            | "AddTopic" >> beam.Map(_with_topic, self._topic)
            | "Write" >> WriteToKafkaTopics(self._config)
        )
