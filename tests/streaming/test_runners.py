"""The runner chosen when the command line names none, and a missing Prism binary."""

from __future__ import annotations

import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

from streaming import main, runners
from streaming.options import ConfigError


@pytest.fixture
def no_prism(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv("METAFIX_PRISM", raising=False)
    monkeypatch.setattr(runners, "PRISM_BINARY", tmp_path / "no-prism")
    monkeypatch.setattr(runners.shutil, "which", lambda name: None)


def test_bounded_replays_default_to_the_fnapi_runner() -> None:
    options = runners.with_local_defaults(PipelineOptions([]), streaming=False)
    assert options.view_as(StandardOptions).runner == "FnApiRunner"


def test_a_missing_prism_binary_is_a_config_error(no_prism: None) -> None:
    with pytest.raises(ConfigError, match="no Prism binary"):
        runners.with_local_defaults(PipelineOptions([]), streaming=True)
    # A runner named on the command line needs no Prism.
    options = runners.with_local_defaults(PipelineOptions(["--runner=FnApiRunner"]), streaming=True)
    assert options.view_as(StandardOptions).runner == "FnApiRunner"


def test_metafix_stream_without_prism_says_so_in_one_line(
    no_prism: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(main.preflight, "check_stream", lambda config: None)
    code = main.main([
        "stream", "--bootstrap-servers=127.0.0.1:1", "--input-topic=in", "--output-topic=out",
        "--dead-letter-topic=dead", "--model-dir=/nowhere",
    ])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "metafix stream: no Prism binary: run `make prism`, set $METAFIX_PRISM or pass --runner"
    ]


def test_bundles_started_after_shorten_state_sampling_sample_every_2_ms(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.worker import statesampler
    from apache_beam.utils.counters import CounterFactory

    init = statesampler.StateSampler.__init__
    # Beam's own default, whatever ran before; put back after the test.
    monkeypatch.setattr(init, "__defaults__", (statesampler.DEFAULT_SAMPLING_PERIOD_MS,))

    # A bundle processor creates its sampler with these two arguments only.
    assert statesampler.StateSampler("before", CounterFactory()).sampling_period_ms == 200
    assert runners.shorten_state_sampling() is True
    assert statesampler.StateSampler("after", CounterFactory()).sampling_period_ms == runners.STATE_SAMPLING_PERIOD_MS == 2


def test_shorten_state_sampling_leaves_a_sampler_with_another_signature_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    from apache_beam.runners.worker import statesampler

    class OtherSampler:
        def __init__(self, prefix: str, counter_factory: object, period_ms: int = 200, ratio: float = 1.2) -> None:
            self.period_ms = period_ms

    monkeypatch.setattr(statesampler, "StateSampler", OtherSampler)
    assert runners.shorten_state_sampling() is False
    assert OtherSampler("x", None).period_ms == 200
