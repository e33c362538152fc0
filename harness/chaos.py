"""Fault scenarios for ``metafix stream``: every event that goes in comes out, whatever happens.

    python -m harness.chaos [--events 20000] [--model-dir DIR] [--only crash,broker,...]

(``make chaos``.) Each scenario runs the real job (``python -m streaming.cli stream`` in
a child process leading a session of its own, on the local runner) against a real broker,
injects one fault and then accounts for every input record by its coordinates
(partition, offset): it must come out on the output topic (a ``CorrectedRecord`` whose
``input`` names it) or on the dead-letter topic (a ``DeadLetter`` naming it). Delivery is
at-least-once, so a record may come out twice: duplicates are counted, and every copy
must carry the same de-duplication key (``record_key`` = event_id@model_version for an
output; stage and reason for a dead letter).

Scenarios:

* crash: SIGKILL to the job's whole process group (the job and its Prism runner)
  mid-stream, twice; each time the job restarts with ``--start-from committed``.
* broker: the broker (one of the scenario's own) stops and restarts while the job runs;
  the job rides it out without a restart.
* output: the output topic is deleted while the job runs and re-created later; input
  offsets must not be committed past records that could not be written.
* refused: the output topic refuses the records for good (a message size limit): the job
  stops with exit code 1, committing nothing unwritten; fixed and restarted, it loses nothing.
* hostile: 10k generated hostile payloads (``harness/hostile.py``) and 10 MB messages
  between normal events; each gets the decoder's verdict, the job stays up, memory stays
  bounded.
* model: the model fails on every batch; every record still comes out, flagged.
* sasl: the job reads and writes through a SASL/SCRAM-SHA-256 listener; a wrong password
  fails at start with one line; the password appears nowhere in the job's output or the
  dead letters.

Prints a table and writes ``bench/results/chaos.json``. The same functions back
``tests/streaming/test_reliability.py``, with fewer events.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import (
    ConfigResource,
    ConfigResourceType,
    ScramMechanism,
    UserScramCredentialUpsertion,
)
from kafka.errors import KafkaError

from harness.eventgen import Message, catalog_messages, produce
from harness.jobs import JOB_TOPICS, JobExited, StreamJob, committed_offsets
from harness.local_kafka import (
    HOST,
    LocalKafka,
    create_topic,
    delete_topics,
    free_port,
    port_is_open,
    serves_kafka,
    unique_topic_name,
)
from streaming.composites import MODEL_ERROR
from streaming.kafka_clients import CLIENT_NAMES
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms.codec import DEAD_LETTER_PAYLOAD_LIMIT, confluent_decode

RESULTS = REPO_ROOT / "bench" / "results"
# Room for the 10 MB hostile messages.
BIG_MESSAGE_BYTES = 16 << 20
SASL_MECHANISM = "SCRAM-SHA-256"

Coordinate = tuple[int, int]


# Topics, producing and reading


def create_job_topics(bootstrap: str, prefix: str, *, input_partitions: int = 3,
                      input_config: Mapping[str, str] | None = None) -> dict[str, str]:
    """Fresh topics for one job: ``in`` (3 partitions), ``out``, ``review``, ``audit``, ``dead``."""
    topics = {name: unique_topic_name(f"{prefix}-{name}") for name in JOB_TOPICS}
    for name, topic in topics.items():
        if name == "in":
            create_topic(bootstrap, topic, input_partitions, input_config)
        else:
            create_topic(bootstrap, topic, 1)
    return topics


@dataclass(frozen=True)
class Sent:
    """A produced input record and where it landed."""

    partition: int
    offset: int
    value: bytes
    event_id: str | None
    kind: str | None = None

    @property
    def coordinate(self) -> Coordinate:
        return self.partition, self.offset


def produce_values(bootstrap: str, topic: str, messages: Iterable[Message], *,
                   rate: float | None = None, **producer_config: Any) -> list[Sent]:
    """Sends messages (at ``rate`` per second if given), waits for every ack, keeps where each landed."""
    return [Sent(p, o, m.value, m.event_id, m.bad_kind)
            for m, p, o in produce(bootstrap, topic, messages, rate=rate, **producer_config)]


class BackgroundProducer(threading.Thread):
    """``produce_values`` in a thread; ``result()`` joins it and returns what was sent."""

    def __init__(self, bootstrap: str, topic: str, messages: Sequence[Message], **kwargs: Any):
        super().__init__(daemon=True, name="chaos-producer")
        self._args = (bootstrap, topic, messages)
        self._kwargs = kwargs
        self._sent: list[Sent] | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._sent = produce_values(*self._args, **self._kwargs)
        except BaseException as e:  # noqa: BLE001 - re-raised in result()
            self._error = e

    def result(self, timeout_s: float = 600) -> list[Sent]:
        self.join(timeout_s)
        if self._error is not None:
            raise self._error
        if self._sent is None:
            raise TimeoutError("the producer did not finish")
        return self._sent


class OutputReader:
    """Reads the job's output and dead-letter topics from their beginning, decoding as it goes."""

    def __init__(self, bootstrap: str, topics: Mapping[str, str]):
        self.bootstrap = bootstrap
        self.topics = topics
        self.outputs: list[dict] = []
        self.dead: list[dict] = []
        # The raw dead-letter values, to search them for secrets.
        self.dead_raw: list[bytes] = []
        self._next: dict[str, int] = {topics["out"]: 0, topics["dead"]: 0}
        self._consumer = self._open()

    def _open(self) -> KafkaConsumer:
        consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                 auto_offset_reset="earliest")
        consumer.assign([TopicPartition(t, 0) for t in self._next])
        for topic, offset in self._next.items():
            consumer.seek(TopicPartition(topic, 0), offset)
        return consumer

    def restart_output_topic(self) -> None:
        """Reads a re-created output topic from its start; what was read before is kept."""
        self._consumer.close()
        self._next[self.topics["out"]] = 0
        self._consumer = self._open()

    def poll(self, timeout_ms: int = 500) -> int:
        n = 0
        for tp, batch in self._consumer.poll(timeout_ms=timeout_ms).items():
            for m in batch:
                _, record = confluent_decode(m.value)
                if tp.topic == self.topics["out"]:
                    self.outputs.append(record)
                else:
                    self.dead.append(record)
                    self.dead_raw.append(m.value)
                self._next[tp.topic] = m.offset + 1
                n += 1
        return n

    def coordinates(self) -> Counter:
        seen: Counter = Counter()
        seen.update((r["input"]["partition"], r["input"]["offset"]) for r in self.outputs)
        seen.update((d["partition"], d["offset"]) for d in self.dead)
        return seen

    def read_until(self, done: Callable[[OutputReader], bool], timeout_s: float,
                   job: StreamJob | None = None) -> bool:
        """Polls until ``done(self)``; False after ``timeout_s``; raises if the job exits."""
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                return False
            if job is not None and not job.alive():
                raise JobExited(job)
            self.poll()
        return True

    def drain(self, quiet_s: float = 3.0, timeout_s: float = 60) -> None:
        """Reads until nothing new arrives for ``quiet_s``."""
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            if self.poll():
                last = time.monotonic()

    def close(self) -> None:
        self._consumer.close()


