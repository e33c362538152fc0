"""What a person running ``metafix stream`` in a terminal sees, and what Prometheus scrapes.

One job on the real broker and Prism runs in a pseudo-terminal, as in a shell: the test
produces events, scrapes ``--metrics-port`` while the job runs and compares the live metrics
with what was produced and what came out, then types the terminal's interrupt character
(Ctrl-C). The kernel sends SIGINT to the terminal's whole foreground process group, exactly
as for a key press; the job must end with its summary, no traceback, exit code 0 and no
Prism left behind.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from harness.eventgen import catalog_messages, produce
from harness.jobs import StreamJob, http_get, read_until
from harness.local_kafka import free_port
from streaming.options import REPO_ROOT

pytestmark = [pytest.mark.kafka, pytest.mark.prism, pytest.mark.slow]

# Makes the pseudo-terminal the controlling terminal of the new session the job leads, as a
# shell does for the command it runs in the foreground; then runs the job in place.
_WITH_CONTROLLING_TERMINAL = (
    "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); os.execv(sys.argv[1], sys.argv[1:])"
)


class Terminal:
    """A command in a pseudo-terminal of its own, in the terminal's foreground process group."""

    def __init__(self, command: list[str]) -> None:
        self._master, slave = os.openpty()
        self.process = subprocess.Popen([sys.executable, "-c", _WITH_CONTROLLING_TERMINAL, *command],
                                        cwd=REPO_ROOT, stdin=slave, stdout=slave, stderr=slave,
                                        start_new_session=True)
        os.close(slave)
        self._chunks: list[bytes] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                chunk = os.read(self._master, 65536)
            except OSError:  # EIO: the last process holding the terminal has closed it
                return
            if not chunk:
                return
            self._chunks.append(chunk)

    def text(self) -> str:
        return b"".join(self._chunks).decode(errors="replace").replace("\r\n", "\n")

    def press_interrupt(self) -> None:
        """Types the terminal's interrupt character (Ctrl-C)."""
        intr = termios.tcgetattr(self._master)[6][termios.VINTR]
        os.write(self._master, intr)

    def wait(self, timeout_s: float) -> int:
        code = self.process.wait(timeout=timeout_s)
        self._reader.join(timeout=10)
        return code

    def close(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, 9)
            self.process.wait(timeout=30)
        os.close(self._master)


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, of the metafix metrics in a scrape."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("metafix_")
    }


def _by_label(samples: dict, name: str, *labels: str) -> Counter:
    counts: Counter = Counter()
    for (sample, pairs), value in samples.items():
        if sample == name and value:
            d = dict(pairs)
            counts[tuple(d[label] for label in labels)] += int(value)
    return counts


