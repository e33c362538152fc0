"""The live metrics take the job's counter names, and the endpoint serves them with /healthz.

``tests/streaming/test_observability.py`` scrapes a running job on the real broker.
"""

from __future__ import annotations

import socket
from collections import Counter

import pytest
from prometheus_client import REGISTRY

from harness.jobs import http_get
from streaming import live_metrics, main


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_counter_names_feed_the_labelled_metrics() -> None:
    names = {
        ("metafix_records_in_total", ()): "records_in",
        ("metafix_dead_letters_total", (("stage", "decode"), ("reason", "invalid_json"))): "dead_letters.decode.invalid_json",
        ("metafix_dead_letters_total", (("stage", "correct"), ("reason", "KeyError"))): "dead_letters.correct.KeyError",
        ("metafix_corrections_total", (("field", "title"), ("error_class", "all_caps"))): "corrected.title.all_caps",
        ("metafix_flags_total", (("field", "*"), ("error_class", "model_error"))): "flagged.*.model_error",
        ("metafix_detections_total", (("field", "isrc"), ("error_class", "isrc_format"))): "detected.isrc.isrc_format",
    }
    before = {key: _value(key[0], **dict(key[1])) for key in names}
    total_dead = sum(_value("metafix_dead_letters_total", **dict(k[1])) for k in names if "dead" in k[0])
    live_metrics.record_counts(Counter({name: 2 for name in names.values()} | {"dead_letters": 4}))
    for key, was in before.items():
        assert _value(key[0], **dict(key[1])) == was + 2, key
    # The total is the sum over reasons, not counted a second time.
    assert sum(_value("metafix_dead_letters_total", **dict(k[1])) for k in names if "dead" in k[0]) == total_dead + 4


def test_a_poll_sets_the_partitions_lag() -> None:
    live_metrics.record_poll("lag-topic", 4, position=90, highwater=100)
    assert _value("metafix_consumer_lag", topic="lag-topic", partition="4") == 10
    live_metrics.record_poll("lag-topic", 4, position=100, highwater=100)
    assert _value("metafix_consumer_lag", topic="lag-topic", partition="4") == 0
    assert live_metrics.seconds_since_last_poll() is not None


def test_the_endpoint_serves_metrics_and_health() -> None:
    answers = iter([(True, "ok: running"), (False, "the job is CANCELLING")])
    server = live_metrics.serve(0, "127.0.0.1", lambda: next(answers))
    try:
        base = f"http://127.0.0.1:{server.server_port}"
        live_metrics.record_inference(64, 0.12)
        status, body = http_get(f"{base}/metrics")
        assert status == 200
        assert "metafix_inference_batch_size_bucket" in body and "metafix_inference_latency_seconds_sum" in body
        assert http_get(f"{base}/healthz") == (200, "ok: running\n")
        assert http_get(f"{base}/healthz") == (503, "the job is CANCELLING\n")
    finally:
        server.shutdown()
        server.server_close()


def test_a_metrics_port_in_use_fails_the_stream_in_one_line_before_it_starts(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(main.preflight, "check_stream", lambda config: None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main.main([
            "stream", "--bootstrap-servers=127.0.0.1:1", "--input-topic=in", "--output-topic=out",
            "--dead-letter-topic=dead", "--model-dir=/nowhere", "--runner=FnApiRunner", f"--metrics-port={port}",
            "--partition-discovery-interval-s=0",  # the FnApiRunner would warn that it cannot watch
        ])
    assert code == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"metafix stream: --metrics-port {port}: Address already in use"]
