"""``make soak``: the streaming job on a real broker at a steady rate, for a long time.

    python -m bench.soak [--minutes 30] [--rate 1000] [--port 19492] [--model-dir model/export]

(``make soak SOAK_MINUTES=30 SOAK_RATE=1000``.) Starts a broker of its own (port 19492 by
default, so the shared test broker is left alone), runs ``metafix stream`` with
``--start-from committed`` in a child process, and produces realistic catalog events (a
few undecodable) in batches every 100 ms. Every 30 s it samples the job's process tree
(the job and its Prism runner): resident memory, CPU, events in and out, and the lag of
the job's consumer group. At the end it lets the job catch up, stops it, reads back the
output and dead-letter topics, and accounts for every produced (partition, offset).

It passes when the job stayed alive throughout, nothing was lost, and resident memory grew
by less than 1 MB a minute after the first 5 minutes (the least-squares slope over the
samples). Prints a table, writes ``bench/results/soak.json``, exits 1 on a failure. The
job's output goes to ``.state/soak/job-<run>.log``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from itertools import cycle
from pathlib import Path

import numpy as np
import psutil
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

# The harness pieces (broker, events, job process, committed offsets) in one place.
from harness.chaos import create_job_topics, delete_job_topics
from harness.eventgen import Message, catalog_messages
from harness.jobs import StreamJob, committed_offsets, http_get
from harness.local_kafka import LocalKafka, free_port, port_is_open, serves_kafka
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms.codec import confluent_decode

RESULTS = REPO_ROOT / "bench" / "results"
LOG_DIR = REPO_ROOT / ".state" / "soak"
DEFAULT_PORT = 19492
TICK_S = 0.1
# Memory settles while TensorFlow, Beam and the broker connections warm up; the slope is
# judged on what comes after.
WARMUP_MINUTES = 5.0
MAX_RSS_SLOPE_MB_PER_MIN = 1.0


@dataclass(frozen=True)
class Sample:
    t_s: float
    events_in: int
    events_out: int
    lag: int
    rss_mb: float
    cpu_pct: float
    # CPU seconds the tree has used since the job started.
    cpu_s: float
    # Resident memory per process of the tree (job, prism), to tell which one grows.
    rss_by_process_mb: dict[str, float]
    # From the job's live metrics: /healthz's status, and the full (generation 2) garbage
    # collections so far, to tell garbage piling up between them from memory kept.
    healthz: int | None = None
    full_collections: int | None = None


class PacedProducer(threading.Thread):
    """Sends ``rate`` events a second, a batch every 100 ms, until stopped; counts the acks."""

    def __init__(self, bootstrap: str, topic: str, messages: Iterator[Message], rate: float):
        super().__init__(daemon=True, name="soak-producer")
        self._producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=10, acks="all")
        self._topic = topic
        self._messages = messages
        self._rate = rate
        self._stopped = threading.Event()
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        started = time.monotonic()
        try:
            while not self._stopped.is_set():
                due = int((time.monotonic() - started) * self._rate)
                for _ in range(due - self.sent):
                    message = next(self._messages)
                    future = self._producer.send(self._topic, key=message.key, value=message.value)
                    future.add_callback(self._on_ack)
                    future.add_errback(self._on_error)
                    self.sent += 1
                self._stopped.wait(TICK_S)
            self._producer.flush()
        except BaseException as e:  # noqa: BLE001 - reported by the soak as a failed producer
            self.error = e
        finally:
            self._producer.close()

    def _on_ack(self, _metadata) -> None:
        self.acked += 1

    def _on_error(self, _error) -> None:
        self.failed += 1

    def finish(self) -> None:
        self._stopped.set()
        self.join(120)


def tree_usage(pid: int) -> tuple[dict[str, float], float]:
    """Resident MB per process (named ``name[pid]``) and CPU seconds of ``pid`` and its descendants."""
    try:
        root = psutil.Process(pid)
        processes = [root, *root.children(recursive=True)]
    except psutil.Error:
        return {}, 0.0
    rss: dict[str, float] = {}
    cpu = 0.0
    for p in processes:
        try:
            with p.oneshot():
                rss[f"{p.name()}[{p.pid}]"] = p.memory_info().rss / 2**20
                t = p.cpu_times()
                cpu += t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
    return rss, cpu


def end_offsets(consumer: KafkaConsumer, topic: str) -> dict[int, int]:
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    return {tp.partition: offset for tp, offset in consumer.end_offsets(partitions).items()}


def rss_slope_mb_per_min(samples: Sequence[Sample], after_min: float = WARMUP_MINUTES) -> float | None:
    """Least-squares slope of the tree's RSS over the samples after ``after_min``; None under 3 samples."""
    late = [s for s in samples if s.t_s >= after_min * 60]
    if len(late) < 3:
        return None
    minutes = np.array([s.t_s / 60 for s in late])
    rss = np.array([s.rss_mb for s in late])
    return float(np.polyfit(minutes, rss, 1)[0])