def covers(expected: Iterable[Coordinate]) -> Callable[[OutputReader], bool]:
    wanted = set(expected)

    def done(reader: OutputReader) -> bool:
        return wanted <= reader.coordinates().keys()

    return done


def delete_job_topics(bootstrap: str, topics: Mapping[str, str]) -> None:
    """Best effort: a scenario's topics go when it ends (a shared test broker keeps running)."""
    try:
        delete_topics(bootstrap, list(topics.values()))
    except KafkaError:
        pass


def unwritten_below_commit(committed: Mapping[int, int], written: Iterable[Coordinate]) -> int:
    """Input offsets the group has committed that never came out: what a crash would lose."""
    done = set(written)
    return sum(1 for p, end in committed.items() for o in range(end) if (p, o) not in done)


class RssSampler(threading.Thread):
    """Peak resident memory of a job's process tree (across restarts), sampled in a thread."""

    def __init__(self, job: StreamJob, interval_s: float = 0.25):
        super().__init__(daemon=True, name="chaos-rss")
        self._job = job
        self._interval = interval_s
        self._stopped = threading.Event()
        self.peak = 0

    def run(self) -> None:
        while not self._stopped.wait(self._interval):
            if self._job.alive():
                self.peak = max(self.peak, self._job.tree_rss())

    def finish(self) -> float:
        """Stops sampling; the peak in MB."""
        self._stopped.set()
        self.join(5)
        return round(self.peak / 2**20, 1)


