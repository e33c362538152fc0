"""Fault scenarios for ``metafix stream``: every event that goes in comes out, whatever happens.

    python -m streaming.chaos [--events 20000] [--model-dir DIR] [--only crash,broker,...]

(``make chaos``.) Each scenario runs the real job (``python -m streaming.main stream`` in
a child process with a session of its own, on the local runner) against a real broker,
injects one fault and then accounts for every input record by its coordinates
(partition, offset): it must come out on the output topic (a ``CorrectedRecord`` whose
``input`` names it) or on the dead-letter topic (a ``DeadLetter`` naming it).
Delivery is at-least-once, so a record may come out twice; duplicates are counted, and
every copy must carry the same de-duplication key (``record_key`` = event_id@model
version for outputs, the input coordinates for dead letters).

Scenarios:

* crash: SIGKILL of the job's whole process group mid-stream, restart with
  ``--start-from committed``.
* broker: the broker (a dedicated one) stops and restarts while the job runs; the job
  must ride it out without a restart.
* output: the output topic is deleted while the job runs and re-created later; the
  job must not commit input offsets past records it could not write.
* hostile: generated hostile payloads (random bytes, broken UTF-8 and Avro, unknown
  schema ids, deep and 10 MB JSON, wrong types, control characters) between normal
  events; the job stays up, memory stays bounded.
* model: the model fails on every batch; every record still comes out, flagged.
* sasl: the job reads and writes through a SASL/SCRAM listener; the password appears
  nowhere in the job's output or the dead letters.

Prints a table and writes ``bench/results/chaos.json``. The same functions back
``tests/streaming/test_reliability.py`` with smaller event counts.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
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

import psutil
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from streaming.eventgen import Message, catalog_messages
from streaming.local_kafka import (
    LocalKafka,
    create_topic,
    delete_topics,
    free_port,
    port_is_open,
    serves_kafka,
    unique_topic_name,
)
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms.codec import confluent_decode

RESULTS = REPO_ROOT / "bench" / "results"
JOB_TOPICS = ("in", "out", "review", "audit", "dead")
# Large enough for the 10 MB hostile messages on the input topic.
BIG_MESSAGE_BYTES = 16 << 20

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
    bad_kind: str | None = None

    @property
    def coordinate(self) -> Coordinate:
        return self.partition, self.offset


def produce_values(bootstrap: str, topic: str, messages: Iterable[Message], *,
                   rate: float | None = None, **producer_config: Any) -> list[Sent]:
    """Sends messages (at ``rate`` per second if given) and waits for every ack."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all",
                             **producer_config)
    pending = []
    started = time.monotonic()
    try:
        for i, m in enumerate(messages):
            if rate:
                delay = started + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            pending.append((m, producer.send(topic, key=m.key, value=m.value)))
        producer.flush()
        sent = []
        for m, future in pending:
            meta = future.get(timeout=60)
            sent.append(Sent(meta.partition, meta.offset, m.value, m.event_id, m.bad_kind))
        return sent
    finally:
        producer.close()


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

    def result(self, timeout_s: float = 300) -> list[Sent]:
        self.join(timeout_s)
        if self._error is not None:
            raise self._error
        if self._sent is None:
            raise TimeoutError("the producer did not finish")
        return self._sent


