"""Logging of the metafix commands: metafix's own lines on the terminal, the rest in a file.

    metafix stream ... [--log-level INFO] [--library-log-level WARNING] [--log-format text|json]
                       [--log-file auto|none|PATH]

On stderr metafix's own loggers show from ``--log-level`` (default INFO) and every other
logger (Beam, TensorFlow, absl, gRPC, Kafka clients, Prism) from ``--library-log-level``
(default WARNING). The log file receives the full log: every logger from INFO (or the lower
of the two levels), and the native output of TensorFlow, absl and gRPC, which write to file
descriptor 2 without going through Python's logging. TensorFlow 2.21 writes its start-up
lines (oneDNN, no CUDA driver) before absl's logging is set up, where
``TF_CPP_MIN_LOG_LEVEL`` does not reach them; only moving descriptor 2 keeps them off a
terminal.

``--log-file auto`` (the default) writes the file only when stderr is a terminal: a person
gets the full log under the temp directory, its path logged at start. A service (systemd,
a container, a child process whose output is captured) keeps everything on its stderr, where
its supervisor already keeps the log, and TensorFlow's native log there is limited to what
follows its start-up unless ``TF_CPP_MIN_LOG_LEVEL`` is set. ``--log-format json`` writes
one JSON object per line (time, level, logger, message, and exception when there is one)
for log shippers.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TextIO

# Loggers that are metafix's own: the named logger and the packages of this repository.
OWN_LOGGERS = ("metafix", "streaming", "model", "transforms", "harness", "bench")
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Library loggers that say more than their level suggests, with the level they need on the terminal
# (the file still gets them). Beam logs starting and stopping the runner's job service as
# warnings, the stop from an exit handler after the job's own last line.
TERMINAL_FLOORS = {"apache_beam.utils.subprocess_server": logging.ERROR}

# The attributes every LogRecord has; anything else on a record came in through ``extra=``.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


@dataclass(frozen=True)
class LogSettings:
    level: str = "INFO"
    library_level: str = "WARNING"
    format: str = "text"
    file: str | None = "auto"


_active = LogSettings(file=None)
# The terminal's stream once quiet_libraries_on_terminal has pointed sys.stderr elsewhere.
_terminal: TextIO | None = None
# Set by last_line: the command has said its last word, records after it are dropped.
_closed = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    g = parser.add_argument_group("logging (every command)")
    g.add_argument("--log-level", "--log_level", dest="log_level", type=str.upper, default="INFO", choices=LEVELS,
                   help="metafix's own messages on the terminal from this level (default INFO)")
    g.add_argument("--library-log-level", "--library_log_level", dest="library_log_level", type=str.upper,
                   default="WARNING", choices=LEVELS,
                   help="Beam, TensorFlow, gRPC and Kafka client messages on the terminal from this level "
                        "(default WARNING)")
    g.add_argument("--log-format", "--log_format", dest="log_format", default="text", choices=FORMATS,
                   help="text, or json: one JSON object per line (time, level, logger, message, exception)")
    g.add_argument("--log-file", "--log_file", dest="log_file", default="auto",
                   help="Write the full log (every logger from INFO, TensorFlow's and gRPC's native output) "
                        "to this file; auto (default): to a new file under the temp directory when stderr "
                        "is a terminal; none: no file")


def split_arguments(argv: Sequence[str]) -> tuple[LogSettings, list[str]]:
    """The logging settings, and the arguments left for the command itself."""
    parser = argparse.ArgumentParser(add_help=False)
    add_arguments(parser)
    known, rest = parser.parse_known_args(list(argv))
    return LogSettings(known.log_level, known.library_log_level, known.log_format, known.log_file), rest


def is_own(logger_name: str) -> bool:
    return any(logger_name == p or logger_name.startswith(p + ".") for p in OWN_LOGGERS)


class TerminalFilter(logging.Filter):
    """Passes metafix's own records from one level and everyone else's from another."""

    def __init__(self, own_level: int, library_level: int) -> None:
        super().__init__()
        self._own = own_level
        self._library = library_level
        self.libraries_quiet = False

    def filter(self, record: logging.LogRecord) -> bool:
        if is_own(record.name):
            return record.levelno >= self._own
        if self.libraries_quiet:
            return False
        return record.levelno >= max(self._library, TERMINAL_FLOORS.get(record.name, logging.NOTSET))


def quiet_libraries_on_terminal() -> None:
    """From now on only metafix's own lines reach the terminal; the log file gets the rest.

    For a stop the user asked for: as the job is cancelled, Prism reports the bundle it
    interrupted as failed, and Beam's SDK harness prints the tracebacks of the finalizations
    it can no longer run, straight to ``sys.stderr``; none of it is news to the person who
    pressed Ctrl-C. ``sys.stderr`` now writes to the log file too. Without a log file (a
    supervisor's journal keeps stderr, and is the only copy) nothing changes.
    """
    if not _active.file:
        return
    global _terminal
    _terminal = sys.stderr
    for handler in logging.getLogger().handlers:
        for f in handler.filters if isinstance(handler, _TerminalHandler) else ():
            if isinstance(f, TerminalFilter):
                f.libraries_quiet = True
    # Descriptor 2 is the log file (see _native_output_to).
    sys.stderr = open(2, "w", buffering=1, encoding="utf-8", errors="backslashreplace", closefd=False)  # lives as long as the process


def terminal() -> TextIO:
    """Where metafix's own messages go: stderr, or the terminal once libraries were quieted."""
    return _terminal if _terminal is not None else sys.stderr


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC, ISO 8601), level, logger, message, exception, extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES and key not in entry:
                entry[key] = value
        return json.dumps(entry, default=str, ensure_ascii=False)


