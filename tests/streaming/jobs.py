"""Running ``metafix stream`` as a child process from tests, and reading what it writes."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable

from kafka import KafkaConsumer

from streaming.options import REPO_ROOT
from transforms.codec import confluent_decode


def start_stream_job(bootstrap: str, topics: dict[str, str], model_dir: str, *extra: str) -> subprocess.Popen:
    command = [
        sys.executable, "-m", "streaming.main", "stream",
        "--bootstrap-servers", bootstrap,
        "--input-topic", topics["in"], "--output-topic", topics["out"],
        "--review-topic", topics["review"], "--audit-topic", topics["audit"],
        "--dead-letter-topic", topics["dead"],
        "--group-id", f"g-{topics['in']}", "--model-dir", model_dir, *extra,
    ]
    return subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def stop_job(job: subprocess.Popen) -> str:
    if job.poll() is None:
        job.send_signal(signal.SIGTERM)
    try:
        out, _ = job.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        job.kill()
        out, _ = job.communicate()
    return out


def read_until(bootstrap: str, topics: list[str], done: Callable[[dict], bool], timeout_s: float,
               job: subprocess.Popen | None = None) -> dict[str, list]:
    """Decoded records per topic, read until ``done(records)`` or the timeout."""
    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    seen: dict[str, list] = {t: [] for t in topics}
    deadline = time.monotonic() + timeout_s
    try:
        while not done(seen) and time.monotonic() < deadline:
            if job is not None and job.poll() is not None:
                raise AssertionError(f"the job exited with {job.returncode}:\n{job.stdout.read()}")
            for tp, batch in consumer.poll(timeout_ms=500).items():
                seen[tp.topic] += [(m.key, confluent_decode(m.value)[1]) for m in batch]
    finally:
        consumer.close()
    return seen
