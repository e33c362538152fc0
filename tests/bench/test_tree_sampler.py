"""The bench's sampler: CPU of a process tree, in all and by thread group."""

from __future__ import annotations

import subprocess
import sys
import time

import psutil

from bench.run import TreeSampler, thread_group

# A child that burns half a CPU second, waits for a line on stdin, burns another half
# second and then idles until killed; it says when it reaches each mark.
_BUSY_THEN_IDLE = (
    "import sys, time\n"
    "for mark in (0.5, 1.0):\n"
    "    while time.process_time() < mark:\n"
    "        pass\n"
    "    print(mark, flush=True)\n"
    "    sys.stdin.readline()\n"
    "time.sleep(60)\n"
)


def test_thread_groups_drop_pool_numbers_and_keep_the_process() -> None:
    assert thread_group("python", "rdk:broker1") == "python/rdk:broker"
    assert thread_group("python", "rdk:broker12") == "python/rdk:broker"
    assert thread_group("prism", "prism") == "prism/prism"
    assert thread_group("java", "42") == "java/42"  # a name that is only a number stays


def test_cpu_by_thread_group_adds_up_to_the_process_cpu() -> None:
    child = subprocess.Popen([sys.executable, "-c", _BUSY_THEN_IDLE], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        name = psutil.Process(child.pid).name()
        sampler = TreeSampler(child.pid, interval_s=0.05, by_thread=True)
        assert child.stdout.readline().strip() == "0.5"
        # The window opens and closes while the child waits, a few samples from its work.
        time.sleep(0.3)
        started = time.time()
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "1.0"
        time.sleep(0.3)
        ended = time.time()
        sampler.stop()
    finally:
        child.kill()
        child.wait()
    total = sampler.cpu_between(started, ended)
    groups = sampler.cpu_between_by_group(started, ended)
    # The second half-second, in /proc's clock ticks, and the little the child used to read and write.
    assert 0.4 < total < 0.65
    assert abs(sum(groups.values()) - total) < 0.05
    [busiest] = [g for g, cpu in groups.items() if cpu == max(groups.values())]
    assert busiest.startswith(name + "/") and groups[busiest] > 0.4