def account(bootstrap: str, topics: dict[str, str], produced: dict[int, int], timeout_s: float = 600) -> dict:
    """Reads the output and dead-letter topics to their end; every produced offset must be in one."""
    seen = {p: np.zeros(end, dtype=np.uint32) for p, end in produced.items()}
    unexpected = 0
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest",
                             fetch_max_bytes=64 << 20)
    try:
        targets = {}
        for name in ("out", "dead"):
            for p, end in end_offsets(consumer, topics[name]).items():
                targets[TopicPartition(topics[name], p)] = end
        consumer.assign(list(targets))
        consumer.seek_to_beginning()
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < end for tp, end in targets.items()):
            if time.monotonic() > deadline:
                raise TimeoutError("reading the job's outputs back took too long")
            for tp, batch in consumer.poll(timeout_ms=1000, max_records=20_000).items():
                for m in batch:
                    _, record = confluent_decode(m.value)
                    if tp.topic == topics["out"]:
                        partition, offset = record["input"]["partition"], record["input"]["offset"]
                    else:
                        partition, offset = record["partition"], record["offset"]
                    if partition in seen and 0 <= offset < len(seen[partition]):
                        seen[partition][offset] += 1
                    else:
                        unexpected += 1
        outputs = sum(targets[tp] for tp in targets if tp.topic == topics["out"])
        dead = sum(targets[tp] for tp in targets if tp.topic == topics["dead"])
    finally:
        consumer.close()
    lost = sum(int((counts == 0).sum()) for counts in seen.values())
    duplicates = sum(int(np.maximum(counts.astype(np.int64) - 1, 0).sum()) for counts in seen.values())
    return {"produced": sum(produced.values()), "out": outputs, "dead_letters": dead, "lost": lost,
            "duplicates": duplicates, "unexpected": unexpected}


def log_counts(path: Path) -> dict[str, int]:
    """Lines, warnings and errors of the job's log (Python logging) or the broker's (log4j)."""
    text = path.read_text(errors="replace") if path.exists() else ""
    lines = text.splitlines()
    return {"lines": len(lines), "warnings": sum(re.search(r" WARN(ING)? ", line) is not None for line in lines),
            "errors": sum(" ERROR " in line for line in lines), "bytes": len(text.encode())}


def live_metrics(port: int) -> tuple[int | None, int | None]:
    """(/healthz status, full garbage collections so far) from the job's metrics port; None where it did not answer."""
    base = f"http://127.0.0.1:{port}"
    try:
        health = http_get(base + "/healthz")[0]
    except OSError:
        health = None
    try:
        status, text = http_get(base + "/metrics")
    except OSError:
        return health, None
    if status != 200:
        return health, None
    full = [s.value for family in text_string_to_metric_families(text) if family.name == "python_gc_collections"
            for s in family.samples if s.labels.get("generation") == "2"]
    return health, int(full[0]) if full else None


