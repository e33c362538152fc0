"""Command-line options: every metafix flag in both spellings."""

from __future__ import annotations

import argparse

import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from streaming.archive_compact import ArchiveCompactOptions
from streaming.options import MetafixOptions, stream_config


def _flags(options_class: type[PipelineOptions]) -> list[argparse.Action]:
    parser = argparse.ArgumentParser()
    options_class._add_argparse_args(parser)  # the options class owns its flags
    return [a for a in parser._actions if a.dest != "help"]


@pytest.mark.parametrize("options_class", [MetafixOptions, ArchiveCompactOptions])
def test_every_flag_is_accepted_in_beams_snake_case_too(options_class: type[PipelineOptions]) -> None:
    for action in _flags(options_class):
        [dashed] = [f for f in action.option_strings if f.startswith("--") and "_" not in f]
        snake = "--" + dashed[2:].replace("-", "_")
        value = action.choices[-1] if action.choices else "7"
        for flag in {dashed, snake}:
            parsed = PipelineOptions([f"{flag}={value}"]).view_as(options_class)
            got = getattr(parsed, action.dest)
            assert got in (value, int(value) if value.isdigit() else value, [value]), (flag, got)


def test_a_stream_configured_in_snake_case_is_the_same_stream() -> None:
    common = ["--output-topic=o", "--model-dir=/m"]
    dashed = ["--bootstrap-servers=b:9092", "--input-topic=i", "--dead-letter-topic=d",
              "--max-records-per-poll=5", "--start-from=earliest"]
    snake = ["--" + flag[2:].replace("-", "_") + "=" + value for flag, _, value in (f.partition("=") for f in dashed)]
    assert snake[0] == "--bootstrap_servers=b:9092"
    assert stream_config(PipelineOptions(common + snake)) == stream_config(PipelineOptions(common + dashed))
