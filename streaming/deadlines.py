"""Calls into a runner that may have stopped answering, bounded in time.

Beam's portable job client calls its job service (GetState, Cancel, GetJobMetrics) without
a deadline. A job that is being stopped asks all three; a runner that no longer answers
must not keep it from writing its summary and ending before its supervisor kills it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# How long a stopping job waits for each answer of its runner. Prism answered the state
# request within 2 ms in the stream test; systemd's default stop timeout (90 s) has room for
# the three calls.
RUNNER_ANSWER_TIMEOUT_S = 20.0


class NoAnswer(Exception):
    """The call did not return within its deadline."""


def call_within(timeout_s: float, fn: Callable[[], T]) -> T:
    """fn()'s result, or its exception; NoAnswer if it has not returned after timeout_s.

    fn runs on a daemon thread, which is left waiting when the deadline passes: a blocked
    gRPC call cannot be interrupted from Python, and the process is ending anyway.
    """
    outcome: list = []

    def _call() -> None:
        try:
            outcome.append((True, fn()))
        except BaseException as e:  # noqa: BLE001 - handed to the caller's thread
            outcome.append((False, e))

    thread = threading.Thread(target=_call, name="runner-call", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not outcome:
        raise NoAnswer(f"no answer within {timeout_s:g} s")
    returned, value = outcome[0]
    if not returned:
        raise value
    return value
