"""Choosing the Beam runner when the user names none.

The local default is Prism, Beam's portable local runner, built from the Go
module proxy by ``make prism`` into ``.state/bin/prism``. It runs unbounded
pipelines with real streaming semantics: watermarks, windows, GroupByKey and
state emit while the job runs, splittable DoFns checkpoint and resume, and
bundle finalizers (which commit Kafka offsets) are called. The DirectRunner's
FnApiRunner fallback streams only a single fused stage and never emits after a
GroupByKey, so it is not the default for ``metafix stream``; it stays
selectable with ``--runner=FnApiRunner``, and bounded replays use it.

Portable runners (Prism, Flink, a job endpoint) are created by ``pipeline_runner``
rather than by name: Beam's ``JobServiceHandle`` opens the job's state and message
streams with ``timeout=--job_server_timeout`` (300 s by default), so every job that
ran longer than that lost both streams with DEADLINE_EXCEEDED, and the runner then
cancelled the job (apache/beam#35867). Those two streams last as long as the job;
the deadline stays on the calls that submit it (DescribePipelineOptions, Prepare)
and on waiting for the job server, where it belongs.

The job servers Beam starts as child processes (Prism; Flink's embedded job server) run
in a process group of their own. A Ctrl-C in a terminal goes to every process of the
foreground group: Prism, in metafix's group, died of it while metafix was still cancelling
the job, and the user got gRPC tracebacks instead of the summary. Outside the group only
metafix receives it; metafix cancels the job and prints the summary, and Beam stops the
job server when metafix exits. On Linux the job server is also killed when metafix dies,
since a killed metafix no longer takes its process group's runner with it.
"""

from __future__ import annotations

import inspect
import os
import shutil
import sys
from collections.abc import Sequence

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    PrismRunnerOptions,
    StandardOptions,
)
from apache_beam.runners.portability import flink_runner, job_server, portable_runner, prism_runner
from apache_beam.runners.runner import PipelineRunner

from streaming.options import REPO_ROOT, ConfigError

PRISM_BINARY = REPO_ROOT / ".state" / "bin" / "prism"


def prism_location() -> str | None:
    env = os.environ.get("METAFIX_PRISM")
    if env:
        return env
    if PRISM_BINARY.exists():
        return str(PRISM_BINARY)
    return shutil.which("prism")


def with_local_defaults(options: PipelineOptions, *, streaming: bool) -> PipelineOptions:
    """Fills in the runner when the command line names none.

    Streaming jobs get Prism (in process); without a Prism binary that is a ``ConfigError``
    (``metafix stream`` says so in one line and exits with code 2). Bounded replays get the FnApiRunner:
    they need no streaming semantics, and without Prism's gRPC data plane
    between runner and worker a replay ran 1.45x as fast here (100k events
    from Avro: 4.1k vs 2.8k records/s).
    """
    standard = options.view_as(StandardOptions)
    if streaming:
        standard.streaming = True
    if standard.runner is None and not streaming:
        standard.runner = "FnApiRunner"
    if standard.runner is None:
        location = prism_location()
        if location is None:
            raise ConfigError("no Prism binary: run `make prism`, set $METAFIX_PRISM or pass --runner")
        standard.runner = "PrismRunner"
        options.view_as(PortableOptions).environment_type = "LOOPBACK"
        options.view_as(PrismRunnerOptions).prism_location = location
    return options


# Beam's SDK worker starts a state-sampler thread for each bundle and joins it when the
# bundle ends. The thread sleeps in steps that grow to its sampling period (200 ms by
# default), and the join waits out the step under way: in a stream, whose bundle is one
# poll batch, 300k events on Prism spent 6.7 s of 39.5 s in that join, 69 ms a bundle on
# average. With steps of at most 2 ms the join took 5-7 ms on average and 0.6-0.7 s in
# all. The other bundle under way mostly fills such a wait, so the rate did not change
# beyond this machine's noise; a lone bundle (a quiet stream, one partition) ends that
# much sooner. The sampler only attributes time to steps, which get finer, not dearer.
STATE_SAMPLING_PERIOD_MS = 2