class OutputReader:
    """Reads the job's output and dead-letter topics from their beginning, decoding as it goes."""

    def __init__(self, bootstrap: str, topics: Mapping[str, str], **client: Any):
        self.bootstrap = bootstrap
        self.topics = topics
        self._client = client
        self.outputs: list[dict] = []
        self.dead: list[dict] = []
        self.output_keys: list[bytes | None] = []
        self._consumer: KafkaConsumer | None = None
        self._open()

    def _open(self) -> None:
        self._consumer = KafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                       auto_offset_reset="earliest",
                                       max_partition_fetch_bytes=BIG_MESSAGE_BYTES, **self._client)
        self._consumer.assign([TopicPartition(self.topics[t], 0) for t in ("out", "dead")])
        self._consumer.seek_to_beginning()

    def reopen(self) -> None:
        """Reads a re-created output topic from its start (what was read before is kept)."""
        self.close()
        ends = {}
        self._open()
        # The dead-letter topic was not re-created: carry on where reading stopped.
        ends[TopicPartition(self.topics["dead"], 0)] = self._dead_position
        for tp, offset in ends.items():
            self._consumer.seek(tp, offset)

    _dead_position = 0

    def poll(self, timeout_ms: int = 500) -> int:
        n = 0
        for tp, batch in self._consumer.poll(timeout_ms=timeout_ms).items():
            for m in batch:
                _, record = confluent_decode(m.value)
                if tp.topic == self.topics["out"]:
                    self.outputs.append(record)
                    self.output_keys.append(m.key)
                else:
                    self.dead.append(record)
                    self._dead_position = m.offset + 1
                n += 1
        return n

    def coordinates(self) -> Counter:
        seen: Counter = Counter()
        seen.update((r["input"]["partition"], r["input"]["offset"]) for r in self.outputs)
        seen.update((d["partition"], d["offset"]) for d in self.dead)
        return seen

    def read_until(self, done: Callable[[OutputReader], bool], timeout_s: float,
                   job: StreamJob | None = None) -> bool:
        deadline = time.monotonic() + timeout_s
        while not done(self):
            if time.monotonic() > deadline:
                return False
            if job is not None and not job.alive():
                raise JobExited(job)
            self.poll()
        return True

    def drain(self, quiet_s: float = 3.0, timeout_s: float = 60) -> None:
        """Reads until nothing new arrives for ``quiet_s`` (used once the job is stopped)."""
        deadline = time.monotonic() + timeout_s
        last = time.monotonic()
        while time.monotonic() - last < quiet_s and time.monotonic() < deadline:
            if self.poll():
                last = time.monotonic()

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None


def covers(expected: Iterable[Coordinate]) -> Callable[[OutputReader], bool]:
    wanted = set(expected)

    def done(reader: OutputReader) -> bool:
        return wanted <= set(reader.coordinates())

    return done


def committed_offsets(bootstrap: str, group: str, **client: Any) -> dict[int, int]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, **client)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


# The job


class JobExited(AssertionError):
    def __init__(self, job: StreamJob):
        super().__init__(f"the job exited with {job.returncode}; log {job.log_path}:\n{job.log_tail()}")


class StreamJob:
    """``metafix stream`` in a child process leading a session of its own.

    The runner (Prism) runs as a child of the job, so a crash is simulated by SIGKILL to
    the whole process group. Output goes to ``log_path``.
    """

    def __init__(self, bootstrap: str, topics: Mapping[str, str], model_dir: str, log_path: Path,
                 *extra: str, group_id: str | None = None):
        self.command = [
            sys.executable, "-m", "streaming.main", "stream",
            "--bootstrap-servers", bootstrap,
            "--input-topic", topics["in"], "--output-topic", topics["out"],
            "--review-topic", topics["review"], "--audit-topic", topics["audit"],
            "--dead-letter-topic", topics["dead"],
            "--group-id", group_id or f"g-{topics['in']}", "--model-dir", model_dir, *extra,
        ]
        self.log_path = Path(log_path)
        self._process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> StreamJob:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            log.write(f"\n===== start {self.starts + 1} =====\n")
            log.flush()
            self._process = subprocess.Popen(self.command, cwd=REPO_ROOT, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True)
        self.starts += 1
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None
        return self._process.pid

    @property
    def returncode(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def wait(self, timeout_s: float) -> int:
        assert self._process is not None
        return self._process.wait(timeout=timeout_s)

    def kill(self) -> None:
        """SIGKILL to the job and everything it started (the Prism runner)."""
        if self._process is None:
            return
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait(timeout=30)
        self._reap_group()

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM (the job cancels the pipeline and prints its summary); SIGKILL after ``timeout_s``."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self._process.pid, signal.SIGKILL)
                self._process.wait(timeout=30)
        self._reap_group()
        return self._process.returncode

    def _reap_group(self) -> None:
        # Whatever of the job's session outlived it (a runner left behind) goes too.
        assert self._process is not None
        pgid = self._process.pid
        for p in psutil.process_iter(["pid"]):
            try:
                if os.getpgid(p.pid) == pgid:
                    p.kill()
            except (ProcessLookupError, psutil.Error, PermissionError):
                pass

    def tree_rss(self) -> int:
        """Resident memory of the job and its children, in bytes."""
        try:
            root = psutil.Process(self.pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in procs:
            try:
                total += p.memory_info().rss
            except psutil.Error:
                pass
        return total

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])