# Accounting


@dataclass
class Accounting:
    events_in: int
    out: int
    dead_letters: int
    duplicates: int
    lost: int
    # Outputs naming an input that was never sent (must be 0).
    unexpected: int
    # Inputs that came out more than once with different de-duplication keys (must be 0).
    key_conflicts: int
    lost_sample: list[Coordinate] = field(default_factory=list)


def account(sent: Sequence[Sent], reader: OutputReader) -> Accounting:
    expected = {s.coordinate for s in sent}
    keys: dict[Coordinate, set] = defaultdict(set)
    for r in reader.outputs:
        keys[(r["input"]["partition"], r["input"]["offset"])].add(("out", r["record_key"]))
    for d in reader.dead:
        keys[(d["partition"], d["offset"])].add(("dead", d["stage"], d["error_type"]))
    seen = reader.coordinates()
    lost = sorted(expected - seen.keys())
    return Accounting(
        events_in=len(expected),
        out=len(reader.outputs),
        dead_letters=len(reader.dead),
        duplicates=sum(n - 1 for c, n in seen.items() if c in expected),
        lost=len(lost),
        unexpected=sum(n for c, n in seen.items() if c not in expected),
        key_conflicts=sum(1 for c, k in keys.items() if c in expected and len(k) > 1),
        lost_sample=lost[:20],
    )


@dataclass
class ScenarioResult:
    scenario: str
    events_in: int
    out: int
    dead_letters: int
    duplicates: int
    lost: int
    seconds: float
    peak_rss_mb: float | None = None
    checks: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, scenario: str, acc: Accounting, started: float, peak_rss_mb: float | None,
           checks: dict[str, Any]) -> ScenarioResult:
        checks = {**checks, "unexpected": acc.unexpected, "key_conflicts": acc.key_conflicts}
        if acc.lost_sample:
            checks["lost_sample"] = acc.lost_sample
        return cls(scenario, acc.events_in, acc.out, acc.dead_letters, acc.duplicates, acc.lost,
                   round(time.monotonic() - started, 1), peak_rss_mb, checks)


def format_table(results: Sequence[ScenarioResult]) -> str:
    header = (f"{'scenario':<10} {'events in':>10} {'out':>8} {'dead letters':>13} "
              f"{'duplicates':>11} {'lost':>6} {'peak RSS':>10} {'time':>7}")
    lines = [header, "-" * len(header)]
    for r in results:
        rss = f"{r.peak_rss_mb:,.0f} MB" if r.peak_rss_mb else "-"
        lines.append(f"{r.scenario:<10} {r.events_in:>10,} {r.out:>8,} {r.dead_letters:>13,} "
                     f"{r.duplicates:>11,} {r.lost:>6,} {rss:>10} {r.seconds:>6.0f}s")
    return "\n".join(lines)


# Scenarios


@dataclass
class Env:
    """What every scenario needs: a broker, a model and a scratch directory."""

    bootstrap: str
    model_dir: str
    workdir: Path
    # How long to wait for any one expected state before giving up on it.
    timeout_s: float = 600.0
    # The job's --kafka-client; None leaves the job's default.
    kafka_client: str | None = None

    def job(self, topics: Mapping[str, str], name: str, *extra: str, bootstrap: str | None = None,
            model_dir: str | None = None, group_id: str | None = None) -> StreamJob:
        client = ("--kafka-client", self.kafka_client) if self.kafka_client else ()
        return StreamJob(bootstrap or self.bootstrap, topics, model_dir or self.model_dir,
                         self.workdir / f"{name}.log", *client, *extra, group_id=group_id)


def _retry_log_lines(job: StreamJob) -> int:
    return sum(1 for line in job.log_text().splitlines() if "failed (" in line and "retry" in line)


