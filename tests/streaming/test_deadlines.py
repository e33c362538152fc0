"""A stopping job's questions to its runner are bounded in time: one that stopped answering
must not keep the job from ending (and writing its summary) before its supervisor kills it."""

from __future__ import annotations

import threading

import pytest
from apache_beam.runners.runner import PipelineState

from streaming import main
from streaming.deadlines import NoAnswer, call_within
from streaming.metrics_summary import collect


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
