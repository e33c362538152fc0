"""``make bench``: throughput, latency and memory of metafix on this machine, in one run.

    python -m bench.run [--events 100000] [--rate 5000] [--model-dir model/export]
    BENCH_QUICK=1 python -m bench.run      # fewer events, one repeat, 20 s of latency

The machine may be shared, so every figure is measured ``--repeats`` times and reported as
its minimum and median (best for rates: the maximum), with the load average beside it:

* e2e: the streaming job (``metafix stream`` on Prism) over a pre-filled topic, Kafka to
  Kafka (corrected, review, audit, dead letters); events/s from its first output to its last,
  and the CPU per event over the same window, in all and by thread group (Python's threads,
  TensorFlow's, librdkafka's, Prism's).
* baseline: the plain loop without Beam, with the same Kafka client doing the same work
  (consume, decode, score, correct, route, encode, produce to the same four topics).
* latency: the job at a fixed input rate; output record time minus input record time
  (both Kafka timestamps), p50/p99 over the steady state (the first 10 s left out).
* replay: ``metafix replay`` over an Avro event log (records/s from launch to exit, its
  profile pass included; and within its pipeline), and peak RSS of one replay of
  ``--replay-events`` (1M by default) events, in as many worker processes as the replay
  chooses (``--replay-workers`` to fix it). Then the steps of the replay of ``--events`` events, each
  alone in this process, as CPU µs per record (``bench_replay_stages``), the model's load in
  a fresh process, and the rest of the replay's CPU per record (Beam, the runner, start-up).
* stages: CPU µs per event of each stage alone, in this process, at the job's batch
  sizes; "Beam and runner" is the job's steady-state CPU per event (job and Prism
  processes, from its first output to its last) minus their sum.

Prints a table and writes ``bench/results/latest.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import psutil

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
from streaming.composites import (
    CatalogBatch,
    CorrectBatchFn,
    CorrectionSettings,
    DecodedBatch,
    DecodeFn,
    EncodeFn,
    RouteFn,
)
from streaming.kafka_clients import (
    CLIENT_NAMES,
    DEFAULT_CLIENT,
    ConsumerSettings,
    KafkaRecord,
    kafka_client,
)
from streaming.kafkaio import DEFAULT_MAX_RECORDS_PER_POLL, ProducerConfig
from streaming.options import REPO_ROOT, resolve_model_dir
from transforms import codec

RESULTS = REPO_ROOT / "bench" / "results"
OUTPUTS = ("out", "review", "audit", "dead")
# Left out of the latency figures: the job's warm-up after the rate starts.
LATENCY_WARMUP_S = 10.0


def load() -> float:
    return os.getloadavg()[0]


def summary(values: list[float], best: Callable = max) -> dict[str, Any]:
    """min, median, best and every value of a repeated figure."""
    return {"min": min(values), "median": statistics.median(values), "max": max(values), "best": best(values),
            "values": values}


class TreeSampler:
    """Peak RSS and CPU seconds of a process and its children, sampled in a thread.

    A child that ends between two samples is missed, and one that ends after a sample loses
    what it used since: a tree whose processes come and go is measured by its rusage
    instead (``bench_replay``).
    """

    def __init__(self, pid: int, interval_s: float = 0.25, by_thread: bool = False):
        self._root = psutil.Process(pid)
        self._interval = interval_s
        self._by_thread = by_thread
        self.peak_rss = 0
        self._cpu: dict[int, float] = {}
        # (wall time, CPU seconds of the tree so far), one per sample.
        self.history: list[tuple[float, float]] = []
        # With by_thread: each thread's CPU seconds and group, kept after it ends, and
        # (wall time, CPU seconds so far by group), one per sample.
        self._thread_cpu: dict[int, tuple[str, float]] = {}
        self.group_history: list[tuple[float, dict[str, float]]] = []
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
                    # Not children_user/system: a child sampled alive is counted already, and
                    # its parent's figures take it in again once it has ended.
                    self._cpu[p.pid] = t.user + t.system
                except psutil.NoSuchProcess:
                    pass
            self.peak_rss = max(self.peak_rss, rss)
            now = time.time()
            self.history.append((now, sum(self._cpu.values())))
            if self._by_thread:
                for p in procs:
                    self._thread_cpu.update(_threads_cpu(p))
                groups: dict[str, float] = {}
                for group, cpu in self._thread_cpu.values():
                    groups[group] = groups.get(group, 0.0) + cpu
                self.group_history.append((now, groups))
            self._stop.wait(self._interval)

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds the tree used between two wall times (to the nearest samples)."""
        inside = [cpu for t, cpu in self.history if start <= t <= end]
        return inside[-1] - inside[0] if len(inside) > 1 else float("nan")

    def cpu_between_by_group(self, start: float, end: float) -> dict[str, float]:
        """CPU seconds each thread group (``thread_group``) used between two wall times."""
        inside = [groups for t, groups in self.group_history if start <= t <= end]
        if len(inside) < 2:
            return {}
        return {group: cpu - inside[0].get(group, 0.0) for group, cpu in inside[-1].items()}

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return sum(self._cpu.values())


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def thread_group(process_name: str, thread_name: str) -> str:
    """The group a thread's CPU is reported under: its process and its name without the
    numbers that tell a pool's threads apart. A thread that sets no name of its own
    (Python's, and Eigen's pool workers) has its process's name.

    >>> thread_group("python", "rdk:broker1"), thread_group("python", "tf_Compute")
    ('python/rdk:broker', 'python/tf_Compute')
    """
    return f"{process_name}/{thread_name.rstrip('0123456789-_/') or thread_name}"


