"""The ``metafix`` command.

    metafix stream   --bootstrap-servers 127.0.0.1:9092 --input-topic catalog.updates \\
                     --output-topic catalog.corrected --dead-letter-topic catalog.dead-letters \\
                     [--review-topic ...] [--audit-topic ...] [--start-from committed] [--runner ...]
    metafix replay   --input 'events/*.jsonl' --output out.jsonl --format jsonl
    metafix profile  --input 'archive/**/*.avro' --output profiles/
    metafix diff     --input events.jsonl --model-a DIR --model-b DIR
    metafix archive compact --archive-dir DIR [--hour dt=YYYY-MM-DD/hour=HH | --closed-before TIME]
    metafix train    --output-dir model/export [--config tiny|full]
    metafix evaluate --model-dir model/export --json evaluation.json

Every subcommand takes ``--help`` and the logging flags of ``streaming/logs.py``
(``--log-level``, ``--library-log-level``, ``--log-format text|json``,
``--log-file auto|none|PATH``). Bad options, an unreachable broker, a
missing topic or model end the command with one line on stderr and exit code 2.
A stream whose pipeline fails while running (Kafka unwritable past the retry bound,
say) prints its summary and the reason on one line and exits with code 1; its offsets
are committed only up to what was written, so a restart with ``--start-from committed``
loses nothing. Ctrl-C (SIGINT) and SIGTERM stop a stream: it cancels the job, prints the
summary and exits with code 0. With ``--metrics-port`` a stream serves live Prometheus
metrics and ``/healthz`` (``streaming/live_metrics.py``).
"""

from __future__ import annotations

import dataclasses
import logging
import re
import signal
import sys
import threading
from collections.abc import Callable, Sequence

import apache_beam as beam
import grpc
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.runner import PipelineState

from model.training import evaluate, train
from streaming import archive_compact, diff, live_metrics, logs, preflight, profile_job, replay
from streaming.deadlines import RUNNER_ANSWER_TIMEOUT_S, NoAnswer, call_within
from streaming.metrics_summary import print_summary
from streaming.options import ConfigError, MetafixOptions, stream_config, wants_help
from streaming.pipeline import build_pipeline
from streaming.runners import (
    pipeline_runner,
    shorten_state_sampling,
    streams_one_stage_only,
    with_local_defaults,
)
from transforms import native, policy

log = logging.getLogger("metafix")
# How often the waiting main thread wakes, so that a stop signal's handler runs (below).
SIGNAL_CHECK_S = 0.5


