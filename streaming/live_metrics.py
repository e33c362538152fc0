"""Live metrics of a running job in the Prometheus text format, and ``/healthz`` beside them.

    metafix stream ... --metrics-port 9464 [--metrics-address 0.0.0.0]
    curl -s 127.0.0.1:9464/metrics
    curl -s 127.0.0.1:9464/healthz

The metric objects below are the only place their names are spelled. The DoFns report into
them as they count their Beam counters (``record_counts`` takes the same counter names), so
the Beam summary at the end and the live metrics cannot disagree on what is counted.

They live in this process's registry: they are live wherever the SDK worker runs inside the
``metafix`` process, as with Prism's LOOPBACK environment (the local default). On Dataflow,
or on a Flink cluster with remote workers, the DoFns count in the workers' processes and
this endpoint shows only the process's own metrics; read the Beam counters there instead
(Dataflow's job metrics, Flink's metric reporters).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import Counter, Gauge, Histogram, make_wsgi_app

log = logging.getLogger("metafix")

RECORDS_IN = Counter("metafix_records_in", "Input events decoded")
RECORDS_OUT = Counter("metafix_records_out", "Corrected records out")
DEAD_LETTERS = Counter("metafix_dead_letters", "Inputs sent to the dead-letter topic", ["stage", "reason"])
CORRECTIONS = Counter("metafix_corrections", "Field values corrected", ["field", "error_class"])
FLAGS = Counter("metafix_flags", "Field values flagged for review", ["field", "error_class"])
DETECTIONS = Counter("metafix_detections", "Errors the model detected at or above the review threshold",
                     ["field", "error_class"])
INFERENCE_ERRORS = Counter("metafix_inference_errors", "Records of model calls that failed")
INFERENCE_BATCH_SIZE = Histogram("metafix_inference_batch_size", "Records per model call",
                                 buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048))
INFERENCE_LATENCY = Histogram("metafix_inference_latency_seconds", "Duration of one model call",
                              buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
CONSUMER_LAG = Gauge("metafix_consumer_lag", "Records between the reader's position and the partition's "
                     "high watermark, at its last poll", ["topic", "partition"])
LAST_POLL = Gauge("metafix_last_poll_timestamp_seconds", "When the Kafka reader last polled (Unix time)")

# Beam counter name prefix -> the labelled counter it feeds (the rest of the name: "field.class").
_BY_FIELD_AND_CLASS = {"corrected": CORRECTIONS, "flagged": FLAGS, "detected": DETECTIONS}
_PLAIN = {"records_in": RECORDS_IN, "records_out": RECORDS_OUT, "inference_errors": INFERENCE_ERRORS}

# /healthz answers 503 when the reader has not polled Kafka for this long (it polls every
# poll timeout, a second or less, when all is well).
STALE_POLL_S = 60.0

_last_poll_monotonic: float | None = None


def record_counts(counts: Mapping[str, int]) -> None:
    """Adds one batch's counts, named as the job's Beam counters are, to the live metrics.

    ``dead_letters.<stage>.<reason>`` feeds the dead letters by stage and reason (the total
    ``dead_letters`` is their sum, so it is not counted twice), ``corrected|flagged|detected.
    <field>.<class>`` the counters by field and class.
    """
    for name, n in counts.items():
        plain = _PLAIN.get(name)
        if plain is not None:
            plain.inc(n)
            continue
        head, _, rest = name.partition(".")
        if head == "dead_letters" and rest:
            stage, _, reason = rest.partition(".")
            DEAD_LETTERS.labels(stage, reason or stage).inc(n)
        elif head in _BY_FIELD_AND_CLASS and rest:
            field, _, error_class = rest.partition(".")
            _BY_FIELD_AND_CLASS[head].labels(field, error_class).inc(n)


def record_inference(batch_size: int, latency_s: float) -> None:
    INFERENCE_BATCH_SIZE.observe(batch_size)
    INFERENCE_LATENCY.observe(latency_s)


def record_poll(topic: str, partition: int, position: int, highwater: int | None) -> None:
    """A successful poll of one partition: its lag, and the time of the reader's last poll."""
    global _last_poll_monotonic
    if highwater is not None:
        CONSUMER_LAG.labels(topic, str(partition)).set(max(0, highwater - position))
    LAST_POLL.set_to_current_time()
    _last_poll_monotonic = time.monotonic()


def seconds_since_last_poll() -> float | None:
    return None if _last_poll_monotonic is None else time.monotonic() - _last_poll_monotonic


def health(state: str, poll_age_s: float | None, stale_after_s: float = STALE_POLL_S) -> tuple[bool, str]:
    """(healthy, a one-line reason): running, and reading Kafka recently.

    >>> health("RUNNING", 0.4)
    (True, 'ok: running, last Kafka poll 0 s ago')
    >>> health("RUNNING", None)
    (False, 'starting: the job has not polled Kafka yet')
    >>> health("RUNNING", 75.0)
    (False, 'stalled: no Kafka poll for 75 s')
    >>> health("CANCELLING", 0.4)
    (False, 'the job is CANCELLING')
    """
    if state != "RUNNING":
        return False, f"the job is {state}"
    if poll_age_s is None:
        return False, "starting: the job has not polled Kafka yet"
    if poll_age_s > stale_after_s:
        return False, f"stalled: no Kafka poll for {poll_age_s:.0f} s"
    return True, f"ok: running, last Kafka poll {poll_age_s:.0f} s ago"


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # the base class's signature
        """Scrapes every few seconds would fill the log; Prometheus records failed scrapes itself."""


def serve(port: int, address: str, healthy: Callable[[], tuple[bool, str]]) -> WSGIServer:
    """Serves /healthz and, on every other path, the metrics; port 0 picks a free port."""
    metrics_app = make_wsgi_app()

    def app(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            ok, reason = healthy()
            start_response("200 OK" if ok else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8")])
            return [f"{reason}\n".encode()]
        return metrics_app(environ, start_response)

    server = make_server(address, port, app, server_class=_Server, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metafix-metrics", daemon=True).start()
    log.info("metafix stream: metrics on http://%s:%d/metrics, health on /healthz", address, server.server_port)
    return server