def _prism_of(terminal: Terminal) -> psutil.Process:
    """The Prism runner the job started (a child of the job, in a process group of its own)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and terminal.process.poll() is None:
        for child in psutil.Process(terminal.process.pid).children(recursive=True):
            try:
                if "prism" in os.path.basename(child.exe()):
                    return child
            except psutil.Error:
                continue
        time.sleep(0.5)
    raise AssertionError(f"the job started no Prism:\n{terminal.text()}")


def test_live_metrics_and_ctrl_c_in_a_terminal(kafka_bootstrap, topic_factory, tiny_model_dir, tmp_path: Path):
    topics = {"in": topic_factory("obs-in", partitions=3),
              **{name: topic_factory(f"obs-{name}", partitions=1) for name in ("out", "review", "audit", "dead")}}
    port = free_port()
    # The command line a person would type; in a terminal the full log goes to a file by default.
    command = StreamJob(kafka_bootstrap, topics, tiny_model_dir, tmp_path / "unused.log",
                        "--start-from", "earliest", "--metrics-port", str(port)).command
    terminal = Terminal(command)
    try:
        prism = _prism_of(terminal)

        sent = produce(kafka_bootstrap, topics["in"], catalog_messages(240, seed=5, bad_every=20))
        bad = Counter(m.bad_kind for m, _, _ in sent if m.bad_kind)
        assert bad, "the stream must hold undecodable events"
        out_t, dead_t, review_t, audit_t = topics["out"], topics["dead"], topics["review"], topics["audit"]

        def done(s: dict) -> bool:
            outs = [r for _, r in s[out_t]]
            return (len(outs) + len(s[dead_t]) >= len(sent)
                    and len(s[audit_t]) >= sum(len(r["corrections"]) for r in outs)
                    and len(s[review_t]) >= sum(1 for r in outs if r["review"]))

        seen = read_until(kafka_bootstrap, [out_t, dead_t, review_t, audit_t], done, 300)
        outputs = [r for _, r in seen[out_t]]
        assert len(outputs) + len(seen[dead_t]) == len(sent)

        # The reader polls on after the last record; its lag settles at 0 on every partition.
        deadline = time.monotonic() + 60
        while True:
            status, body = http_get(f"http://127.0.0.1:{port}/metrics")
            samples = _samples(body)
            lag = _by_label(samples, "metafix_consumer_lag", "topic", "partition")
            partitions = {k for (name, k) in samples if name == "metafix_consumer_lag"}
            if (status == 200 and len(partitions) == 3 and not lag) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert terminal.process.poll() is None, terminal.text()
        assert status == 200
        assert len(partitions) == 3 and not lag, (partitions, lag)

        assert samples[("metafix_records_in_total", ())] == len(sent) - sum(bad.values())
        assert samples[("metafix_records_out_total", ())] == len(outputs)
        assert _by_label(samples, "metafix_dead_letters_total", "reason") == Counter(
            {(kind,): n for kind, n in bad.items()})
        assert _by_label(samples, "metafix_corrections_total", "field", "error_class") == Counter(
            (a["field"], a["error_class"]) for _, a in seen[audit_t])
        assert _by_label(samples, "metafix_flags_total", "field", "error_class") == Counter(
            (r["field"], r["error_class"]) for o in outputs for r in o["review"])
        # Every decoded record goes through the model once.
        assert samples[("metafix_inference_batch_size_sum", ())] == len(sent) - sum(bad.values())
        assert samples[("metafix_inference_latency_seconds_count", ())] == samples[
            ("metafix_inference_batch_size_count", ())] > 0

        status, body = http_get(f"http://127.0.0.1:{port}/healthz")
        assert (status, body.split(":")[0]) == (200, "ok")

        terminal.press_interrupt()
        code = terminal.wait(timeout_s=120)
    finally:
        terminal.close()
    screen = terminal.text()
    assert code == 0, screen
    assert "Traceback" not in screen, screen
    # The summary's values are Beam's metrics as Prism last reported them, which may trail the
    # live ones at a cancel; the live metrics above are the exact ones.
    summary = screen[screen.index("metafix summary"):]
    assert re.search(r"^  records_in +\d+$", summary, re.MULTILINE), screen
    psutil.wait_procs([prism], timeout=30)
    assert not prism.is_running(), "Prism outlived the job"

    # The terminal shows metafix's own lines; library INFO, TensorFlow's native start-up lines
    # and the runner's report of the bundle the stop interrupted went to the full log only.
    library_info = [line for line in screen.splitlines() if re.match(r"\S+ \S+ INFO (?!metafix|streaming)", line)]
    assert library_info == [], screen
    assert not re.search(r"^\S+ \S+ (ERROR|CRITICAL) ", screen, re.MULTILINE), screen
    assert not re.search(r"^[IWEF]\d{4} ", screen, re.MULTILINE), screen
    log_file = Path(re.search(r"the full log is in (\S+)", screen).group(1))
    try:
        full = log_file.read_text(errors="replace")
    finally:
        log_file.unlink()
    assert re.search(r" INFO (apache_beam|PrismRunner|PrismJobServer)", full)
    assert "metafix stream: running" in full