def format_row(s: Sample) -> str:
    return (f"  {s.t_s / 60:>6.1f}  {s.events_in:>10,}  {s.events_out:>10,}  {s.lag:>8,}"
            f"  {s.rss_mb:>8.1f}  {s.cpu_pct:>6.0f}  {_or_dash(s.full_collections):>7}  {_or_dash(s.healthz):>7}")


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


HEADER = (f"  {'min':>6}  {'events in':>10}  {'events out':>10}  {'lag':>8}  {'RSS MB':>8}  {'CPU %':>6}"
          f"  {'full GC':>7}  {'healthz':>7}")


def soak(bootstrap: str, model_dir: str, minutes: float, rate: float, sample_s: float,
         catch_up_s: float, run_id: str) -> dict:
    topics = create_job_topics(bootstrap, f"soak-{run_id}")
    group = f"soak-{run_id}"
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    log_path = LOG_DIR / f"job-{run_id}.log"
    metrics_file = LOG_DIR / f"metrics-{run_id}.json"
    # One minute of distinct events, sent round and round: generating them as we go would
    # take CPU from the job on a small machine.
    pool = list(catalog_messages(int(rate * 60), seed=31, id_prefix=f"soak-{run_id}"))
    metrics_port = free_port()
    job = StreamJob(bootstrap, topics, model_dir, log_path, "--start-from", "committed",
                    "--metrics-file", str(metrics_file), "--metrics-port", str(metrics_port), group_id=group).start()
    print(f"· job pid {job.pid}, log {log_path.relative_to(REPO_ROOT)}; {minutes:g} min at {rate:g} events/s",
          flush=True)
    producer = PacedProducer(bootstrap, topics["in"], cycle(pool), rate)
    watcher = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
    samples: list[Sample] = []
    died_at_s: float | None = None
    load_at_start = os.getloadavg()
    started = time.monotonic()
    last_cpu, last_t = tree_usage(job.pid)[1], started

    def sample() -> Sample:
        nonlocal last_cpu, last_t
        now = time.monotonic()
        rss, cpu = tree_usage(job.pid)
        # Read in the order the job moves them (commit after output after input), so that
        # neither the lag nor events out can overtake events in between two reads.
        committed = committed_offsets(bootstrap, group)
        out = sum(end_offsets(watcher, topics["out"]).values()) + sum(end_offsets(watcher, topics["dead"]).values())
        produced = end_offsets(watcher, topics["in"])
        s = Sample(round(now - started, 1), sum(produced.values()), out,
                   sum(end - committed.get(p, 0) for p, end in produced.items()),
                   round(sum(rss.values()), 1), round(100 * (cpu - last_cpu) / max(now - last_t, 1e-9), 1),
                   round(cpu, 1),
                   {name: round(mb, 1) for name, mb in rss.items()}, *live_metrics(metrics_port))
        last_cpu, last_t = cpu, now
        samples.append(s)
        print(format_row(s), flush=True)
        return s

    print(HEADER, flush=True)
    try:
        producer.start()
        next_sample = started + sample_s
        while time.monotonic() - started < minutes * 60:
            if not job.alive():
                died_at_s = time.monotonic() - started
                break
            if producer.error is not None:
                raise producer.error
            time.sleep(max(0.0, min(1.0, next_sample - time.monotonic())))
            if time.monotonic() >= next_sample:
                sample()
                next_sample += sample_s
        producer.finish()
        steady = list(samples)
        # The job catches up with the last events before it is stopped.
        deadline = time.monotonic() + catch_up_s
        while died_at_s is None and time.monotonic() < deadline:
            if not job.alive():
                died_at_s = time.monotonic() - started
                break
            if sample().lag == 0:
                break
            time.sleep(5)
        exit_code = job.stop()
        produced = end_offsets(watcher, topics["in"])
        accounting = account(bootstrap, topics, produced)
    finally:
        producer.finish()
        watcher.close()
        job.stop()
    cpu_s = samples[-1].cpu_s if samples else 0.0
    slope = rss_slope_mb_per_min(samples)
    checks = {
        "alive_throughout": died_at_s is None,
        "nothing_lost": accounting["lost"] == 0 and producer.failed == 0,
        "rss_slope_ok": slope is not None and slope < MAX_RSS_SLOPE_MB_PER_MIN,
        "caught_up": bool(samples) and samples[-1].lag == 0,
        # The job answered /healthz with 200 at every sample while it ran.
        "healthy_throughout": bool(samples) and all(s.healthz == 200 for s in samples),
        # SIGTERM after the whole run still cancels the pipeline and ends the job with 0.
        "stopped_cleanly": exit_code == 0,
    }
    result = {
        "run_id": run_id,
        "minutes": minutes,
        "rate_target": rate,
        "rate_achieved": round(producer.acked / (minutes * 60), 1),
        "send_failures": producer.failed,
        **accounting,
        "died_at_s": died_at_s,
        "job_exit_code": exit_code,
        "rss_first_mb": samples[0].rss_mb if samples else None,
        "rss_last_mb": samples[-1].rss_mb if samples else None,
        "rss_slope_mb_per_min_after_5": None if slope is None else round(slope, 3),
        "cpu_pct_mean": round(float(np.mean([s.cpu_pct for s in steady])), 1) if steady else None,
        "cpu_s_per_1k_events": round(cpu_s / max(accounting["produced"], 1) * 1000, 3),
        "job_log": {"path": str(log_path.relative_to(REPO_ROOT)), **log_counts(log_path)},
        "machine": {"cpus": os.cpu_count(), "load_avg_at_start": [round(x, 2) for x in load_at_start],
                    "load_avg_at_end": [round(x, 2) for x in os.getloadavg()]},
        "topics": topics,
        "checks": checks,
        "passed": all(checks.values()),
        "samples": [asdict(s) for s in samples],
    }
    delete_job_topics(bootstrap, topics)
    return result


