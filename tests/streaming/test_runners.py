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