def crash_restart(env: Env, events: int = 20_000, seed: int = 21, kills: int = 2,
                  rate: float | None = 1500, max_records_per_poll: int | None = None) -> ScenarioResult:
    """SIGKILL the job's process group mid-stream ``kills`` times; restart from committed offsets.

    Events arrive at ``rate`` per second (all at once for None) while the job runs. A kill
    comes once its share of the events has come out and the job has committed offsets
    since its (re)start, while it still has a backlog to work through, so each restart
    resumes from a committed offset with records in flight. Smaller bundles
    (``max_records_per_poll``) put several commits into a short run.
    """
    started = time.monotonic()
    topics = create_job_topics(env.bootstrap, "crash")
    group = f"g-{topics['in']}"
    extra = ["--start-from", "committed"]
    if max_records_per_poll:
        extra += ["--max-records-per-poll", str(max_records_per_poll)]
    job = env.job(topics, "crash", *extra, group_id=group).start()
    rss = RssSampler(job)
    rss.start()
    reader = OutputReader(env.bootstrap, topics)
    producer = BackgroundProducer(env.bootstrap, topics["in"],
                                  list(catalog_messages(events, seed=seed, bad_every=97)), rate=rate)
    producer.start()
    checks: dict[str, Any] = {"kills": []}
    committed: dict[int, int] = {}
    try:
        for k in range(kills):
            target = events * (k + 1) // (kills + 1)

            def ready(r: OutputReader, target: int = target, before: dict = committed) -> bool:
                # A fast job may have committed everything already: then it is killed idle.
                return len(r.coordinates()) >= target and committed_offsets(env.bootstrap, group) not in (
                    {}, before if len(r.coordinates()) < events else None)

            if not reader.read_until(ready, env.timeout_s, job):
                raise TimeoutError(f"{len(reader.coordinates())} of {target} events out before kill {k + 1}")
            job.kill()
            # What the dead job left behind: its committed offsets and everything it wrote.
            committed = committed_offsets(env.bootstrap, group)
            reader.drain(quiet_s=2)
            written = reader.coordinates().keys()
            ahead = {p: max((o for q, o in written if q == p), default=-1) + 1 - committed.get(p, 0)
                     for p in range(3)}
            checks["kills"].append({
                "events_out": len(written),
                "committed": committed,
                "committed_but_unwritten": unwritten_below_commit(committed, written),
                # Re-read after the restart, so the most a restart can duplicate.
                "written_past_commit": sum(max(0, n) for n in ahead.values()),
            })
            job.start()
        sent = producer.result()
        checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
        checks["job_alive"] = job.alive()
    finally:
        job.stop()
        reader.drain(quiet_s=1)
        reader.close()
        delete_job_topics(env.bootstrap, topics)
    checks["duplicate_bound"] = sum(k["written_past_commit"] for k in checks["kills"])
    return ScenarioResult.of("crash", account(sent, reader), started, rss.finish(), checks)