def shorten_state_sampling(period_ms: int = STATE_SAMPLING_PERIOD_MS) -> bool:
    """Makes the bundles that SDK workers in this process start from now on sample every
    ``period_ms`` at most; False, and nothing changed, where Beam's sampler is not the one
    this was written for.

    Beam has no option for the period: it is the default of ``StateSampler(prefix,
    counter_factory, sampling_period_ms=...)``, which the worker never passes. So the
    default is set, in the processes that run the job's worker in process (Prism's
    LOOPBACK, the FnApiRunner).
    """
    from apache_beam.runners.worker import statesampler

    init = statesampler.StateSampler.__init__
    if list(inspect.signature(init).parameters)[-1] != "sampling_period_ms" or len(init.__defaults__ or ()) != 1:
        return False
    init.__defaults__ = (period_ms,)
    return True


def streams_one_stage_only(options: PipelineOptions) -> bool:
    """True for the FnApiRunner (and the DirectRunner, which hands streaming jobs to it).

    It runs a stage downstream of an unbounded splittable DoFn only once that DoFn is done,
    never for an unbounded one: a stream that watches its topic for new partitions there
    would read nothing.

    >>> streams_one_stage_only(PipelineOptions(["--runner=FnApiRunner"]))
    True
    >>> streams_one_stage_only(PipelineOptions(["--runner=PrismRunner"]))
    False
    """
    name = options.view_as(StandardOptions).runner
    return isinstance(name, str) and name.lower().removesuffix("runner") in ("fnapi", "direct")


# From this much input a local replay corrects in two worker processes unless told otherwise.
# Each process loads TensorFlow and the model (about 1 GB) before its first record, a cost a
# small input need not pay. Measured on 2 cores: 300k events (59 MB of Avro) in 50.9 s wall
# in one process, 38-44 s in two; the threshold itself is a choice, not a measured break-even.
WORKER_PROCESSES_FROM_BYTES = 32 * 2**20


def with_worker_processes(options: PipelineOptions, argv: Sequence[str], input_bytes: int) -> PipelineOptions:
    """Two FnApiRunner worker processes for a large bounded input on a machine with two cores.

    Only where the command line names neither the runner nor the direct-runner options.

    >>> options = with_worker_processes(PipelineOptions([]), [], 100 * 2**20)
    >>> workers_are_processes(options) == ((os.cpu_count() or 1) >= 2)
    True
    >>> workers_are_processes(with_worker_processes(PipelineOptions([]), [], 2**20))
    False
    """
    chosen = any(a.startswith(("--runner", "--direct_num_workers", "--direct_running_mode")) for a in argv)
    if not chosen and input_bytes >= WORKER_PROCESSES_FROM_BYTES and (os.cpu_count() or 1) >= 2:
        direct = options.view_as(DirectOptions)
        direct.direct_num_workers = 2
        direct.direct_running_mode = "multi_processing"
    return options


def workers_are_processes(options: PipelineOptions) -> bool:
    """True when the FnApiRunner runs its SDK workers as other processes.

    >>> workers_are_processes(PipelineOptions(["--direct_num_workers=2", "--direct_running_mode=multi_processing"]))
    True
    >>> workers_are_processes(PipelineOptions(["--direct_num_workers=2"]))
    False
    """
    direct = options.view_as(DirectOptions)
    return direct.direct_running_mode == "multi_processing" and direct.direct_num_workers != 1