class RssSampler(threading.Thread):
    """Peak resident memory of a job's process tree, sampled in a thread."""

    def __init__(self, job: StreamJob, interval_s: float = 0.2):
        super().__init__(daemon=True, name="chaos-rss")
        self._job = job
        self._interval = interval_s
        self._stop = threading.Event()
        self.peak = 0
        self.samples: list[int] = []

    def run(self) -> None:
        while not self._stop.wait(self._interval):
            if self._job.alive():
                rss = self._job.tree_rss()
                self.samples.append(rss)
                self.peak = max(self.peak, rss)

    def finish(self) -> int:
        self._stop.set()
        self.join(5)
        return self.peak


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
    lost_coordinates: list[Coordinate] = field(default_factory=list)


def dedup_key_of_output(record: Mapping[str, Any]) -> str:
    return record["record_key"]


def account(sent: Sequence[Sent], reader: OutputReader) -> Accounting:
    expected = {s.coordinate for s in sent}
    keys: dict[Coordinate, set] = defaultdict(set)
    for r in reader.outputs:
        keys[(r["input"]["partition"], r["input"]["offset"])].add(("out", dedup_key_of_output(r)))
    for d in reader.dead:
        keys[(d["partition"], d["offset"])].add(("dead", d["stage"], d["error_type"]))
    seen = reader.coordinates()
    lost = sorted(expected - set(seen))
    return Accounting(
        events_in=len(expected),
        out=len(reader.outputs),
        dead_letters=len(reader.dead),
        duplicates=sum(n - 1 for c, n in seen.items() if c in expected),
        lost=len(lost),
        unexpected=sum(n for c, n in seen.items() if c not in expected),
        key_conflicts=sum(1 for c, k in keys.items() if c in expected and len(k) > 1),
        lost_coordinates=lost[:20],
    )


# Scenario results


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
    def of(cls, scenario: str, acc: Accounting, started: float, **kw: Any) -> ScenarioResult:
        result = cls(scenario, acc.events_in, acc.out, acc.dead_letters, acc.duplicates, acc.lost,
                     round(time.monotonic() - started, 1), **kw)
        result.checks.setdefault("unexpected", acc.unexpected)
        result.checks.setdefault("key_conflicts", acc.key_conflicts)
        if acc.lost_coordinates:
            result.checks["lost_sample"] = acc.lost_coordinates
        return result


def format_table(results: Sequence[ScenarioResult]) -> str:
    header = f"{'scenario':<10} {'events in':>10} {'out':>8} {'dead letters':>13} {'duplicates':>11} {'lost':>6} {'peak RSS':>10} {'time':>8}"
    lines = [header, "-" * len(header)]
    for r in results:
        rss = f"{r.peak_rss_mb:,.0f} MB" if r.peak_rss_mb else "-"
        lines.append(f"{r.scenario:<10} {r.events_in:>10,} {r.out:>8,} {r.dead_letters:>13,} "
                     f"{r.duplicates:>11,} {r.lost:>6,} {rss:>10} {r.seconds:>7.0f}s")
    return "\n".join(lines)


# Scenarios