def broker_restart(env: Env, events: int = 20_000, seed: int = 22, outage_s: float = 30.0,
                   rate: float = 1500) -> ScenarioResult:
    """Stops the broker (a dedicated one) mid-stream for ``outage_s`` and starts it again."""
    started = time.monotonic()
    broker = LocalKafka(port=free_port(), state_dir=env.workdir / "broker-restart")
    broker.start()
    checks: dict[str, Any] = {}
    try:
        topics = create_job_topics(broker.bootstrap, "broker")
        job = env.job(topics, "broker", bootstrap=broker.bootstrap).start()
        rss = RssSampler(job)
        rss.start()
        reader = OutputReader(broker.bootstrap, topics)
        messages = list(catalog_messages(events, seed=seed, bad_every=97))
        half = len(messages) // 2
        try:
            # A steady rate keeps the job busy when the broker goes.
            producer = BackgroundProducer(broker.bootstrap, topics["in"], messages[:half], rate=rate)
            producer.start()
            if not reader.read_until(lambda r: len(r.coordinates()) >= half // 2, env.timeout_s, job):
                raise TimeoutError("the job wrote too little before the broker restart")
            checks["events_out_at_stop"] = len(reader.coordinates())
            # Mid-stream for the job and for the producer, whose client retries its sends.
            broker.stop()
            time.sleep(outage_s)
            broker.start()
            sent = producer.result()
            sent += produce_values(broker.bootstrap, topics["in"], messages[half:])
            checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
            checks["job_alive"] = job.alive()
        finally:
            job.stop()
            checks["retry_log_lines"] = _retry_log_lines(job)
            reader.drain(quiet_s=1)
            reader.close()
    finally:
        broker.stop()
    return ScenarioResult.of("broker", account(sent, reader), started, rss.finish(), checks)


def output_unavailable(env: Env, events: int = 20_000, seed: int = 23,
                       outage_s: float = 20.0) -> ScenarioResult:
    """Deletes the output topic while the job runs; re-creates it ``outage_s`` later."""
    started = time.monotonic()
    topics = create_job_topics(env.bootstrap, "output")
    group = f"g-{topics['in']}"
    job = env.job(topics, "output", group_id=group).start()
    rss = RssSampler(job)
    rss.start()
    reader = OutputReader(env.bootstrap, topics)
    messages = list(catalog_messages(events, seed=seed, bad_every=97))
    third = len(messages) // 3
    checks: dict[str, Any] = {}
    try:
        sent = produce_values(env.bootstrap, topics["in"], messages[:third])
        if not reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job):
            raise TimeoutError("the job did not get through the first third")
        delete_topics(env.bootstrap, [topics["out"]])
        outage_started = time.monotonic()
        sent += produce_values(env.bootstrap, topics["in"], messages[third:2 * third])
        while time.monotonic() - outage_started < outage_s:
            reader.poll()
        # The fault is still on: nothing the job could not write may be committed.
        committed = committed_offsets(env.bootstrap, group)
        checks["committed_during_outage"] = committed
        checks["committed_but_unwritten"] = unwritten_below_commit(committed, reader.coordinates())
        checks["job_alive_during_outage"] = job.alive()
        _create_topic_again(env.bootstrap, topics["out"])
        reader.restart_output_topic()
        sent += produce_values(env.bootstrap, topics["in"], messages[2 * third:])
        checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
        checks["job_alive"] = job.alive()
        checks["committed_at_end"] = committed_offsets(env.bootstrap, group)
    finally:
        job.stop()
        checks["retry_log_lines"] = _retry_log_lines(job)
        reader.drain(quiet_s=1)
        reader.close()
        delete_job_topics(env.bootstrap, topics)
    return ScenarioResult.of("output", account(sent, reader), started, rss.finish(), checks)


def output_refused(env: Env, events: int = 5000, seed: int = 27) -> ScenarioResult:
    """The output topic refuses the job's records for good (its max.message.bytes is too small).

    The job stops with exit code 1 and commits no offset past a record it could not write;
    once the topic is fixed, a restart from the committed offsets gets everything out.
    """
    started = time.monotonic()
    topics = create_job_topics(env.bootstrap, "refused")
    set_topic_config(env.bootstrap, topics["out"], {"max.message.bytes": "200"})
    group = f"g-{topics['in']}"
    sent = produce_values(env.bootstrap, topics["in"], catalog_messages(events, seed=seed, bad_every=97))
    job = env.job(topics, "refused", "--start-from", "committed", group_id=group).start()
    rss = RssSampler(job)
    rss.start()
    reader = OutputReader(env.bootstrap, topics)
    checks: dict[str, Any] = {}
    try:
        checks["first_exit"] = job.wait(env.timeout_s)
        checks["failure_message"] = [line for line in job.log_text().splitlines()
                                     if line.startswith("metafix stream: the pipeline failed")]
        reader.drain(quiet_s=2)
        committed = committed_offsets(env.bootstrap, group)
        checks["committed_at_failure"] = committed
        checks["committed_but_unwritten"] = unwritten_below_commit(committed, reader.coordinates())
        set_topic_config(env.bootstrap, topics["out"], {"max.message.bytes": str(1 << 20)})
        job.start()
        checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
        checks["job_alive"] = job.alive()
    finally:
        job.stop()
        reader.drain(quiet_s=1)
        reader.close()
        delete_job_topics(env.bootstrap, topics)
    return ScenarioResult.of("refused", account(sent, reader), started, rss.finish(), checks)


def set_topic_config(bootstrap: str, topic: str, configs: Mapping[str, str]) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=dict(configs))])
    finally:
        admin.close()