def print_report(result: dict) -> None:
    print("\nmetafix soak")
    for key in ("minutes", "rate_target", "rate_achieved", "produced", "out", "dead_letters", "lost",
                "duplicates", "unexpected", "rss_first_mb", "rss_last_mb", "rss_slope_mb_per_min_after_5",
                "cpu_pct_mean", "cpu_s_per_1k_events", "job_exit_code"):
        print(f"  {key:<30} {result[key]}")
    print(f"  {'job log':<30} {result['job_log']}")
    print(f"  {'broker log':<30} {result['broker_log']}")
    print(f"  {'machine':<30} {result['machine']}")
    for name, ok in result["checks"].items():
        print(f"  {name:<30} {'ok' if ok else 'FAILED'}")
    print(f"  {'result':<30} {'PASS' if result['passed'] else 'FAIL'}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=float(os.environ.get("SOAK_MINUTES", "30")))
    parser.add_argument("--rate", type=float, default=float(os.environ.get("SOAK_RATE", "1000")))
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"broker port (default {DEFAULT_PORT})")
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--catch-up-seconds", type=float, default=300.0,
                        help="how long the job may take to catch up once producing stops")
    parser.add_argument("--model-dir", default=None)
    args = parser.parse_args(argv)
    model_dir = resolve_model_dir(args.model_dir)

    broker = LocalKafka(port=args.port)
    started_broker = not (port_is_open(args.port) and serves_kafka(broker.bootstrap))
    if started_broker:
        print(f"· starting a Kafka broker on {broker.bootstrap} …", flush=True)
        broker.start()
    try:
        result = soak(broker.bootstrap, model_dir, args.minutes, args.rate, args.sample_seconds,
                      args.catch_up_seconds, uuid.uuid4().hex[:8])
        result["broker_log"] = {"path": str(broker.log_file), **log_counts(broker.log_file)}
    finally:
        if started_broker:
            broker.stop()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "soak.json").write_text(json.dumps(result, indent=2) + "\n")
    print_report(result)
    print(f"\nwrote {RESULTS / 'soak.json'}")
    return 0 if result["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
