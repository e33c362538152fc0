"""The two Kafka clients behind ``streaming/kafkaio.py``: kafka-python and confluent-kafka.

    client = kafka_client("confluent")       # or "kafka-python"
    consumer = client.partition_consumer(settings, "events", 0, offset=42)
    records = consumer.poll(max_records=2000, timeout_ms=300)   # list[KafkaRecord]
    producer = client.producer(producer_settings)
    handle = producer.send("out", b"key", b"value"); producer.flush(); producer.result(handle)

Both adapters offer the same few operations the Beam IO needs and translate their
library's errors into ``KafkaClientError`` (with ``retriable``), so the reader's and the
writer's retry and commit logic is written once. confluent-kafka (librdkafka) costs about
4 µs of CPU per produced message against kafka-python's 36-66 µs; kafka-python stays for
environments without the native library. Both write with acks=all and idempotence.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Any, Literal, NamedTuple, Protocol

import confluent_kafka
import kafka
import kafka.errors
from kafka.structs import OffsetAndMetadata

from streaming.client_properties import PASSTHROUGH
from streaming.secret_sources import secret_manager_value

ClientName = Literal["confluent", "kafka-python"]
CLIENT_NAMES: tuple[ClientName, ...] = ("confluent", "kafka-python")
# The benchmark's choice (bench/run.py, README "Performance"): librdkafka produces and
# consumes at a tenth of kafka-python's CPU per record.
DEFAULT_CLIENT: ClientName = "confluent"

_SECRET_FIELDS = frozenset({"sasl_plain_password", "ssl_password"})
# kafka-python's security settings and their librdkafka names.
_LIBRDKAFKA_NAMES = {
    "security_protocol": "security.protocol",
    "sasl_mechanism": "sasl.mechanism",
    "sasl_plain_username": "sasl.username",
    "sasl_plain_password": "sasl.password",
    "ssl_cafile": "ssl.ca.location",
    "ssl_certfile": "ssl.certificate.location",
    "ssl_keyfile": "ssl.key.location",
    "ssl_password": "ssl.key.password",
}


@dataclass(frozen=True, repr=False)
class KafkaSecurity:
    """Client security settings (kafka-python's names); secrets never reach a log.

    ``sasl_plain_password_secret`` names a Secret Manager secret read (once per process)
    when a client is made, so that only its name travels with the pipeline.
    ``properties`` are further settings from ``--kafka-config`` under their Java names
    (``client_properties.PASSTHROUGH``), given to each client under its own name.
    """

    security_protocol: str = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_plain_username: str | None = None
    sasl_plain_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_password: str | None = None
    ssl_check_hostname: bool = True
    sasl_plain_password_secret: str | None = None
    properties: tuple[tuple[str, str], ...] = ()

    def password(self) -> str | None:
        """The SASL password, read from Secret Manager when only the secret's name is known."""
        if self.sasl_plain_password is None and self.sasl_plain_password_secret is not None:
            return secret_manager_value(self.sasl_plain_password_secret)
        return self.sasl_plain_password

    def client_kwargs(self) -> dict[str, Any]:
        """kafka-python keyword arguments."""
        settings = {name: getattr(self, name) for name in _KAFKA_PYTHON_FIELDS}
        settings["sasl_plain_password"] = self.password()
        kwargs = {name: value for name, value in settings.items() if value is not None}
        for key, value in self.properties:
            entry = PASSTHROUGH[key]
            if entry.kafka_python is not None:
                kwargs[entry.kafka_python] = entry.value(value)
        return kwargs

    def librdkafka_config(self) -> dict[str, Any]:
        """The same settings as librdkafka configuration properties."""
        config = {
            _LIBRDKAFKA_NAMES[name]: value
            for name, value in self.client_kwargs().items()
            if name in _LIBRDKAFKA_NAMES
        }
        if self.security_protocol.upper() in ("SSL", "SASL_SSL"):
            config["ssl.endpoint.identification.algorithm"] = "https" if self.ssl_check_hostname else "none"
        for key, value in self.properties:
            entry = PASSTHROUGH[key]
            if entry.librdkafka is not None:
                config[entry.librdkafka] = value
        return config

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and f.default != value:
                shown.append(f"{f.name}={'***' if f.name in _SECRET_FIELDS else repr(value)}")
        return f"KafkaSecurity({', '.join(shown)})"


_KAFKA_PYTHON_FIELDS = tuple(
    f.name for f in fields(KafkaSecurity) if f.name not in ("sasl_plain_password_secret", "properties")
)


@dataclass(frozen=True)
class ConsumerSettings:
    """What a partition consumer needs; built by ``ConsumerConfig``."""

    bootstrap_servers: str
    group_id: str | None
    max_poll_records: int
    security: KafkaSecurity = field(default_factory=KafkaSecurity)


@dataclass(frozen=True)
class ProducerSettings:
    """What a producer needs; built by ``ProducerConfig``."""

    bootstrap_servers: str
    linger_ms: int
    max_block_ms: int
    delivery_timeout_ms: int
    batch_bytes: int
    security: KafkaSecurity = field(default_factory=KafkaSecurity)


class KafkaRecord(NamedTuple):
    """A consumed record with its coordinates, so every downstream step can name its source."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes


class KafkaClientError(Exception):
    """A client operation failed; ``retriable`` says whether trying again may succeed.

    ``timed_out``: no answer came in time, as opposed to an answer that refused.
    """

    def __init__(self, message: str, retriable: bool, timed_out: bool = False):
        super().__init__(message)
        self.retriable = retriable
        self.timed_out = timed_out


class PartitionOffsets(NamedTuple):
    beginning: int
    end: int
    # None when the group has committed nothing (or no group was asked).
    committed: int | None


class PartitionConsumer(Protocol):
    """Reads one partition from a given offset; commits only when told to.

    ``thread_safe``: whether a commit may run while another thread polls. ``commit`` returns
    or raises within about ``timeout_ms``, whether or not the coordinator answers.
    """

    thread_safe: bool

    def seek(self, offset: int) -> None: ...
    def position(self) -> int: ...
    def highwater(self) -> int | None: ...
    def poll(self, max_records: int, timeout_ms: int) -> list[KafkaRecord]: ...
    def commit(self, offset: int, timeout_ms: int) -> None: ...
    def close(self) -> None: ...


class MetadataClient(Protocol):
    """What a read resolves once at its start."""

    def partitions(self, topic: str) -> list[int] | None: ...
    def offsets(self, topic: str, partitions: list[int], with_committed: bool) -> dict[int, PartitionOffsets]: ...
    def offsets_at(self, topic: str, partitions: list[int], timestamp_ms: int) -> dict[int, int]: ...
    def close(self) -> None: ...


class Producer(Protocol):
    """Asynchronous sends; ``result`` raises the send's ``KafkaClientError`` after a flush."""

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any: ...
    def flush(self) -> None: ...
    def result(self, handle: Any) -> None: ...
    def close(self) -> None: ...


class KafkaClient(Protocol):
    name: ClientName

    def metadata(self, settings: ConsumerSettings) -> MetadataClient: ...
    def partition_consumer(self, settings: ConsumerSettings, topic: str, partition: int,
                           offset: int) -> PartitionConsumer: ...
    def producer(self, settings: ProducerSettings) -> Producer: ...


# kafka-python


@contextmanager
def _kafka_python_errors() -> Iterator[None]:
    try:
        yield
    except kafka.errors.KafkaError as error:
        # str() of a kafka-python error starts with its class name (KafkaTimeoutError: ...).
        raise KafkaClientError(str(error), bool(error.retriable),
                               timed_out=isinstance(error, kafka.errors.KafkaTimeoutError)) from error


def _kafka_python_consumer_kwargs(settings: ConsumerSettings) -> dict[str, Any]:
    return {
        "bootstrap_servers": settings.bootstrap_servers,
        "group_id": settings.group_id,
        # Offsets are committed only from bundle finalizers.
        "enable_auto_commit": False,
        # Only reached when a seek lands outside the log (retention deleted the records).
        "auto_offset_reset": "earliest",
        "max_poll_records": settings.max_poll_records,
        # As librdkafka does by default: records of aborted (or still open) transactions are
        # not events.
        "isolation_level": "read_committed",
        **settings.security.client_kwargs(),
    }


class _KafkaPythonMetadata:
    def __init__(self, settings: ConsumerSettings):
        with _kafka_python_errors():
            self._consumer = kafka.KafkaConsumer(**_kafka_python_consumer_kwargs(settings))

    def partitions(self, topic: str) -> list[int] | None:
        with _kafka_python_errors():
            # topics() asks the broker: the cached metadata alone would hide partitions added
            # since, for up to metadata.max.age.ms (5 minutes).
            self._consumer.topics()
            ids = self._consumer.partitions_for_topic(topic)
        return sorted(ids) if ids else None

    def offsets(self, topic: str, partitions: list[int], with_committed: bool) -> dict[int, PartitionOffsets]:
        tps = [kafka.TopicPartition(topic, p) for p in partitions]
        with _kafka_python_errors():
            beginning = self._consumer.beginning_offsets(tps)
            end = self._consumer.end_offsets(tps)
            return {
                tp.partition: PartitionOffsets(
                    beginning[tp], end[tp], self._consumer.committed(tp) if with_committed else None
                )
                for tp in tps
            }

    def offsets_at(self, topic: str, partitions: list[int], timestamp_ms: int) -> dict[int, int]:
        with _kafka_python_errors():
            found = self._consumer.offsets_for_times(
                {kafka.TopicPartition(topic, p): timestamp_ms for p in partitions}
            )
        return {tp.partition: hit.offset for tp, hit in found.items() if hit is not None}

    def close(self) -> None:
        self._consumer.close()


class _KafkaPythonPartitionConsumer:
    thread_safe = False  # kafka-python's KafkaConsumer is not

    def __init__(self, settings: ConsumerSettings, topic: str, partition: int, offset: int):
        self._tp = kafka.TopicPartition(topic, partition)
        with _kafka_python_errors():
            self._consumer = kafka.KafkaConsumer(**_kafka_python_consumer_kwargs(settings))
            self._consumer.assign([self._tp])
            self._consumer.seek(self._tp, offset)

    def seek(self, offset: int) -> None:
        self._consumer.seek(self._tp, offset)

    def position(self) -> int:
        with _kafka_python_errors():
            return self._consumer.position(self._tp)

    def highwater(self) -> int | None:
        return self._consumer.highwater(self._tp)

    def poll(self, max_records: int, timeout_ms: int) -> list[KafkaRecord]:
        with _kafka_python_errors():
            batch = self._consumer.poll(timeout_ms=timeout_ms, max_records=max_records).get(self._tp, [])
        return [KafkaRecord(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value) for r in batch]

    def commit(self, offset: int, timeout_ms: int) -> None:
        with _kafka_python_errors():
            self._consumer.commit({self._tp: OffsetAndMetadata(offset, "", -1)}, timeout_ms=timeout_ms)

    def close(self) -> None:
        self._consumer.close(autocommit=False)


class _KafkaPythonProducer:
    def __init__(self, settings: ProducerSettings):
        with _kafka_python_errors():
            self._producer = kafka.KafkaProducer(
                bootstrap_servers=settings.bootstrap_servers,
                acks="all",
                # Retries after a lost ack must not duplicate or reorder records in the log.
                enable_idempotence=True,
                linger_ms=settings.linger_ms,
                max_block_ms=settings.max_block_ms,
                delivery_timeout_ms=settings.delivery_timeout_ms,
                # The default 16 KB batches cost 1.8x the CPU per record.
                batch_size=settings.batch_bytes,
                **settings.security.client_kwargs(),
            )

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        with _kafka_python_errors():
            return self._producer.send(topic, key=key, value=value)

    def flush(self) -> None:
        try:
            self._producer.flush()
        except kafka.errors.KafkaError:
            # kafka-python's flush() gives up with an opaque "Future not done" while a batch
            # the broker found too large is split and retried; result() waits for each
            # record's real outcome and raises its real error.
            pass

    def result(self, handle: Any) -> None:
        with _kafka_python_errors():
            handle.get()

    def close(self) -> None:
        self._producer.close()


@dataclass(frozen=True)
class KafkaPythonClient:
    name: ClientName = "kafka-python"

    def metadata(self, settings: ConsumerSettings) -> MetadataClient:
        return _KafkaPythonMetadata(settings)

    def partition_consumer(self, settings: ConsumerSettings, topic: str, partition: int,
                           offset: int) -> PartitionConsumer:
        return _KafkaPythonPartitionConsumer(settings, topic, partition, offset)

    def producer(self, settings: ProducerSettings) -> Producer:
        return _KafkaPythonProducer(settings)


# confluent-kafka (librdkafka)

_ck = confluent_kafka
# Failures that end once the broker is back or the topic exists: the bundle retries them.
_RETRIABLE_CODES = frozenset({
    _ck.KafkaError._MSG_TIMED_OUT,
    _ck.KafkaError._TIMED_OUT,
    _ck.KafkaError._TRANSPORT,
    _ck.KafkaError._ALL_BROKERS_DOWN,
    _ck.KafkaError._UNKNOWN_TOPIC,
    _ck.KafkaError._UNKNOWN_PARTITION,
    _ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
    _ck.KafkaError.NOT_COORDINATOR,
    _ck.KafkaError.COORDINATOR_NOT_AVAILABLE,
    _ck.KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    # Also what librdkafka reports for records in flight to a partition that disappears
    # (the output topic deleted under the job: "partition count changed from 1 to 0"). The
    # job's producer is never destroyed while it sends, so the retries see the topic again.
    _ck.KafkaError._DESTROY,
})
# librdkafka returns this for an offset or watermark it does not know yet.
_OFFSET_INVALID = _ck.OFFSET_INVALID
# A group id for consumers that never commit: librdkafka requires one; assign() joins nothing.
_NO_GROUP = "metafix-no-commits"


def _confluent_error(error: _ck.KafkaError) -> KafkaClientError:
    retriable = error.retriable() or error.code() in _RETRIABLE_CODES
    return KafkaClientError(f"{error.name()}: {error.str()}", retriable and not error.fatal(),
                            timed_out=error.code() == _ck.KafkaError._TIMED_OUT)


@contextmanager
def _confluent_errors() -> Iterator[None]:
    try:
        yield
    except _ck.KafkaException as exception:
        raise _confluent_error(exception.args[0]) from exception


def _confluent_consumer(settings: ConsumerSettings) -> _ck.Consumer:
    with _confluent_errors():
        return _ck.Consumer({
            "bootstrap.servers": settings.bootstrap_servers,
            "group.id": settings.group_id or _NO_GROUP,
            # Offsets are committed only from bundle finalizers.
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            # Only reached when a seek lands outside the log (retention deleted the records).
            "auto.offset.reset": "earliest",
            # librdkafka prefetches per partition; bound what one partition may hold in memory.
            "queued.max.messages.kbytes": 32 * 1024,
            **settings.security.librdkafka_config(),
        })


class _ConfluentMetadata:
    def __init__(self, settings: ConsumerSettings, timeout_s: float = 30.0):
        self._consumer = _confluent_consumer(settings)
        self._timeout_s = timeout_s

    def _ask(self, request: Callable[[], Any]) -> Any:
        """``request()``, retried while it fails with a retriable error, for up to the timeout.

        librdkafka answers at once with errors kafka-python waits out itself, such as
        NOT_COORDINATOR while a fresh broker elects the group's coordinator.
        """
        deadline = time.monotonic() + self._timeout_s
        failures = 0
        while True:
            try:
                with _confluent_errors():
                    return request()
            except KafkaClientError as error:
                if not error.retriable or time.monotonic() > deadline:
                    raise
                failures += 1
                time.sleep(min(2.0, 0.1 * 2**failures))

    def partitions(self, topic: str) -> list[int] | None:
        found = self._ask(lambda: self._consumer.list_topics(topic, timeout=self._timeout_s).topics.get(topic))
        if found is None or found.error is not None or not found.partitions:
            return None
        return sorted(found.partitions)

    def offsets(self, topic: str, partitions: list[int], with_committed: bool) -> dict[int, PartitionOffsets]:
        tps = [_ck.TopicPartition(topic, p) for p in partitions]
        committed = {
            tp.partition: None if tp.offset < 0 else tp.offset
            for tp in (self._ask(lambda: self._consumer.committed(tps, timeout=self._timeout_s))
                       if with_committed else ())
        }
        result = {}
        for tp in tps:
            low, high = self._ask(lambda tp=tp: self._consumer.get_watermark_offsets(tp, timeout=self._timeout_s))
            result[tp.partition] = PartitionOffsets(low, high, committed.get(tp.partition))
        return result

    def offsets_at(self, topic: str, partitions: list[int], timestamp_ms: int) -> dict[int, int]:
        found = self._ask(lambda: self._consumer.offsets_for_times(
            [_ck.TopicPartition(topic, p, timestamp_ms) for p in partitions], timeout=self._timeout_s
        ))
        # A negative offset: no record at or after the time (kafka-python answers None).
        return {tp.partition: tp.offset for tp in found if tp.offset >= 0}

    def close(self) -> None:
        self._consumer.close()


class _ConfluentPartitionConsumer:
    thread_safe = True  # librdkafka's consumer is

    def __init__(self, settings: ConsumerSettings, topic: str, partition: int, offset: int):
        self._topic, self._partition = topic, partition
        self._consumer = _confluent_consumer(settings)
        self._committer: ThreadPoolExecutor | None = None
        self._pending_commit: Future | None = None
        self._commit_guard = threading.Lock()
        self._closed = False
        self.seek(offset)

    def seek(self, offset: int) -> None:
        # assign() with an offset restarts the fetcher there; seek() fails on a partition
        # whose fetcher has not started yet.
        with _confluent_errors():
            self._consumer.assign([_ck.TopicPartition(self._topic, self._partition, offset)])
        self._position = offset

    def position(self) -> int:
        return self._position

    def highwater(self) -> int | None:
        # The cached high watermark is refreshed by every fetch response: no broker round trip.
        try:
            _, high = self._consumer.get_watermark_offsets(
                _ck.TopicPartition(self._topic, self._partition), cached=True
            )
        except RuntimeError:
            return None  # Closed meanwhile (replaced, or the read torn down): it knows nothing.
        return None if high == _OFFSET_INVALID or high < 0 else high

    def poll(self, max_records: int, timeout_ms: int) -> list[KafkaRecord]:
        with _confluent_errors():
            # consume() waits for all max_records or the whole timeout: take what is queued,
            # and block (for one message) only when nothing is.
            messages = self._consumer.consume(max_records, 0)
            if not messages:
                first = self._consumer.poll(timeout_ms / 1000)
                messages = [first] if first is not None else []
                if first is not None and max_records > 1:
                    messages += self._consumer.consume(max_records - 1, 0)
        records = []
        for m in messages:
            error = m.error()
            if error is not None:
                raise _confluent_error(error)
            records.append(KafkaRecord(m.topic(), m.partition(), m.offset(), m.timestamp()[1], m.key(), m.value()))
        if records:
            self._position = records[-1].offset + 1
        else:
            # Offsets that hold nothing to deliver (transaction markers, records of aborted
            # transactions) never come out of a poll, so a log ending in a commit marker left
            # the position short of the end for good: a bounded read never ended, and the
            # partition never counted as caught up. librdkafka's own position moves past
            # them as its queue serves them, in order; assign() resets it to invalid.
            with _confluent_errors():
                (served,) = self._consumer.position([_ck.TopicPartition(self._topic, self._partition)])
            self._position = max(self._position, served.offset)
        return records

    def commit(self, offset: int, timeout_ms: int) -> None:
        # librdkafka's own commit waits for the group coordinator as long as that takes: after
        # a broker restart on a loaded machine, one stayed queued for over 60 s, and the job's
        # finalizer, so the whole job, waited with it. So the commit runs on a thread of its
        # own and the caller waits at most timeout_ms, as kafka-python's commit does; one
        # still waiting fails the next ones at once, and a later bundle commits again.
        with self._commit_guard:
            if self._closed:
                # A finalizer that picked this consumer up just before it was replaced.
                raise KafkaClientError("the partition's consumer was closed", retriable=True)
            if self._pending_commit is not None and not self._pending_commit.done():
                raise KafkaClientError("an earlier offset commit is still waiting for the coordinator",
                                       retriable=True, timed_out=True)
            if self._committer is None:
                self._committer = ThreadPoolExecutor(1, thread_name_prefix="metafix-commit")
            self._pending_commit = self._committer.submit(self._commit_now, offset)
            pending = self._pending_commit
        try:
            pending.result(timeout=timeout_ms / 1000)
        except FutureTimeout:
            raise KafkaClientError(f"no answer to the offset commit in {timeout_ms} ms",
                                   retriable=True, timed_out=True) from None

    def _commit_now(self, offset: int) -> None:
        with _confluent_errors():
            self._consumer.commit(
                offsets=[_ck.TopicPartition(self._topic, self._partition, offset)], asynchronous=False
            )

    def close(self) -> None:
        # librdkafka's close() waits for outstanding commits in any case; letting the
        # commit's thread finish first keeps it from using the client while close() frees it,
        # and no commit may start after that.
        with self._commit_guard:
            self._closed = True
        if self._committer is not None:
            self._committer.shutdown(wait=True)
        self._consumer.close()


class _Delivery:
    """A send's outcome, filled in by librdkafka's delivery callback."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: _ck.KafkaError | None = None

    def __call__(self, error: _ck.KafkaError | None, _message: Any) -> None:
        self.done = True
        self.error = error


class _ConfluentProducer:
    def __init__(self, settings: ProducerSettings):
        self._max_block_s = settings.max_block_ms / 1000
        with _confluent_errors():
            self._producer = _ck.Producer({
                "bootstrap.servers": settings.bootstrap_servers,
                "acks": "all",
                # Retries after a lost ack must not duplicate or reorder records in the log.
                "enable.idempotence": True,
                "linger.ms": settings.linger_ms,
                "batch.size": settings.batch_bytes,
                # A send to a missing topic fails after this, as kafka-python's send() does
                # after max_block_ms; the bundle's retries take over from there.
                "topic.metadata.propagation.max.ms": settings.max_block_ms,
                "message.timeout.ms": settings.delivery_timeout_ms,
                **settings.security.librdkafka_config(),
            })

    def send(self, topic: str, key: bytes | None, value: bytes) -> Any:
        delivery = _Delivery()
        deadline = time.monotonic() + self._max_block_s
        while True:
            try:
                self._producer.produce(topic, value, key, on_delivery=delivery)
                return delivery
            except BufferError as error:
                # The local queue is full: serve delivery reports until there is room.
                if time.monotonic() > deadline:
                    raise KafkaClientError(f"producer queue full: {error}", retriable=True) from error
                self._producer.poll(0.05)
            except _ck.KafkaException as exception:
                raise _confluent_error(exception.args[0]) from exception

    def flush(self) -> None:
        # Bounded by message.timeout.ms: every message is delivered or failed by then.
        self._producer.flush()

    def result(self, handle: _Delivery) -> None:
        if not handle.done:
            raise KafkaClientError("no delivery report after flush()", retriable=True)
        if handle.error is not None:
            raise _confluent_error(handle.error)

    def close(self) -> None:
        self._producer.flush()


@dataclass(frozen=True)
class ConfluentClient:
    name: ClientName = "confluent"

    def metadata(self, settings: ConsumerSettings) -> MetadataClient:
        return _ConfluentMetadata(settings)

    def partition_consumer(self, settings: ConsumerSettings, topic: str, partition: int,
                           offset: int) -> PartitionConsumer:
        return _ConfluentPartitionConsumer(settings, topic, partition, offset)

    def producer(self, settings: ProducerSettings) -> Producer:
        return _ConfluentProducer(settings)


_CLIENTS: Mapping[str, Callable[[], KafkaClient]] = {
    "confluent": ConfluentClient,
    "kafka-python": KafkaPythonClient,
}


def kafka_client(name: str) -> KafkaClient:
    """The client named ``name`` (one of ``CLIENT_NAMES``)."""
    try:
        return _CLIENTS[name]()
    except KeyError:
        raise ValueError(f"unknown Kafka client {name!r}; choose from {', '.join(CLIENT_NAMES)}") from None