class _JobStreamsWithoutDeadline:
    """A job service stub whose state and message streams have no deadline.

    Everything else (Prepare, Run, GetState, Cancel, metrics) goes to the stub as is.
    """

    def __init__(self, stub) -> None:
        self._stub = stub

    def __getattr__(self, name: str):
        return getattr(self._stub, name)

    def GetStateStream(self, request, timeout=None, **kwargs):  # gRPC stub method name; the deadline is dropped on purpose
        return self._stub.GetStateStream(request, **kwargs)

    def GetMessageStream(self, request, timeout=None, **kwargs):  # gRPC stub method name; the deadline is dropped on purpose
        return self._stub.GetMessageStream(request, **kwargs)


class _LongLivedJobStreams:
    """Mixin for a portable runner: the job's streams live as long as the job."""

    def create_job_service_handle(self, job_service, options) -> portable_runner.JobServiceHandle:
        handle = super().create_job_service_handle(job_service, options)
        handle.job_service = _JobStreamsWithoutDeadline(handle.job_service)
        return handle


# Runs argv[1:] in place (same pid, so Beam's stop signals reach it) in a new process group,
# and on Linux asks the kernel to SIGKILL it when its parent dies (PR_SET_PDEATHSIG = 1).
_EXEC_IN_OWN_GROUP = """
import os, signal, sys
os.setpgid(0, 0)
if sys.platform == "linux":
    import ctypes
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
os.execvp(sys.argv[1], sys.argv[1:])
"""


class _InOwnProcessGroup:
    """Mixin for a Beam job server run as a subprocess: it starts in a process group of its own."""

    def subprocess_cmd_and_endpoint(self) -> tuple[list, str]:
        cmd, endpoint = super().subprocess_cmd_and_endpoint()
        return [sys.executable, "-c", _EXEC_IN_OWN_GROUP, *map(str, cmd)], endpoint


class _PrismInOwnGroup(_InOwnProcessGroup, prism_runner.PrismJobServer):
    """Beam's Prism job server, started in a process group of its own (see the module doc)."""


class _FlinkJarInOwnGroup(_InOwnProcessGroup, flink_runner.FlinkJarJobServer):
    """Beam's embedded Flink job server (``java -jar``), started in a process group of its own."""


class PrismRunner(_LongLivedJobStreams, prism_runner.PrismRunner):
    """Beam's PrismRunner, whose job outlives ``--job_server_timeout`` and whose Prism keeps out of Ctrl-C."""

    def default_job_server(self, options: PipelineOptions) -> job_server.JobServer:
        # One Prism per process, as Beam's own default_job_server shares it.
        return PrismRunner.shared_handle.acquire(lambda: job_server.StopOnExitJobServer(_PrismInOwnGroup(options)))


class FlinkRunner(_LongLivedJobStreams, flink_runner.FlinkRunner):
    """Beam's FlinkRunner, whose job outlives ``--job_server_timeout`` and whose job server keeps out of Ctrl-C."""

    def default_job_server(self, options: PipelineOptions) -> job_server.JobServer:
        server = super().default_job_server(options)
        if isinstance(server, job_server.StopOnExitJobServer):
            # The job server Beam starts itself; an uber-jar submission (the other case) starts none.
            return job_server.StopOnExitJobServer(_FlinkJarInOwnGroup(options))
        return server


class PortableRunner(_LongLivedJobStreams, portable_runner.PortableRunner):
    """Beam's PortableRunner (``--job_endpoint``), whose job outlives ``--job_server_timeout``."""


_PORTABLE_RUNNERS: dict[str, type[PipelineRunner]] = {
    "prism": PrismRunner,
    "flink": FlinkRunner,
    "portable": PortableRunner,
}


def pipeline_runner(options: PipelineOptions) -> PipelineRunner | str | None:
    """The runner to build the pipeline with: ours for portable runners, else the name as given.

    Names are matched as Beam matches them: any case, with or without "Runner".
    """
    name = options.view_as(StandardOptions).runner
    if not isinstance(name, str):
        return name
    key = name.lower().removesuffix("runner")
    runner_class = _PORTABLE_RUNNERS.get(key)
    return runner_class() if runner_class is not None else name