@dataclass
class Env:
    """What every scenario needs: a broker to use, a model and a scratch directory."""

    bootstrap: str
    model_dir: str
    workdir: Path
    timeout_s: float = 900.0
    job_args: tuple[str, ...] = ()

    def job(self, topics: Mapping[str, str], name: str, *extra: str, bootstrap: str | None = None,
            group_id: str | None = None) -> StreamJob:
        return StreamJob(bootstrap or self.bootstrap, topics, self.model_dir, self.workdir / f"{name}.log",
                         *self.job_args, *extra, group_id=group_id)


def _stop_and_drain(job: StreamJob, reader: OutputReader) -> None:
    job.stop()
    reader.drain()


def crash_restart(env: Env, events: int = 20_000, kills: int = 1, seed: int = 21) -> ScenarioResult:
    """SIGKILL the job's process group mid-stream ``kills`` times; restart from committed offsets."""
    started = time.monotonic()
    topics = create_job_topics(env.bootstrap, "crash")
    group = f"g-{topics['in']}"
    job = env.job(topics, "crash", "--start-from", "committed", group_id=group).start()
    reader = OutputReader(env.bootstrap, topics)
    messages = list(catalog_messages(events, seed=seed, bad_every=97))
    producer = BackgroundProducer(env.bootstrap, topics["in"], messages)
    producer.start()
    checks: dict[str, Any] = {"kills": []}
    try:
        for k in range(kills):
            target = events * (k + 1) // (kills + 1)
            if not reader.read_until(lambda r, t=target: len(r.coordinates()) >= t, env.timeout_s, job):
                raise TimeoutError(f"only {len(reader.coordinates())} of {target} events came out before kill {k + 1}")
            job.kill()
            # What the dead job left: committed offsets, and everything it wrote.
            committed = committed_offsets(env.bootstrap, group)
            reader.drain(quiet_s=2)
            written = set(reader.coordinates())
            uncovered = [(p, o) for p, end in committed.items() for o in range(end) if (p, o) not in written]
            in_flight = {p: max((o for q, o in written if q == p), default=-1) + 1 - committed.get(p, 0)
                         for p in range(3)}
            checks["kills"].append({"at_accounted": len(written), "committed": committed,
                                    "committed_but_unwritten": len(uncovered),
                                    "written_past_commit": sum(max(0, n) for n in in_flight.values())})
            job.start()
        sent = producer.result()
        if not reader.read_until(covers(s.coordinate for s in sent), env.timeout_s, job):
            raise TimeoutError("not every event came out after the restart")
        checks["job_alive_at_end"] = job.alive()
    finally:
        _stop_and_drain(job, reader)
        reader.close()
    acc = account(sent, reader)
    checks["duplicate_bound"] = sum(k["written_past_commit"] for k in checks["kills"])
    return ScenarioResult.of("crash", acc, started, checks=checks)


SCENARIOS: dict[str, Callable[..., ScenarioResult]] = {
    "crash": crash_restart,
}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m streaming.chaos", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events per scenario (default 20000)")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--port", type=int, default=19690, help="port of the shared chaos broker")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--output", type=Path, default=RESULTS / "chaos.json")
    args = parser.parse_args(argv)
    model_dir = resolve_model_dir(args.model_dir)
    workdir = Path(tempfile.mkdtemp(prefix="metafix-chaos-"))
    broker = LocalKafka(port=args.port, state_dir=workdir / "kafka",
                        extra_properties={"message.max.bytes": str(BIG_MESSAGE_BYTES)})
    started_broker = False
    if not (port_is_open(args.port) and serves_kafka(broker.bootstrap)):
        broker.start()
        started_broker = True
    env = Env(broker.bootstrap, model_dir, workdir)
    results = []
    try:
        for name in args.only.split(","):
            print(f"· {name} …", flush=True)
            result = SCENARIOS[name](env, events=args.events)
            print(f"  {result}", flush=True)
            results.append(result)
    finally:
        if started_broker:
            broker.stop()
    print(format_table(results))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"wrote {args.output} (job logs in {workdir})")
    return 0 if all(r.lost == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