def _create_topic_again(bootstrap: str, topic: str, timeout_s: float = 60) -> None:
    # A deleted topic's name stays taken until the deletion has finished.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            create_topic(bootstrap, topic, 1)
            return
        except KafkaError:
            if time.monotonic() > deadline:
                raise
            time.sleep(1)


def hostile_input(env: Env, events: int = 10_000, seed: int = 24, normal: int = 2000) -> ScenarioResult:
    """``events`` generated hostile payloads, the huge ones, and ``normal`` events in between."""
    from harness.hostile import expected_fate, hostile_payloads

    started = time.monotonic()
    topics = create_job_topics(env.bootstrap, "hostile",
                               input_config={"max.message.bytes": str(BIG_MESSAGE_BYTES)})
    job = env.job(topics, "hostile").start()
    rss = RssSampler(job)
    rss.start()
    reader = OutputReader(env.bootstrap, topics)
    generated = hostile_payloads(events, seed=seed)
    hostile = [Message(None, value, None, None, kind) for kind, value in generated]
    normal_events = list(catalog_messages(normal, seed=seed, bad_every=0))
    # Interleaved: a hostile run, then normal events, and so on.
    step = max(1, len(hostile) // max(1, len(normal_events)))
    mixed: list[Message] = []
    for i, m in enumerate(normal_events):
        mixed += hostile[i * step:(i + 1) * step] + [m]
    mixed += hostile[len(normal_events) * step:]
    checks: dict[str, Any] = {"kinds": dict(Counter(m.bad_kind for m in hostile))}
    try:
        sent = produce_values(env.bootstrap, topics["in"], mixed, max_request_size=BIG_MESSAGE_BYTES)
        checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
        checks["job_alive"] = job.alive()
    finally:
        job.stop()
        reader.drain(quiet_s=1)
        reader.close()
        delete_job_topics(env.bootstrap, topics)
    checks.update(_check_fates(sent, reader, expected_fate))
    return ScenarioResult.of("hostile", account(sent, reader), started, rss.finish(), checks)


def _check_fates(sent: Sequence[Sent], reader: OutputReader, expected_fate: Callable) -> dict[str, Any]:
    """Compares every input's outcome with the pure decoder's verdict."""
    outputs = {(r["input"]["partition"], r["input"]["offset"]): r for r in reader.outputs}
    dead = {(d["partition"], d["offset"]): d for d in reader.dead}
    wrong: list[dict] = []
    reasons: Counter = Counter()
    for s in sent:
        fate = expected_fate(s.value)
        out, letter = outputs.get(s.coordinate), dead.get(s.coordinate)
        if letter is not None:
            reasons[f"{letter['stage']}.{letter['error_type']}"] += 1
        if fate.decodes:
            ok = (out is not None and out["event_id"] == fate.event_id) or (
                letter is not None and letter["stage"] != "decode" and letter["error_type"])
        else:
            ok = (letter is not None and letter["stage"] == "decode" and letter["error_type"] == fate.error_type
                  and letter["payload"] == s.value[:DEAD_LETTER_PAYLOAD_LIMIT]
                  and letter["payload_size"] == len(s.value))
        if not ok:
            wrong.append({"kind": s.kind, "coordinate": s.coordinate, "expected": asdict(fate),
                          "got": "output" if out else (letter or {}).get("error_type")})
    return {"wrong_fate": len(wrong), "wrong_fate_sample": wrong[:10], "reasons": dict(reasons)}


def write_failing_model(destination: Path, like: str) -> Path:
    """A SavedModel that loads like ``like`` (same manifest and outputs) but fails on every batch."""
    import tensorflow as tf

    from model.serving import MANIFEST_FILE, resolve_version_dir
    from model.signature import SWAPPED_OUTPUT, probs_output
    from transforms.fields import SCORED_FIELD_NAMES, SCORED_FIELDS

    class FailingModel(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=n) for n in SCORED_FIELD_NAMES])
        def serve(self, *columns):
            n = tf.shape(columns[0])[0]
            tf.debugging.assert_less(n, 0, message="this model fails on every batch")
            out = {probs_output(s.name): tf.zeros([n, len(s.classes)]) for s in SCORED_FIELDS}
            out[SWAPPED_OUTPUT] = tf.zeros([n])
            return out

    module = FailingModel()
    tf.saved_model.save(module, str(destination), signatures={"serving_default": module.serve.get_concrete_function()})
    shutil.copy(resolve_version_dir(like) / MANIFEST_FILE, destination / MANIFEST_FILE)
    return destination