def _usage() -> str:
    return __doc__ or ""


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix stream``: runs the streaming job until it is stopped (SIGINT or SIGTERM)."""
    if wants_help(argv, "metafix stream", run.__doc__):
        return 0
    options = PipelineOptions(list(argv or []))
    config = stream_config(options)
    o = options.view_as(MetafixOptions)
    if o.metrics_port is not None and not 0 <= o.metrics_port <= 65535:
        raise ConfigError(f"--metrics-port must be between 0 and 65535, got {o.metrics_port}")
    preflight.check_stream(config)
    options = with_local_defaults(options, streaming=True)
    if config.partition_discovery_interval_s is not None and streams_one_stage_only(options):
        log.warning("metafix stream: this runner reads only the partitions there are at start; "
                    "partitions added to %s are read after a restart", config.input_topic)
        config = dataclasses.replace(config, partition_discovery_interval_s=None)
    pipeline = beam.Pipeline(runner=pipeline_runner(options), options=options)
    build_pipeline(pipeline, config)
    # Beam's job-message reader thread raises when the runner goes away; through logging its
    # traceback can be silenced once the job's own reason has been given (see below).
    threading.excepthook = _log_thread_error
    submitted: list[beam.runners.runner.PipelineResult] = []
    metrics_server = None
    if o.metrics_port is not None:
        # Before the job starts, so a port already taken fails the command, not a running job.
        try:
            metrics_server = live_metrics.serve(o.metrics_port, o.metrics_address, lambda: _health(submitted))
        except OSError as e:
            raise ConfigError(f"--metrics-port {o.metrics_port}: {e.strerror or e}") from e
    # Prism's LOOPBACK worker runs in this process.
    shorten_state_sampling()
    result = pipeline.run()
    submitted.append(result)
    log.info("metafix stream: running; reading %s, writing %s; field logic %s", config.input_topic,
             config.output_topic, "compiled" if native.is_compiled(policy) else "from source")
    try:
        failure = _wait_until_stopped(result)
    finally:
        # Whatever went wrong while stopping, the counts so far are written out.
        print_summary(result, metrics_file=o.metrics_file, timeout_s=RUNNER_ANSWER_TIMEOUT_S)
    if metrics_server is not None:
        metrics_server.shutdown()
    if failure is not None:
        # Offsets stay committed only up to what was written: a restart with
        # --start-from committed resumes without losing anything. The reason is the last line
        # a supervisor's journal shows, whatever the dying runner's threads still log.
        logs.last_line(f"metafix stream: the pipeline failed: {failure}")
        return 1
    return 0


def _wait_until_stopped(result: beam.runners.runner.PipelineResult) -> str | None:
    """Waits for a signal or the pipeline's end; the failure's one-line reason if it failed by itself."""
    stop = threading.Event()
    requested: list[int] = []
    failures: list[BaseException] = []

    def _on_signal(signum, frame):  # the signal handler signature
        requested.append(signum)
        stop.set()

    previous = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        waiter = threading.Thread(target=_wait_quietly, args=(result, stop, failures), daemon=True)
        waiter.start()
        # A SIGTERM to the process lands on any thread that does not block it (gRPC's,
        # TensorFlow's, librdkafka's), and Python runs the handler only when the main thread
        # next runs bytecode: parked in a wait without a timeout, it never did, and the job
        # hung until its supervisor killed it (seen in CI as a stop that logged nothing).
        while not stop.wait(SIGNAL_CHECK_S):
            pass
        if requested:
            # Logged at once: what follows waits on the runner, which may not answer.
            log.info("metafix stream: %s received, stopping", signal.Signals(requested[0]).name)
            logs.quiet_libraries_on_terminal()
        _cancel_unless_finished(result)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if failures and not requested:
        log.error("metafix stream: the pipeline failed", exc_info=failures[0])
        return _reason(failures[0])
    return None


def _log_thread_error(args: threading.ExceptHookArgs) -> None:
    name = args.thread.name if args.thread is not None else "a thread"
    # Not one of metafix's own loggers: these are Beam's threads (the job-message reader, the SDK
    # harness's gRPC streams), whose errors after a requested stop the terminal does not show.
    logging.getLogger("threads").warning("metafix stream: %s ended with an error", name,
                                         exc_info=(args.exc_type, args.exc_value, args.exc_traceback))


def _wait_quietly(result, stop: threading.Event, failures: list[BaseException]) -> None:
    try:
        result.wait_until_finish()
    except Exception as e:  # noqa: BLE001 - reported by _wait_until_stopped
        failures.append(e)
    stop.set()


def _cancel_unless_finished(result: beam.runners.runner.PipelineResult,
                            timeout_s: float = RUNNER_ANSWER_TIMEOUT_S) -> None:
    """Cancels the job if the runner still runs it; a runner that is gone has nothing left to cancel.

    A job service that outlives this process (Flink, a job endpoint) would otherwise keep running a
    job whose restarted copy a supervisor has already started. Each question to the runner waits
    at most `timeout_s`: one that stopped answering must not keep this process from ending.
    """
    try:
        if not call_within(timeout_s, lambda: _finished(result)):
            log.info("metafix stream: cancelling the job")
            call_within(timeout_s, result.cancel)
    except grpc.RpcError as e:
        log.warning("metafix stream: the runner is unreachable (%s), nothing to cancel", _rpc_status(e))
    except NoAnswer as e:
        log.warning("metafix stream: the runner gave %s to its state or cancel request; "
                    "stopping without its confirmation", e)


def _reason(error: BaseException) -> str:
    """The innermost "SomeError: message" line of a runner's failure report, else its first line."""
    if isinstance(error, grpc.RpcError):
        # The job's state stream broke: the runner process died or its job service went away.
        return f"lost the runner: {_rpc_status(error)}"[:500]
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^[\w.]+(Error|Exception): ", line)]
    return (errors[-1] if errors else (lines[0] if lines else type(error).__name__))[:500]


def _rpc_status(error: grpc.RpcError) -> str:
    """'UNAVAILABLE: Socket closed' for a call's error; an RpcError that is no call has only its type."""
    if isinstance(error, grpc.Call):
        return f"{error.code().name}: {error.details()}"
    return type(error).__name__


def _finished(result) -> bool:
    return PipelineState.is_terminal(result.state)


def _health(submitted: list[beam.runners.runner.PipelineResult]) -> tuple[bool, str]:
    if not submitted:
        return False, "starting: the job is being submitted"
    try:
        state = str(submitted[0].state)
    except grpc.RpcError as e:
        return False, f"the runner is unreachable: {_rpc_status(e)}"
    return live_metrics.health(state, live_metrics.seconds_since_last_poll())


# Subcommand -> its run function; each module parses its own flags.
COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "stream": run,
    "replay": replay.run,
    "profile": profile_job.run,
    "diff": diff.run,
    "archive": archive_compact.run,
    "train": train.main,
    "evaluate": evaluate.main,
}


def main(argv: Sequence[str] | None = None) -> int:
    settings, args = logs.split_arguments(sys.argv[1:] if argv is None else argv)
    logs.configure(settings, command=args[0] if args else "metafix")
    if not args or args[0] in ("-h", "--help"):
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    command = COMMANDS.get(name)
    if command is None:
        print(f"metafix: unknown command {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    try:
        return command(rest)
    except ConfigError as e:
        print(f"metafix {name}: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        # Ctrl-C before a stream's job runs (or during another command): one line, no traceback.
        print(f"metafix {name}: interrupted", file=logs.terminal())
        return 130


if __name__ == "__main__":
    sys.exit(main())