def _threads_cpu(process: psutil.Process) -> dict[int, tuple[str, float]]:
    """Each live thread's (group, CPU seconds) from /proc; empty once the process has gone."""
    found: dict[int, tuple[str, float]] = {}
    try:
        name = process.name()
        tids = os.listdir(f"/proc/{process.pid}/task")
    except (OSError, psutil.Error):
        return found
    for tid in tids:
        try:
            with open(f"/proc/{process.pid}/task/{tid}/comm") as f:
                thread_name = f.read().strip()
            with open(f"/proc/{process.pid}/task/{tid}/stat") as f:
                # Fields 14 and 15 (utime, stime), counted after the parenthesised name.
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended meanwhile
        found[int(tid)] = (thread_group(name, thread_name), (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS)
    return found


def _topics(bootstrap: str) -> dict[str, str]:
    topics = {name: unique_topic_name(f"bench-{name}") for name in ("in", *OUTPUTS)}
    for topic in topics.values():
        create_topic(bootstrap, topic, partitions=3)
    return topics


def _job(bootstrap: str, topics: dict[str, str], model_dir: str, metrics_file: str, client: str) -> StreamJob:
    return StreamJob(bootstrap, topics, model_dir, Path(metrics_file).with_suffix(".log"),
                     "--start-from", "earliest", "--metrics-file", metrics_file, "--kafka-client", client,
                     group_id=f"bench-{topics['in']}").start()


def _drain(bootstrap: str, topics: list[str], expected: int, timeout_s: float) -> list[tuple[str, int, bytes, float]]:
    """(topic, timestamp_ms, value, arrival time) of output records until ``expected`` arrived."""
    client = kafka_client(DEFAULT_CLIENT)
    settings = ConsumerSettings(bootstrap, None, 20_000)
    metadata = client.metadata(settings)
    consumers = [client.partition_consumer(settings, t, p, 0) for t in topics for p in metadata.partitions(t)]
    metadata.close()
    seen: list[tuple[str, int, bytes, float]] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            for consumer in consumers:
                now = time.time()
                seen += [(r.topic, r.timestamp_ms, r.value, now) for r in consumer.poll(20_000, 50)]
    finally:
        for consumer in consumers:
            consumer.close()
    return seen


def bench_e2e(bootstrap: str, model_dir: str, messages: list, client: str) -> dict:
    n = len(messages)
    topics = _topics(bootstrap)
    produce(bootstrap, topics["in"], iter(messages))
    metrics_file = tempfile.mktemp(suffix=".json")
    load_before = load()
    job = _job(bootstrap, topics, model_dir, metrics_file, client)
    sampler = TreeSampler(job.pid, by_thread=True)
    try:
        seen = _drain(bootstrap, [topics["out"], topics["dead"]], n, timeout_s=1800)
    finally:
        cpu = sampler.stop()
        # SIGTERM: the job cancels the pipeline and writes its metrics file while the runner is up.
        job.stop(timeout_s=90)
    arrivals = sorted(t for *_, t in seen)
    window = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    metrics = json.loads(Path(metrics_file).read_text()) if Path(metrics_file).exists() else {}
    # The steady state: from the first output to the last (start-up and model loading left out).
    steady_cpu = sampler.cpu_between(arrivals[0], arrivals[-1])
    by_thread = sampler.cpu_between_by_group(arrivals[0], arrivals[-1])
    return {
        "events": n,
        "out": len(seen),
        "events_per_s": len(seen) / window,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "cpu_us_per_event": steady_cpu / len(seen) * 1e6,
        "cpu_us_per_event_with_startup": cpu / n * 1e6,
        # Which threads the steady state's CPU went to: Python's and the model's, librdkafka's.
        "cpu_us_per_event_by_thread": {group: cpu_s / len(seen) * 1e6 for group, cpu_s in
                                       sorted(by_thread.items(), key=lambda kv: -kv[1]) if cpu_s > 0},
        "job_mean_batch_size": metrics.get("inference_batch_size", {}).get("mean"),
        "load": [load_before, load()],
    }


def bench_latency(bootstrap: str, model_dir: str, rate: float, seconds: float, client: str) -> dict:
    topics = _topics(bootstrap)
    n = int(rate * seconds)
    metrics_file = tempfile.mktemp(suffix=".json")
    job = _job(bootstrap, topics, model_dir, metrics_file, client)
    sampler = TreeSampler(job.pid)
    load_before = load()
    try:
        # Let the job start and settle before the clock matters.
        produce(bootstrap, topics["in"], catalog_messages(50, seed=1, bad_every=0))
        _drain(bootstrap, [topics["out"]], 50, timeout_s=300)
        messages = list(catalog_messages(n, seed=22, bad_every=0, id_prefix="lat"))
        measured: set[str] = set()
        # The driver's own producer is librdkafka, so that it takes little of the job's CPU.
        producer = kafka_client("confluent").producer(ProducerConfig(bootstrap, linger_ms=5).settings())
        result: list = []
        reader = threading.Thread(target=lambda: result.extend(
            _drain(bootstrap, [topics["out"]], n + 50, timeout_s=seconds + 300)), daemon=True)
        reader.start()
        start = time.monotonic()
        for i, m in enumerate(messages):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if i / rate >= LATENCY_WARMUP_S:
                measured.add(m.event_id)
            producer.send(topics["in"], m.key, m.value)
        producer.flush()
        achieved = n / (time.monotonic() - start)
        reader.join()
    finally:
        sampler.stop()
        job.stop(timeout_s=90)
    # The input record's Kafka timestamp is its send time; the output's, its write time.
    input_time = {}
    for _, ts, value, _ in result:
        _, record = codec.confluent_decode(value)
        if record["event_id"] in measured:
            input_time[record["event_id"]] = (ts, record["input"]["timestamp_ms"])
    lat = np.array([out - inp for out, inp in input_time.values()], dtype=float)
    return {
        "rate_target": rate,
        "rate_achieved": achieved,
        "steady_state_s": seconds - LATENCY_WARMUP_S,
        "measured": len(lat),
        "latency_p50_ms": float(np.percentile(lat, 50)) if len(lat) else None,
        "latency_p99_ms": float(np.percentile(lat, 99)) if len(lat) else None,
        "latency_max_ms": float(lat.max()) if len(lat) else None,
        "peak_rss_mb": sampler.peak_rss / 2**20,
        "load": [load_before, load()],
    }


class PlainLoop:
    """The job's work without Beam: the same DoFn logic called directly, the same client."""

    def __init__(self, model_dir: str, batch_size: int = 512):
        self.decode = DecodeFn(codec.DEFAULT_MAX_PAYLOAD_BYTES)
        self.correct = CorrectBatchFn(CorrectionSettings(model_dir, batch_size), _SharedOnce(), _SharedOnce())
        self.route = RouteFn()
        self.encode = EncodeFn()
        for fn in (self.decode, self.correct, self.encode):
            fn.setup()
        # The job picks up the catalog profile at each bundle's start; the loop keeps the first.
        self.correct.start_bundle()

    def outputs(self, batch: list[KafkaRecord]) -> Any:
        [decoded] = self.decode.process(batch)
        [corrected] = self.correct.process(decoded)
        [routed] = self.route.process(corrected)
        [encoded] = self.encode.process(routed)
        return encoded


class _SharedOnce:
    """Stands in for ``apache_beam.utils.shared.Shared`` outside a pipeline."""

    def acquire(self, constructor: Callable, tag: str) -> Any:  # same signature as Shared
        return constructor()


def bench_baseline(bootstrap: str, loop: PlainLoop, messages: list, client_name: str) -> dict:
    n = len(messages)
    topics = _topics(bootstrap)
    produce(bootstrap, topics["in"], iter(messages))
    client = kafka_client(client_name)
    settings = ConsumerSettings(bootstrap, None, DEFAULT_MAX_RECORDS_PER_POLL)
    consumers = [client.partition_consumer(settings, topics["in"], p, 0) for p in range(3)]
    producer = client.producer(ProducerConfig(bootstrap, client=client_name).settings())
    load_before = load()
    done, started = 0, None
    cpu_started = time.process_time()
    while done < n:
        for consumer in consumers:
            batch = consumer.poll(DEFAULT_MAX_RECORDS_PER_POLL, 100)
            if not batch:
                continue
            started = started or time.monotonic()
            encoded = loop.outputs(batch)
            handles = [producer.send(topics[name], key, value)
                       for name, pairs in zip(OUTPUTS, (encoded.corrected, encoded.review, encoded.audit,
                                                        encoded.dead_letters), strict=True)
                       for key, value in pairs]
            producer.flush()
            for handle in handles:
                producer.result(handle)
            done += len(batch)
    elapsed = time.monotonic() - started
    cpu = time.process_time() - cpu_started
    for consumer in consumers:
        consumer.close()
    producer.close()
    return {"events_per_s": n / elapsed, "cpu_us_per_event": cpu / n * 1e6, "load": [load_before, load()]}


def bench_stages(bootstrap: str, loop: PlainLoop, messages: list, client_name: str) -> dict[str, float]:
    """CPU µs per event of each stage alone (process CPU time, TF and client threads included)."""
    records = [KafkaRecord("in", 0, i, 0, m.key, m.value) for i, m in enumerate(messages)]
    step = DEFAULT_MAX_RECORDS_PER_POLL
    batches = [records[i:i + step] for i in range(0, len(records), step)]
    n = len(records)

    def cpu_us(fn: Callable[[], Any]) -> float:
        started = time.process_time()
        fn()
        return (time.process_time() - started) / n * 1e6

    stages: dict[str, float] = {}
    decoded: list[DecodedBatch] = []
    stages["decode"] = cpu_us(lambda: decoded.extend(x for b in batches for x in loop.decode.process(b)))
    predictor = loop.correct._predictor
    tracks = [[e["track"] for _, e in d.events] for d in decoded]
    stages["model"] = cpu_us(lambda: [predictor.predict(t[i:i + 512]) for t in tracks for i in range(0, len(t), 512)])
    corrected: list[CatalogBatch] = []
    stages["score, policy and correctors"] = cpu_us(
        lambda: corrected.extend(x for d in decoded for x in loop.correct.process(d)))
    stages["policy and correctors"] = stages["score, policy and correctors"] - stages["model"]
    del stages["score, policy and correctors"]
    routed: list[CatalogBatch] = []
    stages["route (review, audit)"] = cpu_us(lambda: routed.extend(x for c in corrected for x in loop.route.process(c)))
    encoded: list = []
    stages["avro encode"] = cpu_us(lambda: encoded.extend(x for r in routed for x in loop.encode.process(r)))
    messages_out = [(k, v) for e in encoded for pairs in (e.corrected, e.review, e.audit) for k, v in pairs]
    topic = unique_topic_name("bench-stage")
    create_topic(bootstrap, topic, partitions=3)
    client = kafka_client(client_name)
    producer = client.producer(ProducerConfig(bootstrap, client=client_name).settings())

    def produce_all() -> None:
        for k, v in messages_out:
            producer.send(topic, k, v)
        producer.flush()

    stages[f"produce ({len(messages_out) / n:.2f} messages per event)"] = cpu_us(produce_all)
    producer.close()
    consumers = [client.partition_consumer(ConsumerSettings(bootstrap, None, 2000), topic, p, 0) for p in range(3)]

    def consume_all() -> None:
        got = 0
        while got < len(messages_out):
            got += sum(len(c.poll(2000, 100)) for c in consumers)

    # Per produced message, scaled to one input message per event.
    stages["consume"] = cpu_us(consume_all) * n / len(messages_out)
    for c in consumers:
        c.close()
    return stages


def bench_model_cpu(loop: PlainLoop, messages: list, batch_size: int = 512) -> dict:
    tracks = [codec.decode_event(m.value)["track"] for m in messages[:batch_size]]
    predictor = loop.correct._predictor
    predictor.predict(tracks)
    rounds = max(1, 20_000 // batch_size)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(rounds):
        predictor.predict(tracks)
    n = rounds * len(tracks)
    return {"cpu_us_per_record": (time.process_time() - cpu) / n * 1e6,
            "wall_us_per_record": (time.perf_counter() - wall) / n * 1e6, "batch_size": len(tracks)}


def write_event_log(path: Path, n: int) -> None:
    with open(path, "wb") as f:
        fastavro.writer(f, CATALOG_UPDATE_EVENT,
                        (codec.decode_event(m.value) for m in catalog_messages(n, seed=23, bad_every=0)))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


REPLAY_LINE = re.compile(r"replay: ([\d,]+) records in ([\d.]+) s \(([\d,]+) records/s, (\d+) worker process")


def bench_replay(model_dir: str, log: Path, workers: int) -> dict:
    """``metafix replay`` of ``log`` (its profile pass included), wall time from launch to exit.

    ``workers`` 0 leaves the number of worker processes to the replay.
    """
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.avro"
        args = [sys.executable, "-m", "streaming.cli", "replay", "--input", str(log), "--output", str(out),
                "--format", "avro", "--model-dir", model_dir]
        if workers:
            args += [f"--direct_num_workers={workers}", "--direct_running_mode=multi_processing"]
        load_before = load()
        started = time.monotonic()
        # The replay's worker processes are reaped by their parents, so this process's
        # rusage of its ended children takes in the whole tree once the replay has exited.
        reaped_before = _children_cpu_s()
        process = subprocess.Popen(args, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        sampler = TreeSampler(process.pid)
        said, err = process.communicate()
        sampler.stop()
        cpu = _children_cpu_s() - reaped_before
        elapsed = time.monotonic() - started
        if process.returncode:
            raise RuntimeError(f"replay failed: {err.decode()[-2000:]}")
        with open(out, "rb") as f:
            count = sum(block.num_records for block in fastavro.block_reader(f))
    [(_, pipeline_s, _, used)] = REPLAY_LINE.findall(said.decode())
    return {"records": count, "records_per_s": count / elapsed, "wall_s": elapsed,
            "pipeline_records_per_s": count / float(pipeline_s), "cpu_us_per_record": cpu / count * 1e6,
            "peak_rss_mb": sampler.peak_rss / 2**20, "workers": int(used), "load": [load_before, load()]}


# What a replay worker pays once, timed in a fresh process as a worker is.
MODEL_LOAD_CODE = ("import time; started = time.process_time(); from model.serving import Predictor; "
                   "Predictor.load({!r}, threads=1); print(time.process_time() - started)")
MODEL_LOAD_STEP = "model import and load, s per process"


def bench_replay_stages(model_dir: str, log: Path) -> dict[str, float]:
    """CPU µs per record of each step of a replay of ``log``, each step timed alone, in this
    process and without Beam (process CPU time, the model's thread included).

    The steps are the replay's own DoFns and functions, in its order: the profile pass reads
    every range and profiles it, then the correcting pass reads every range again, decodes,
    scores and corrects, routes and writes it; the parts are concatenated at the end.
    ``MODEL_LOAD_STEP`` is in seconds: each of a replay's worker processes pays it once.
    """
    from model.profilestore import save_profile
    from streaming.eventlog import _ReadRangeFn, avro_block_ranges
    from streaming.profile_job import EventTrackFn, MergeProfilesFn
    from streaming.replay import _WritePartsFn, concatenate_parts

    cpu: dict[str, float] = {}

    def timed(step: str, fn: Callable[..., Any], *args: Any) -> Any:
        # The DoFns' process methods are generators: their work is done in fn (list) here.
        started = time.process_time()
        out = fn(*args)
        cpu[step] = cpu.get(step, 0.0) + time.process_time() - started
        return out

    ranges = timed("list ranges (block headers)", list, avro_block_ranges(str(log), 0))
    reader, tracks, merge = _ReadRangeFn(), EventTrackFn(), MergeProfilesFn()
    reader.setup()
    tracks.setup()
    profile = merge.create_accumulator()
    n = 0
    for file_range in ranges:
        [batch] = timed("read ranges (fastavro), profile pass", list, reader.process(file_range))
        n += len(batch.records)
        profile = timed("profile (tracks into the builder)",
                        lambda into, b: merge.add_input(into, next(tracks.process(b))), profile, batch)
    with tempfile.TemporaryDirectory() as tmp:
        profile_dir = f"{tmp}/profile"
        timed("profile (tracks into the builder)", lambda: save_profile(merge.extract_output(profile), profile_dir))
        decode = DecodeFn(codec.DEFAULT_MAX_PAYLOAD_BYTES)
        correct = CorrectBatchFn(CorrectionSettings(model_dir, profile_dir=profile_dir), _SharedOnce(), _SharedOnce())
        route, write = RouteFn(), _WritePartsFn(f"{tmp}/parts", "avro")
        decode.setup()
        correct.setup()
        correct.start_bundle()
        parts: list[str] = []
        for file_range in ranges:
            [batch] = timed("read ranges (fastavro), correcting pass", list, reader.process(file_range))
            [decoded] = timed("decode (validate rows)", list, decode.process(batch))
            [corrected] = timed("score, policy and correctors", list, correct.process(decoded))
            [routed] = timed("route (review, audit)", list, route.process(corrected))
            parts += [path for kind, path in timed("write parts (Avro encode, deflate)", list, write.process(routed))
                      if kind == "corrected"]
        timed("concatenate parts", lambda: concatenate_parts(parts, f"{tmp}/out.avro", "avro"))
        correct.teardown()
        with open(f"{tmp}/out.avro", "rb") as f:
            written = sum(block.num_records for block in fastavro.block_reader(f))
    if written != n:
        raise RuntimeError(f"the replay's steps wrote {written} of {n} records")
    stages = {step: seconds / n * 1e6 for step, seconds in cpu.items()}
    loaded = subprocess.run([sys.executable, "-c", MODEL_LOAD_CODE.format(model_dir)], cwd=REPO_ROOT,
                            capture_output=True, text=True, check=True)
    stages[MODEL_LOAD_STEP] = float(loaded.stdout.split()[-1])
    return stages


def _row(name: str, value: Any, unit: str = "", digits: int = 1) -> str:
    if isinstance(value, dict):
        return f"  {name:<44} {value['min']:>12,.{digits}f} {value['median']:>12,.{digits}f}  {unit}"
    if isinstance(value, int | float):
        return f"  {name:<44} {value:>12,.{digits}f} {'':>12}  {unit}"
    return f"  {name:<44} {'-':>12}"


def main(argv: Sequence[str] | None = None) -> int:
    quick = os.environ.get("BENCH_QUICK") == "1"
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    # The e2e rate runs from the first output to the last, so the first batches' work falls
    # outside the window: with 5,000-record polls, 100k events read 8.6k events/s where 300k
    # read 7.5k. 300k keeps that error to a few per cent.
    parser.add_argument("--events", type=int, default=30_000 if quick else 300_000)
    parser.add_argument("--repeats", type=int, default=1 if quick else 3)
    parser.add_argument("--rate", type=float, default=5000.0)
    parser.add_argument("--latency-seconds", type=float, default=30.0 if quick else 70.0,
                        help=f"input at --rate for this long; the first {LATENCY_WARMUP_S:.0f} s are not measured")
    parser.add_argument("--replay-events", type=int, default=100_000 if quick else 1_000_000)
    parser.add_argument("--replay-workers", type=int, default=0,
                        help="worker processes of the replay (default: the replay's own choice)")
    parser.add_argument("--kafka-client", choices=CLIENT_NAMES, default=DEFAULT_CLIENT)
    parser.add_argument("--port", type=int, default=19700)
    parser.add_argument("--model-dir", default=None)
    parser.add_argument("--only", nargs="*", default=None, help="subset of: e2e baseline stages latency replay")
    args = parser.parse_args(argv)
    model_dir = resolve_model_dir(args.model_dir)
    wanted = set(args.only or ["e2e", "baseline", "stages", "latency", "replay"])
    client = args.kafka_client

    broker = LocalKafka(port=args.port)
    started_broker = not (port_is_open(args.port) and serves_kafka(broker.bootstrap))
    if started_broker:
        broker.start()
    results: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "memory_gb": round(psutil.virtual_memory().total / 2**30, 1)},
        "model_dir": model_dir, "events": args.events, "repeats": args.repeats, "quick": quick,
        "kafka_client": client, "load_at_start": load(),
    }
    messages = list(catalog_messages(args.events, seed=21, bad_every=0))
    try:
        if "e2e" in wanted:
            results["e2e"] = [bench_e2e(broker.bootstrap, model_dir, messages, client) for _ in range(args.repeats)]
            print(f"e2e: {results['e2e']}", flush=True)
        if wanted & {"baseline", "stages"}:
            loop = PlainLoop(model_dir)
        if "baseline" in wanted:
            results["baseline"] = [bench_baseline(broker.bootstrap, loop, messages, client)
                                   for _ in range(args.repeats)]
            print(f"baseline: {results['baseline']}", flush=True)
        if "stages" in wanted:
            results["model"] = [bench_model_cpu(loop, messages) for _ in range(args.repeats)]
            results["stages"] = [bench_stages(broker.bootstrap, loop, messages[:20_000], client)
                                 for _ in range(args.repeats)]
            print(f"stages: {results['stages']}", flush=True)
        if "latency" in wanted:
            results["latency"] = [bench_latency(broker.bootstrap, model_dir, args.rate, args.latency_seconds, client)
                                  for _ in range(max(1, args.repeats - 1))]
            print(f"latency: {results['latency']}", flush=True)
        if "replay" in wanted:
            with tempfile.TemporaryDirectory() as tmp:
                small, large = Path(tmp) / "small.avro", Path(tmp) / "large.avro"
                write_event_log(small, args.events)
                results["replay"] = [bench_replay(model_dir, small, args.replay_workers)
                                     for _ in range(args.repeats)]
                results["replay_stages"] = [bench_replay_stages(model_dir, small) for _ in range(args.repeats)]
                write_event_log(large, args.replay_events)
                results["replay_large"] = bench_replay(model_dir, large, args.replay_workers)
            print(f"replay: {results['replay']} {results['replay_large']}", flush=True)
    finally:
        if started_broker:
            broker.stop()

    def figure(section: str, key: str, best: Callable = max) -> dict | None:
        runs = results.get(section)
        return summary([r[key] for r in runs], best) if runs else None

    e2e, base = figure("e2e", "events_per_s"), figure("baseline", "events_per_s")
    p50, p99 = figure("latency", "latency_p50_ms", min), figure("latency", "latency_p99_ms", min)
    replay = figure("replay", "records_per_s")
    stages = {name: summary([run[name] for run in results["stages"]], min) for name in results.get("stages", [{}])[0]}
    e2e_cpu = figure("e2e", "cpu_us_per_event", min)
    if stages and e2e_cpu:
        stages["Beam and runner (e2e CPU minus the stages)"] = summary(
            [e2e_cpu["min"] - sum(s["min"] for s in stages.values())], min)
    replay_stages = {name: summary([run[name] for run in results["replay_stages"]], min)
                     for name in results.get("replay_stages", [{}])[0]}
    replay_cpu = figure("replay", "cpu_us_per_record", min)
    if replay_stages and replay_cpu:
        # Each worker process loads the model once; per record, over the whole replay.
        workers, records = results["replay"][0]["workers"], results["replay"][0]["records"]
        load_us = workers * replay_stages[MODEL_LOAD_STEP]["min"] / records * 1e6
        replay_stages["model loads, per record"] = summary([load_us], min)
        per_record = sum(s["min"] for name, s in replay_stages.items() if name != MODEL_LOAD_STEP)
        replay_stages["rest: Beam, runner, imports (the difference)"] = summary(
            [replay_cpu["min"] - per_record], min)
    e2e_runs = results.get("e2e", [])
    by_thread = {group: summary([run["cpu_us_per_event_by_thread"].get(group, 0.0) for run in e2e_runs], min)
                 for group in (e2e_runs[0]["cpu_us_per_event_by_thread"] if e2e_runs else {})}
    rss = [r["peak_rss_mb"] for section in ("e2e", "latency") for r in results.get(section, [])]
    results["summary"] = {"e2e_events_per_s": e2e, "baseline_events_per_s": base, "latency_p50_ms": p50,
                          "latency_p99_ms": p99, "replay_records_per_s": replay, "e2e_cpu_us_per_event": e2e_cpu,
                          "model_cpu_us_per_record": figure("model", "cpu_us_per_record", min),
                          "stages_cpu_us_per_event": stages, "e2e_cpu_us_per_event_by_thread": by_thread,
                          "replay_cpu_us_per_record": replay_cpu, "replay_stages_cpu_us_per_record": replay_stages}
    # The top-level keys stay those of earlier versions, so runs compare across versions:
    # rates are the best repeat (least disturbed by the machine's other load), latencies the least.
    results.update({
        "e2e_events_per_s": e2e["best"] if e2e else None,
        "baseline_events_per_s": base["best"] if base else None,
        "ratio_to_baseline": e2e["best"] / base["best"] if e2e and base else None,
        "latency_p50_ms": p50["best"] if p50 else None,
        "latency_p99_ms": p99["best"] if p99 else None,
        "peak_rss_mb": max(rss) if rss else None,
        "replay_records_per_s": replay["best"] if replay else None,
        "replay_1m_peak_rss_mb": (results.get("replay_large") or {}).get("peak_rss_mb"),
    })
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "latest.json").write_text(json.dumps(results, indent=2) + "\n")

    print(f"\nmetafix benchmark ({os.cpu_count()} cores, client {client}, {args.repeats} repeat(s), "
          f"load {results['load_at_start']:.2f} at start, {load():.2f} at end)")
    print(f"  {'':<44} {'min':>12} {'median':>12}")
    print(_row("e2e events/s", e2e))
    print(_row("plain loop events/s (same client, no Beam)", base))
    if e2e and base:
        print(_row("ratio e2e / plain loop (best of each)", results["ratio_to_baseline"], digits=2))
    print(_row(f"latency p50 ms at {args.rate:,.0f}/s", p50))
    print(_row(f"latency p99 ms at {args.rate:,.0f}/s", p99))
    print(_row("replay records/s", replay))
    large = results.get("replay_large")
    if large:
        print(_row(f"replay of {large['records']:,}: records/s, {large['workers']} processes", large["records_per_s"]))
        print(_row(f"replay of {large['records']:,}: records/s in pipeline", large["pipeline_records_per_s"]))
        print(_row(f"replay of {large['records']:,} events: peak RSS MB", large["peak_rss_mb"]))
    print(_row("model CPU µs per record", results["summary"]["model_cpu_us_per_record"]))
    print(_row("peak RSS MB (stream)", results["peak_rss_mb"]))
    print(_row("e2e CPU µs per event (job and runner)", e2e_cpu))
    if by_thread:
        print("  e2e CPU µs per event, by thread (process/thread name):")
        for group, value in by_thread.items():
            if value["min"] >= 0.5:
                print(_row("  " + group, value))
    if stages:
        print("  CPU µs per event, by stage:")
        for name, value in stages.items():
            print(_row("  " + name, value))
    if replay_stages:
        print(_row(f"replay CPU µs per record ({results['replay'][0]['records']:,} records)", replay_cpu))
        print("  replay CPU µs per record, by step (each alone, no Beam):")
        for name, value in replay_stages.items():
            print(_row("  " + name, value))
    print(f"\nwrote {RESULTS / 'latest.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