def model_failure(env: Env, events: int = 5000, seed: int = 25) -> ScenarioResult:
    """The job runs with a model that fails on every batch: all records come out, flagged."""
    started = time.monotonic()
    model_dir = env.workdir / "failing-model"
    if not model_dir.exists():
        # In a child process: TensorFlow stays out of this one.
        subprocess.run([sys.executable, "-c", "import sys; from pathlib import Path; "
                        "from harness.chaos import write_failing_model; "
                        "write_failing_model(Path(sys.argv[1]), sys.argv[2])", str(model_dir), env.model_dir],
                       cwd=REPO_ROOT, check=True, capture_output=True)
    topics = create_job_topics(env.bootstrap, "model")
    job = env.job(topics, "model", model_dir=str(model_dir)).start()
    rss = RssSampler(job)
    rss.start()
    reader = OutputReader(env.bootstrap, topics)
    checks: dict[str, Any] = {}
    try:
        sent = produce_values(env.bootstrap, topics["in"], catalog_messages(events, seed=seed, bad_every=97))
        checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
        checks["job_alive"] = job.alive()
    finally:
        job.stop()
        reader.drain(quiet_s=1)
        reader.close()
        delete_job_topics(env.bootstrap, topics)
    checks["flagged_model_error"] = sum(1 for r in reader.outputs if r["review"] and r["review"][0]["error_class"] == MODEL_ERROR)
    return ScenarioResult.of("model", account(sent, reader), started, rss.finish(), checks)


