"""Dataflow Flex Template entry point: submits ``metafix stream`` to Dataflow and returns.

The template launcher runs this file (FLEX_TEMPLATE_PYTHON_PY_FILE in dataflow/Dockerfile)
with Dataflow's options (--runner, --project, --region, --temp_location, --setup_file ...)
and the template's parameters as ``--name=value``. The parameters are named in
dataflow/metadata.json in snake_case; the metafix flags are spelled with dashes, so each
parameter is passed on under its flag's name. Outside the launcher::

    python dataflow/launch.py --runner=DataflowRunner --project=P --region=us-central1 \\
        --temp_location=gs://B/tmp --setup_file=./setup.py \\
        --bootstrap_servers=broker:9092 --input_topic=catalog.updates ...

Unlike ``metafix stream`` it does not wait for the job: a streaming job runs until it is
drained or cancelled, and the launcher has to exit once the job is submitted.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineResult

from streaming import preflight
from streaming.options import ConfigError, stream_config
from streaming.pipeline import build_pipeline

METADATA_FILE = Path(__file__).resolve().with_name("metadata.json")


def parameter_names(metadata_file: Path = METADATA_FILE) -> list[str]:
    """The template's parameter names, as dataflow/metadata.json declares them."""
    return [p["name"] for p in json.loads(metadata_file.read_text(encoding="utf-8"))["parameters"]]


def pipeline_options(argv: Sequence[str]) -> PipelineOptions:
    # Template parameters are snake_case; metafix accepts its flags in that spelling too.
    options = PipelineOptions(list(argv))
    options.view_as(StandardOptions).streaming = True
    return options


def submit(argv: Sequence[str]) -> PipelineResult:
    """Checks the setup as ``metafix stream`` does, then submits the job without waiting."""
    options = pipeline_options(argv)
    config = stream_config(options)
    preflight.check_stream(config)
    pipeline = beam.Pipeline(options=options)
    build_pipeline(pipeline, config)
    return pipeline.run()


def main(argv: Sequence[str] | None = None) -> int:
    try:
        result = submit(list(sys.argv[1:] if argv is None else argv))
    except ConfigError as e:
        print(f"metafix dataflow launch: {e}", file=sys.stderr)
        return 2
    print(f"metafix dataflow launch: submitted, state {result.state}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
