"""Running ``metafix stream`` as a child process, for the tests, the demo, the benchmark and
the fault scenarios, and reading what the job left behind.

    job = StreamJob(bootstrap, {"in": ..., "out": ..., "review": ..., "audit": ..., "dead": ...},
                    model_dir, log_path, "--start-from", "earliest").start()
    ...
    job.stop()                      # SIGTERM: the job cancels its pipeline and prints its summary
    print(job.log_text())

The job leads a process session of its own, so that stopping or killing it also ends
what it started (the Prism runner, a Flink job server JVM).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path

import psutil
from kafka import KafkaAdminClient, KafkaConsumer

from streaming.options import REPO_ROOT
from transforms.codec import confluent_decode

JOB_TOPICS = ("in", "out", "review", "audit", "dead")


class JobExited(AssertionError):
    def __init__(self, job: StreamJob):
        super().__init__(f"the job exited with {job.returncode}; log {job.log_path}:\n{job.log_tail()}")


class StreamJob:
    """``metafix stream`` in a child process leading a session of its own.

    The runner (Prism) runs as a child of the job, so a crash is SIGKILL to the whole
    process group. Output goes to ``log_path`` (appended across restarts).
    """

    def __init__(self, bootstrap: str, topics: Mapping[str, str], model_dir: str | Path, log_path: Path,
                 *extra: str, group_id: str | None = None, env: Mapping[str, str] | None = None):
        self.command = [
            sys.executable, "-m", "streaming.cli", "stream",
            "--bootstrap-servers", bootstrap,
            "--input-topic", topics["in"], "--output-topic", topics["out"],
            "--review-topic", topics["review"], "--audit-topic", topics["audit"],
            "--dead-letter-topic", topics["dead"],
            "--group-id", group_id or f"g-{topics['in']}", "--model-dir", str(model_dir), *extra,
        ]
        self.log_path = Path(log_path)
        self.env = None if env is None else dict(env)
        self._process: subprocess.Popen | None = None
        self.starts = 0

    def start(self) -> StreamJob:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("a") as log:
            self._process = subprocess.Popen(self.command, cwd=REPO_ROOT, env=self.env, stdout=log,
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

    def stop(self, timeout_s: float = 60) -> int | None:
        """SIGTERM (the job cancels the pipeline and prints its summary); SIGKILL after ``timeout_s``."""
        if self._process is None:
            return None
        if self._process.poll() is None:
            self._process.send_signal(signal.SIGTERM)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                pass
        # Whatever of the job's session is left (the runner, a hung job) goes too.
        try:
            os.killpg(self._process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self._process.wait(timeout=30)
        return self._process.returncode

    def tree_rss(self) -> int:
        """Resident memory of the job and its children, in bytes."""
        try:
            root = psutil.Process(self.pid)
            processes = [root, *root.children(recursive=True)]
        except psutil.Error:
            return 0
        total = 0
        for p in processes:
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


def committed_offsets(bootstrap: str, group: str) -> dict[int, int]:
    """Partition -> offset the consumer group has committed (partitions without a commit are left out)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    try:
        offsets = admin.list_group_offsets({group: None})[group]
    finally:
        admin.close()
    return {tp.partition: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def read_until(bootstrap: str, topics: list[str], done: Callable[[dict], bool], timeout_s: float,
               job: StreamJob | None = None) -> dict[str, list]:
    """Decoded records per topic, read until ``done(records)`` or the timeout; raises if the job exits."""
    consumer = KafkaConsumer(*topics, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None)
    seen: dict[str, list] = {t: [] for t in topics}
    deadline = time.monotonic() + timeout_s
    try:
        while not done(seen) and time.monotonic() < deadline:
            if job is not None and not job.alive():
                raise JobExited(job)
            for tp, batch in consumer.poll(timeout_ms=500).items():
                seen[tp.topic] += [(m.key, confluent_decode(m.value)[1]) for m in batch]
    finally:
        consumer.close()
    return seen


def http_get(url: str, timeout_s: float = 5) -> tuple[int, str]:
    """(status, body) of a GET; an error status is an answer too (``/healthz``'s 503)."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
