"""The terminal gets metafix's own lines, the file the full log, JSON lines parse.

Logging is configured in a child process, as ``metafix`` does at start: ``--log-file``
points the process's file descriptor 2 elsewhere, which must not happen to pytest.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from streaming import logs
from streaming.options import REPO_ROOT

# Logs as a job does: its own lines, library chatter and warnings, a failure with its
# traceback, and a native library writing to descriptor 2 directly (as TensorFlow does).
_CHILD = """
import logging, os, sys
from streaming import logs
settings, rest = logs.split_arguments(sys.argv[1:])
assert rest == ["stream", "--input-topic", "t"], rest
logs.configure(settings)
logging.getLogger("metafix").info("own info")
logging.getLogger("streaming.kafkaio").debug("own debug")
logging.getLogger("apache_beam.runners").info("library info")
logging.getLogger("apache_beam.runners").warning("library warning")
try:
    raise ValueError("broken")
except ValueError:
    logging.getLogger("metafix").exception("own failure")
os.write(2, b"native line\\n")
print("one-line error", file=sys.stderr)
logs.quiet_libraries_on_terminal()
logging.getLogger("metafix").info("stopping")
logging.getLogger("PrismRunner").error("Bundle Failed. (error='pipeline canceled')")
print("Traceback of an instruction the cancel cut off", file=sys.stderr)
"""


def _run(tmp_path: Path, *flags: str) -> tuple[str, str]:
    """(terminal stderr, file contents) of the child run with ``flags``."""
    log_file = tmp_path / "full.log"
    done = subprocess.run([sys.executable, "-c", _CHILD, *flags, "stream", "--input-topic", "t",
                           "--log-file", str(log_file)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, check=True)
    return done.stderr, log_file.read_text()


def test_the_terminal_shows_own_lines_and_library_warnings_the_file_everything(tmp_path: Path) -> None:
    terminal, full = _run(tmp_path)
    messages = [line.split(": ", 1)[1] for line in terminal.splitlines() if line[:4].isdigit()]
    assert messages == ["own info", "library warning", "own failure", "stopping"]
    assert "ValueError: broken" in terminal
    assert "one-line error" in terminal and "native line" not in terminal
    # After the stop, library output goes to the file only.
    assert "pipeline canceled" not in terminal and "cut off" not in terminal
    for text in ("own info", "library info", "library warning", "pipeline canceled", "ValueError: broken",
                 "native line", "cut off"):
        assert text in full
    assert "own debug" not in full


def test_levels_are_set_apart_for_own_and_library_loggers(tmp_path: Path) -> None:
    terminal, full = _run(tmp_path, "--log-level", "debug", "--library-log-level", "ERROR")
    messages = [line.split(": ", 1)[1] for line in terminal.splitlines() if line[:4].isdigit()]
    assert messages == ["own info", "own debug", "own failure", "stopping"]
    assert "own debug" in full and "library info" in full


def test_json_lines_carry_time_level_logger_message_and_exception(tmp_path: Path) -> None:
    terminal, full = _run(tmp_path, "--log-format", "json")
    entries = [json.loads(line) for line in terminal.splitlines() if line.startswith("{")]
    assert [(e["level"], e["logger"], e["message"]) for e in entries] == [
        ("INFO", "metafix", "own info"),
        ("WARNING", "apache_beam.runners", "library warning"),
        ("ERROR", "metafix", "own failure"),
        ("INFO", "metafix", "stopping"),
    ]
    assert all(e["time"].endswith("+00:00") for e in entries)
    assert "ValueError: broken" in entries[2]["exception"]
    assert "exception" not in entries[0]
    file_entries = [json.loads(line) for line in full.splitlines() if line.startswith("{")]
    assert ("apache_beam.runners", "library info") in {(e["logger"], e["message"]) for e in file_entries}


def test_a_json_record_keeps_its_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "metafix", "levelno": logging.INFO, "levelname": "INFO",
                                    "msg": "metafix summary", "summary": {"records_in": 3}})
    assert json.loads(logs.JsonFormatter().format(record))["summary"] == {"records_in": 3}


@pytest.mark.parametrize(("name", "own"), [("metafix", True), ("streaming.kafkaio", True), ("model", True),
                                           ("metafixes", False), ("apache_beam", False), ("PrismRunner", False)])
def test_own_loggers_are_the_repository_packages(name: str, own: bool) -> None:
    assert logs.is_own(name) is own


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(SystemExit):
        logs.split_arguments(["--log-level", "chatty"])


# A runner's thread has passed its level check when the command gives its reason, and writes its
# record after that (a logger filter holds it there, as formatting a long traceback can).
_LATE_THREAD_CHILD = """
import logging, sys, threading
from streaming import logs
settings, _ = logs.split_arguments(sys.argv[1:])
logs.configure(settings)
checked, reason_given = threading.Event(), threading.Event()

def hold(record):
    checked.set()
    reason_given.wait(10)
    return True

late = logging.getLogger("apache_beam.runners.worker.data_plane")
late.addFilter(hold)
thread = threading.Thread(target=lambda: late.error("read_grpc_client_inputs ended with an error"))
thread.start()
checked.wait(10)
logs.last_line("metafix stream: the pipeline failed: lost the runner")
reason_given.set()
thread.join()
late.error("and another")
"""


@pytest.mark.parametrize("log_file", [[], ["--log-file", "none"]], ids=["log file", "no log file"])
def test_the_reason_stays_the_last_line_whatever_a_thread_logs_after_it(tmp_path: Path, log_file: list[str]) -> None:
    flags = ["--log-file", str(tmp_path / "full.log")] if log_file == [] else log_file
    done = subprocess.run([sys.executable, "-c", _LATE_THREAD_CHILD, *flags], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stderr.strip().splitlines()[-1] == "metafix stream: the pipeline failed: lost the runner"
    assert "ended with an error" not in done.stderr and "another" not in done.stderr