def _formatter(settings: LogSettings) -> logging.Formatter:
    return JsonFormatter() if settings.format == "json" else logging.Formatter(TEXT_FORMAT)


class _Handler(logging.Handler):
    """The handlers ``configure`` adds: a second call replaces them, ``last_line`` closes them."""

    def emit(self, record: logging.LogRecord) -> None:
        # Runs under the handler's lock: last_line waits on it for a record begun before it.
        if not _closed:
            super().emit(record)


class _TerminalHandler(_Handler, logging.StreamHandler):
    """Writes to ``sys.stderr`` as it is at each record (``--log-file`` rebinds it to the terminal)."""

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property
    def stream(self) -> TextIO:  # StreamHandler writes to self.stream
        return terminal()


class _FileHandler(_Handler, logging.FileHandler):
    pass


def log_file_path(setting: str | None, *, interactive: bool, command: str) -> str | None:
    """The file the full log goes to, for a ``--log-file`` setting; None for no file.

    >>> log_file_path("job.log", interactive=False, command="stream")
    'job.log'
    >>> log_file_path("auto", interactive=False, command="stream") is None
    True
    >>> log_file_path("auto", interactive=True, command="stream")  # doctest: +ELLIPSIS
    '.../metafix-stream-...log'
    >>> log_file_path("none", interactive=True, command="stream") is None
    True
    """
    if setting in (None, "none") or (setting == "auto" and not interactive):
        return None
    if setting == "auto":
        stamp = time.strftime("%Y%m%d-%H%M%S")
        return os.path.join(tempfile.gettempdir(), f"metafix-{command}-{stamp}-{os.getpid()}.log")
    return setting


def configure(settings: LogSettings, command: str = "metafix") -> None:
    """Sets up the terminal handler, the file handler and the native log of TensorFlow and gRPC.

    Must run before TensorFlow is imported: TensorFlow reads ``TF_CPP_MIN_LOG_LEVEL`` once.
    """
    path = log_file_path(settings.file, interactive=sys.stderr.isatty(), command=command)
    own = logging.getLevelName(settings.level)
    library = logging.getLevelName(settings.library_level)
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(handler)
        handler.close()
    if path:
        _native_output_to(path)
        file_handler = _FileHandler(path, encoding="utf-8")
        file_handler.setLevel(min(own, library, logging.INFO))
        file_handler.setFormatter(_formatter(settings))
        root.addHandler(file_handler)
    else:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    console = _TerminalHandler()
    console.addFilter(TerminalFilter(own, library))
    console.setFormatter(_formatter(settings))
    root.addHandler(console)
    root.setLevel(min(own, library, logging.INFO))
    logging.captureWarnings(True)
    global _active, _terminal, _closed
    _terminal = None
    _closed = False
    _active = LogSettings(settings.level, settings.library_level, settings.format, path)
    if path and settings.file == "auto":
        logging.getLogger("metafix").info("metafix %s: the full log is in %s", command, path)


def last_line(message: str) -> None:
    """Writes ``message`` to stderr as the command's last line; nothing is logged after it.

    A dying runner's threads (the job-message reader, the SDK harness's data streams) go on
    logging their broken streams while the process exits. ``logging.disable`` alone leaves a
    race: a thread that passed its level check before it may still be formatting a traceback
    that would land after the reason. Each handler's lock is taken to close it, so a record
    being written finishes first and any later one is dropped.
    """
    global _closed
    logging.disable(logging.CRITICAL)
    _closed = True
    for handler in logging.getLogger().handlers:
        if isinstance(handler, _Handler):
            with handler.lock:
                handler.flush()
    sys.stdout.flush()
    print(message, file=sys.stderr, flush=True)


def active() -> LogSettings:
    """The settings ``configure`` applied last, ``file`` the path written (the defaults before it ran)."""
    return _active


def _native_output_to(path: str) -> None:
    """Points file descriptor 2 at ``path``, and ``sys.stderr`` at the terminal's stderr.

    TensorFlow, absl and gRPC write their native log to descriptor 2 directly; this sends it to
    the file. ``sys.stderr`` is rebound to the terminal, so Python's own messages (one-line
    errors, a traceback) still reach the person who ran the command.
    """
    terminal = os.fdopen(os.dup(2), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                         errors="backslashreplace")
    native = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(native, 2)
    os.close(native)
    sys.stderr = terminal
