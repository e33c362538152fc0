"""``make bench``: throughput, latency and memory of metafix on this machine.

    python -m bench.run [--events 100000] [--rate 5000] [--model-dir model/export]

All measurements run in one go on the same machine and broker:

* e2e: the streaming job (``metafix stream``, local runner) over a pre-filled
  topic, Kafka to Kafka; events/s from its first output to its last.
* baseline: a plain loop (kafka-python consume -> the same decode, model,
  policy and encode code -> produce), no Beam.
* model: the exported signature alone, at the batch size the job achieved.
* latency: the job at a fixed input rate; output record time minus input
  record time (both Kafka timestamps), p50/p99.
* memory and CPU: peak RSS of the job's process tree; CPU seconds per 1k events.
* replay: ``metafix replay`` over an Avro event log.

Prints a table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import fastavro
import numpy as np
import psutil
from kafka import KafkaConsumer, KafkaProducer

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob
from harness.local_kafka import (
    LocalKafka,
    create_topic,
    port_is_open,
    serves_kafka,
    unique_topic_name,
)
from schemas import CATALOG_UPDATE_EVENT
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms import codec

RESULTS = REPO_ROOT / "bench" / "results"


class TreeSampler:
    """Peak RSS and CPU seconds of a process and its children, sampled in a thread."""

    def __init__(self, pid: int, interval_s: float = 0.25):
        self._root = psutil.Process(pid)
        self._interval = interval_s
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                procs = [self._root, *self._root.children(recursive=True)]
            except psutil.NoSuchProcess:
                return
            rss = 0
            for p in procs:
                try:
                    rss += p.memory_info().rss
                    t = p.cpu_times()
                    self._cpu[p.pid] = t.user + t.system + t.children_user + t.children_system
                except psutil.NoSuchProcess:
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            self._stop.wait(self._interval)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self._cpu.values())


def _job(bootstrap: str, topics: dict[str, str], model_dir: str, metrics_file: str) -> StreamJob:
    return StreamJob(bootstrap, topics, model_dir, Path(metrics_file).with_suffix(".log"),
                     "--start-from", "earliest", "--metrics-file", metrics_file,
                     group_id=f"bench-{topics['in']}").start()


def _topics(bootstrap: str) -> dict[str, str]:
    topics = {name: unique_topic_name(f"bench-{name}") for name in ("in", "out", "dead", "audit", "review")}
    for topic in topics.values():
        create_topic(bootstrap, topic, partitions=3)
    return topics


def _drain(bootstrap: str, topics: list[str], expected: int, timeout_s: float) -> list:
    """(topic, timestamp_ms, value) of every output record until ``expected`` arrived."""
    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None,
                             fetch_max_bytes=64 << 20)
    seen = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for tp, batch in consumer.poll(timeout_ms=500, max_records=20000).items():
                seen += [(tp.topic, m.timestamp, m.value, time.time()) for m in batch]
    finally:
        consumer.close()
    return seen


def bench_e2e(bootstrap: str, model_dir: str, n: int) -> dict:
    topics = _topics(bootstrap)
    messages = list(catalog_messages(n, seed=21, bad_every=0))
    produce(bootstrap, topics["in"], iter(messages))
    metrics_file = tempfile.mktemp(suffix=".json")
    job = _job(bootstrap, topics, model_dir, metrics_file)
    sampler = TreeSampler(job.pid)
    started = time.monotonic()
    try:
        seen = _drain(bootstrap, [topics["out"], topics["dead"]], n, timeout_s=1800)
    finally:
        cpu = sampler.stop()
        # SIGTERM: the job cancels the pipeline and writes its metrics file while the runner is up.
        job.stop(timeout_s=90)
    arrivals = sorted(t for *_, t in seen)
    window = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    metrics = json.loads(Path(metrics_file).read_text()) if Path(metrics_file).exists() else {}
    batch = metrics.get("inference_batch_size", {})
    return {
        "events": n,
        "out": len(seen),
        "e2e_events_per_s": len(seen) / window,
        "e2e_wall_s_including_startup": time.monotonic() - started,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "cpu_s_per_1k_events": cpu / n * 1000,
        "job_mean_batch_size": batch.get("mean"),
    }


def bench_latency(bootstrap: str, model_dir: str, rate: float, seconds: float) -> dict:
    topics = _topics(bootstrap)
    n = int(rate * seconds)
    metrics_file = tempfile.mktemp(suffix=".json")
    job = _job(bootstrap, topics, model_dir, metrics_file)
    sampler = TreeSampler(job.pid)
    try:
        # Let the job start and settle before the clock matters.
        produce(bootstrap, topics["in"], catalog_messages(50, seed=1, bad_every=0))
        _drain(bootstrap, [topics["out"]], 50, timeout_s=300)
        messages = list(catalog_messages(n, seed=22, bad_every=0, id_prefix="lat"))
        sent_at: dict[str, int] = {}
        producer = KafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks=1)
        consumer_result: list = []
        reader = threading.Thread(target=lambda: consumer_result.extend(
            _drain(bootstrap, [topics["out"]], n + 50, timeout_s=seconds + 300)), daemon=True)
        reader.start()
        start = time.monotonic()
        for i, m in enumerate(messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            ts = int(time.time() * 1000)
            sent_at[m.event_id] = ts
            producer.send(topics["in"], key=m.key, value=m.value, timestamp_ms=ts)
        producer.flush()
        achieved = n / (time.monotonic() - start)
        reader.join()
    finally:
        cpu = sampler.stop()
        # SIGTERM: the job cancels the pipeline and writes its metrics file while the runner is up.
        job.stop(timeout_s=90)
    latencies = []
    for _, ts, value, _ in consumer_result:
        _, record = codec.confluent_decode(value)
        if record["event_id"] in sent_at:
            latencies.append(ts - sent_at[record["event_id"]])
    lat = np.array(latencies, dtype=float)
    return {
        "rate_target": rate,
        "rate_achieved": achieved,
        "measured": len(lat),
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "latency_max_ms": float(lat.max()) if len(lat) else None,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "cpu_s_per_1k_events": cpu / (n + 50) * 1000,
    }


def bench_baseline(bootstrap: str, model_dir: str, n: int, batch_size: int = 512) -> dict:
    """No Beam: consume, decode, score, correct, encode, produce in one loop."""
    from model.serving import Predictor
    from schemas import CORRECTED_SCHEMA_ID
    from transforms import records
    from transforms.policy import correct_track

    topics = _topics(bootstrap)
    produce(bootstrap, topics["in"], catalog_messages(n, seed=21, bad_every=0))
    predictor = Predictor.load(model_dir)
    thresholds, version = predictor.thresholds, predictor.version
    consumer = KafkaConsumer(topics["in"], bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             group_id=None, max_poll_records=batch_size, fetch_max_bytes=64 << 20)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=5)
    done = 0
    started = None
    while done < n:
        for _, batch in consumer.poll(timeout_ms=500, max_records=batch_size).items():
            started = started or time.monotonic()
            events = [(m, codec.decode_event(m.value)) for m in batch]
            scores = predictor.predict([e["track"] for _, e in events])
            for (m, event), s in zip(events, scores, strict=True):
                result = correct_track(event["track"], s, thresholds=thresholds, model_version=version)
                record = records.corrected_record(
                    event, track=result.track, corrections=result.corrections, review=result.review,
                    model_version=version,
                    input_coordinates=records.coordinates(m.topic, m.partition, m.offset, m.timestamp))
                producer.send(topics["out"], key=m.key, value=codec.confluent_encode(CORRECTED_SCHEMA_ID, record))
            done += len(batch)
    producer.flush()
    elapsed = time.monotonic() - started
    consumer.close()
    producer.close()
    return {"baseline_events_per_s": n / elapsed}


def bench_model(model_dir: str, batch_size: int, n: int = 50_000) -> dict:
    from model.serving import Predictor

    predictor = Predictor.load(model_dir)
    tracks = [codec.decode_event(m.value)["track"] for m in catalog_messages(batch_size, seed=4, bad_every=0)]
    predictor.predict(tracks)
    rounds = max(1, n // batch_size)
    started = time.perf_counter()
    for _ in range(rounds):
        predictor.predict_probs(tracks)
    signature_rate = rounds * batch_size / (time.perf_counter() - started)
    started = time.perf_counter()
    for _ in range(rounds):
        predictor.predict(tracks)
    return {"batch_size": batch_size, "model_records_per_s": signature_rate,
            "model_with_postprocessing_records_per_s": rounds * batch_size / (time.perf_counter() - started)}


def bench_replay(model_dir: str, n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "events.avro"
        with open(log, "wb") as f:
            fastavro.writer(f, CATALOG_UPDATE_EVENT,
                            (codec.decode_event(m.value) for m in catalog_messages(n, seed=23, bad_every=0)))
        metrics_file = Path(tmp) / "metrics.json"
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "streaming.main", "replay", "--input", str(log), "--output",
             str(Path(tmp) / "out.avro"), "--format", "avro", "--model-dir", model_dir,
             "--metrics-file", str(metrics_file)],
            cwd=REPO_ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        elapsed = time.monotonic() - started
        with open(Path(tmp) / "out.avro", "rb") as f:
            out = sum(1 for _ in fastavro.reader(f))
    return {"replay_records": out, "replay_records_per_s": out / elapsed, "replay_wall_s": elapsed}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--latency-seconds", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=19700)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--only", nargs="*", default=None,
                        help="subset of: e2e baseline model latency replay")
    args = parser.parse_args(argv)
    model_dir = resolve_model_dir(args.model_dir)
    wanted = set(args.only or ["e2e", "baseline", "model", "latency", "replay"])

    broker = LocalKafka(port=args.port)
    started_broker = not (port_is_open(args.port) and serves_kafka(broker.bootstrap))
    if started_broker:
        broker.start()
    results: dict = {"machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
                     "model_dir": model_dir, "events": args.events}
    try:
        if "e2e" in wanted:
            results["e2e"] = bench_e2e(broker.bootstrap, model_dir, args.events)
            print(f"e2e: {results['e2e']}", flush=True)
        if "baseline" in wanted:
            results["baseline"] = bench_baseline(broker.bootstrap, model_dir, args.events)
            print(f"baseline: {results['baseline']}", flush=True)
        if "model" in wanted:
            achieved = (results.get("e2e") or {}).get("job_mean_batch_size") or 512
            results["model"] = bench_model(model_dir, max(1, round(achieved)))
            print(f"model: {results['model']}", flush=True)
        if "latency" in wanted:
            results["latency"] = bench_latency(broker.bootstrap, model_dir, args.rate, args.latency_seconds)
            print(f"latency: {results['latency']}", flush=True)
        if "replay" in wanted:
            results["replay"] = bench_replay(model_dir, args.events)
            print(f"replay: {results['replay']}", flush=True)
    finally:
        if started_broker:
            broker.stop()
    e2e, base, lat = results.get("e2e", {}), results.get("baseline", {}), results.get("latency", {})
    results.update({
        "e2e_events_per_s": e2e.get("e2e_events_per_s"),
        "baseline_events_per_s": base.get("baseline_events_per_s"),
        "ratio_to_baseline": (e2e["e2e_events_per_s"] / base["baseline_events_per_s"]) if e2e and base else None,
        "latency_p50_ms": lat.get("latency_p50_ms"),
        "latency_p99_ms": lat.get("latency_p99_ms"),
        "peak_rss_mb": max([r.get("peak_rss_mb") or 0 for r in (e2e, lat)]) or None,
        "cpu_s_per_1k_events": e2e.get("cpu_s_per_1k_events"),
        "model_records_per_s": (results.get("model") or {}).get("model_records_per_s"),
        "replay_records_per_s": (results.get("replay") or {}).get("replay_records_per_s"),
    })
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")
    print("\nmetafix benchmark (this machine)")
    for key in ("e2e_events_per_s", "baseline_events_per_s", "ratio_to_baseline", "model_records_per_s",
                "latency_p50_ms", "latency_p99_ms", "peak_rss_mb", "cpu_s_per_1k_events", "replay_records_per_s"):
        value = results.get(key)
        print(f"  {key:<26} {value:>12,.2f}" if isinstance(value, int | float) else f"  {key:<26} {'-':>12}")
    print(f"\nwrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
