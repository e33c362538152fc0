"""A stopping job's questions to its runner are bounded in time: one that stopped answering
must not keep the job from ending (and writing its summary) before its supervisor kills it."""

from __future__ import annotations

import subprocess
import sys
import threading

import pytest
from apache_beam.runners.runner import PipelineState

from streaming import main
from streaming.deadlines import NoAnswer, call_within
from streaming.metrics_summary import collect
from streaming.options import REPO_ROOT


class Runner:
    """A job result whose runner answers state, cancel and metrics requests, or hangs on them."""

    def __init__(self, state: str = PipelineState.RUNNING, hangs: bool = False) -> None:
        self._state = state
        self._hangs = hangs
        self.released = threading.Event()
        self.cancelled = False

    def _answer(self) -> None:
        if self._hangs:
            # Released when the test ends, so no thread outlives it.
            self.released.wait(30)

    @property
    def state(self) -> str:
        self._answer()
        return self._state

    def cancel(self) -> None:
        self._answer()
        self.cancelled = True

    def metrics(self):
        self._answer()
        raise RuntimeError("this runner reports no metrics")


@pytest.fixture
def hanging_runner():
    runner = Runner(hangs=True)
    yield runner
    runner.released.set()


def test_a_call_gives_its_result_or_its_exception_or_no_answer() -> None:
    assert call_within(5, lambda: 42) == 42
    with pytest.raises(KeyError):
        call_within(5, lambda: {}["missing"])
    release = threading.Event()
    try:
        with pytest.raises(NoAnswer):
            call_within(0.2, lambda: release.wait(30))
    finally:
        release.set()


def test_a_running_job_is_cancelled_and_a_finished_one_is_not() -> None:
    running, done = Runner(PipelineState.RUNNING), Runner(PipelineState.DONE)
    main._cancel_unless_finished(running, timeout_s=5)
    main._cancel_unless_finished(done, timeout_s=5)
    assert running.cancelled
    assert not done.cancelled


def test_stopping_goes_on_when_the_runner_does_not_answer(hanging_runner: Runner) -> None:
    main._cancel_unless_finished(hanging_runner, timeout_s=0.2)
    assert collect(hanging_runner, timeout_s=0.2) == {}
    # The state never answered, so no cancel was asked for.
    assert not hanging_runner.cancelled


# Run in a process of its own: the stop is asked by a signal, and a failing version hangs.
SIGNAL_ON_ANOTHER_THREAD = """
import signal, threading, time
from apache_beam.runners.runner import PipelineState
from streaming import main

class Result:
    def __init__(self):
        self.done = threading.Event()
        self.cancelled = False
    def wait_until_finish(self):
        self.done.wait()
    @property
    def state(self):
        return PipelineState.CANCELLED if self.cancelled else PipelineState.RUNNING
    def cancel(self):
        self.cancelled = True
        self.done.set()

result = Result()
bystander = threading.Thread(target=time.sleep, args=(60,), daemon=True)
bystander.start()

def deliver():
    time.sleep(0.5)
    # As the kernel may do with a SIGTERM to the process: another thread takes it.
    signal.pthread_kill(bystander.ident, signal.SIGTERM)

threading.Thread(target=deliver, daemon=True).start()
print("failure:", main._wait_until_stopped(result), "cancelled:", result.cancelled, flush=True)
"""


def test_a_stop_signal_taken_by_another_thread_still_stops_the_job() -> None:
    """A process-wide SIGTERM lands on any thread that does not block it (gRPC's, TensorFlow's,
    librdkafka's). Python runs its handler only when the main thread next runs bytecode: a main
    thread parked in a wait without a timeout never did, and the job hung until SIGKILL."""
    done = subprocess.run([sys.executable, "-c", SIGNAL_ON_ANOTHER_THREAD], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.stdout.strip() == "failure: None cancelled: True", done.stderr[-2000:]