class SaslKafka(LocalKafka):
    """A local broker with a second listener on ``sasl_port`` that requires SASL/SCRAM-SHA-256.

    The PLAINTEXT listener stays for the broker itself and for test clients; ``users`` get
    their SCRAM credentials through it once the broker is up.
    """

    def __init__(self, port: int, sasl_port: int, state_dir: Path, users: Mapping[str, str]):
        self.sasl_port = sasl_port
        self.users = dict(users)
        self._fixed_controller_port = free_port()
        listeners = {"PLAINTEXT": port, "SASL_PLAINTEXT": sasl_port}
        super().__init__(port, state_dir, extra_properties={
            "listeners": ",".join(f"{n}://{HOST}:{p}" for n, p in listeners.items())
            + f",CONTROLLER://{HOST}:{self._fixed_controller_port}",
            "advertised.listeners": ",".join(f"{n}://{HOST}:{p}" for n, p in listeners.items()),
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
            "sasl.enabled.mechanisms": SASL_MECHANISM,
            f"listener.name.sasl_plaintext.{SASL_MECHANISM.lower()}.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        })

    @property
    def sasl_bootstrap(self) -> str:
        return f"{HOST}:{self.sasl_port}"

    def _controller_port(self) -> int:
        # The SASL listener list names the controller port before the broker starts.
        return self._fixed_controller_port

    def start(self, timeout_s: float = 90.0) -> None:
        super().start(timeout_s)
        admin = KafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            errors = admin.alter_user_scram_credentials([
                UserScramCredentialUpsertion(user, ScramMechanism.SCRAM_SHA_256, password)
                for user, password in self.users.items()
            ])
        finally:
            admin.close()
        if any(errors.values()):
            raise RuntimeError(f"creating SCRAM credentials failed: {errors}")


def sasl_args(user: str, password_file: Path) -> list[str]:
    # The password goes by file: a command line shows in ps.
    return ["--security-protocol", "SASL_PLAINTEXT", "--sasl-mechanism", SASL_MECHANISM,
            "--sasl-plain-username", user, "--sasl-plain-password-file", str(password_file)]


def _password_file(path: Path, password: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(password)
    path.chmod(0o600)
    return path


def sasl_end_to_end(env: Env, events: int = 5000, seed: int = 26) -> ScenarioResult:
    """The job through a SASL listener: right credentials work, wrong ones fail at start."""
    started = time.monotonic()
    user, password, wrong_password = "metafix-job", f"pw-{os.urandom(8).hex()}", f"wrong-{os.urandom(8).hex()}"
    broker = SaslKafka(free_port(), free_port(), env.workdir / "sasl", {user: password})
    broker.start()
    metrics_file = env.workdir / "sasl-metrics.json"
    checks: dict[str, Any] = {}
    try:
        topics = create_job_topics(broker.bootstrap, "sasl")
        wrong_file = _password_file(env.workdir / "sasl-wrong-password", wrong_password)
        wrong = env.job(topics, "sasl-wrong", *sasl_args(user, wrong_file),
                        bootstrap=broker.sasl_bootstrap).start()
        checks["wrong_password_exit"] = wrong.wait(120)
        checks["wrong_password_output"] = [line for line in wrong.log_text().splitlines() if line.strip()]
        password_file = _password_file(env.workdir / "sasl-password", password)
        job = env.job(topics, "sasl", *sasl_args(user, password_file), "--metrics-file", str(metrics_file),
                      bootstrap=broker.sasl_bootstrap).start()
        rss = RssSampler(job)
        rss.start()
        reader = OutputReader(broker.bootstrap, topics)
        try:
            sent = produce_values(broker.bootstrap, topics["in"], catalog_messages(events, seed=seed, bad_every=97))
            checks["complete"] = reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job)
            checks["job_alive"] = job.alive()
        finally:
            job.stop()
            reader.drain(quiet_s=1)
            reader.close()
        texts = [job.log_text(), wrong.log_text(), metrics_file.read_text() if metrics_file.exists() else ""]
        checks["metrics_file_written"] = metrics_file.exists()
        checks["password_in_job_output"] = sum(t.count(pw) for t in texts for pw in (password, wrong_password))
        checks["password_in_dead_letters"] = sum(raw.count(pw.encode()) for raw in reader.dead_raw
                                                 for pw in (password, wrong_password))
    finally:
        broker.stop()
    return ScenarioResult.of("sasl", account(sent, reader), started, rss.finish(), checks)


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {
    "crash": crash_restart,
    "broker": broker_restart,
    "output": output_unavailable,
    "refused": output_refused,
    "hostile": hostile_input,
    "model": model_failure,
    "sasl": sasl_end_to_end,
}
# Events per scenario in ``make chaos`` (hostile: generated payloads; model and sasl run
# the same code path as any other run and need fewer).
FULL_EVENTS = {"crash": 20_000, "broker": 20_000, "output": 20_000, "refused": 5_000,
               "hostile": 10_000, "model": 5_000, "sasl": 5_000}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=None,
                        help="events per scenario (default: 20000; hostile 10000; refused, model, sasl 5000)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--port", type=int, default=19690, help="port of the chaos broker (default 19690)")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios (default: all)")
    parser.add_argument("--output", type=Path, default=RESULTS / "chaos.json")
    parser.add_argument("--kafka-client", choices=CLIENT_NAMES, default=None,
                        help="the job's Kafka client (default: the job's default)")
    args = parser.parse_args(argv)
    model_dir = resolve_model_dir(args.model_dir)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios {sorted(unknown)}; choose from {', '.join(SCENARIOS)}")
    workdir = Path(tempfile.mkdtemp(prefix="metafix-chaos-"))
    broker = LocalKafka(port=args.port, state_dir=workdir / "kafka")
    reuse = port_is_open(args.port) and serves_kafka(broker.bootstrap)
    if not reuse:
        broker.start()
    env = Env(broker.bootstrap, model_dir, workdir, kafka_client=args.kafka_client)
    results = []
    try:
        for name in names:
            print(f"· {name} …", flush=True)
            result = SCENARIOS[name](env, events=args.events or FULL_EVENTS[name])
            print(f"  {result.events_in:,} in, {result.lost:,} lost, {result.duplicates:,} duplicates "
                  f"({result.seconds:.0f} s); checks: {json.dumps(result.checks, default=str)[:600]}", flush=True)
            results.append(result)
    finally:
        if not reuse:
            broker.stop()
    print()
    print(format_table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps({"machine": f"{os.cpu_count()} cores",
                                       "scenarios": [asdict(r) for r in results]}, indent=2) + "\n")
    print(f"\nwrote {args.output} (job logs in {workdir})")
    return 0 if all(r.lost == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
