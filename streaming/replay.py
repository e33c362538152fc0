"""``metafix replay``: the streaming job's logic over bounded inputs.

    metafix replay --input 'archive/**/*.avro' --output out.jsonl --format jsonl
    metafix replay --input events.jsonl --output out.avro --format avro
    metafix replay --bootstrap-servers 127.0.0.1:9092 --input-topic catalog.updates \\
        --start-from 2026-11-01T00:00:00Z --stop-at 2026-11-02T00:00:00Z --output day.jsonl

Inputs: JSON lines (one event per line), Avro container files of
``CatalogUpdateEvent`` or of ``ArchivedEvent`` (the stream's archive), or a
Kafka topic between two positions. Records go through the same
``CorrectCatalog`` composite as the stream. Outputs: one file (``--output``)
and/or a Kafka topic; dead letters go to ``<output>.dead_letters.jsonl``.
"""

from __future__ import annotations

import dataclasses
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from schemas import CORRECTED_RECORD
from streaming import preflight
from streaming.composites import (
    DEAD_LETTER,
    CorrectCatalog,
    CorrectionSettings,
    EncodeOutputs,
    merged_dead_letters,
)
from streaming.eventlog import ReadEventLog
from streaming.kafkaio import ConsumerConfig, ProducerConfig, ReadFromKafka
from streaming.metrics_summary import print_summary
from streaming.options import MetafixOptions, ReplayConfig, replay_config, wants_help
from streaming.pipeline import WriteOutputs
from streaming.profile_job import build_profile_dir
from streaming.runners import pipeline_runner, with_local_defaults
from transforms import records


class ProgressFn(beam.DoFn):
    """Counts records on local runs and prints a progress line to stderr about once a second."""

    def setup(self) -> None:
        self._count = 0
        self._started = time.monotonic()
        self._last = 0.0

    def process(self, element: Any) -> Iterator[Any]:
        self._count += 1
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            rate = self._count / max(now - self._started, 1e-9)
            print(f"\rreplay: {self._count:,} records  {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
        yield element

    def teardown(self) -> None:
        print(f"\rreplay: {self._count:,} records done", file=sys.stderr, flush=True)


def dead_letter_path(output: str) -> str:
    return f"{output}.dead_letters.jsonl"


class WriteRecordFile(beam.PTransform):
    """Corrected records to one file: JSON lines or an Avro container."""

    def __init__(self, path: str, output_format: str):
        super().__init__()
        self._path = path
        self._format = output_format

    def expand(self, corrected: beam.PCollection) -> beam.PCollection:
        if self._format == "avro":
            return corrected | "WriteAvro" >> beam.io.WriteToAvro(
                self._path, CORRECTED_RECORD, num_shards=1, shard_name_template=""
            )
        return (
            corrected
            | "ToJsonLines" >> beam.Map(records.to_json_line)
            | "WriteJsonLines" >> beam.io.WriteToText(self._path, num_shards=1, shard_name_template="")
        )


def profile_dir_for(config: ReplayConfig) -> str:
    """Where a replay keeps the profile it builds from its input: beside its output."""
    return f"{config.output}.profile" if config.output else tempfile.mkdtemp(prefix="metafix-profile-")


def build_replay_pipeline(p: beam.Pipeline, config: ReplayConfig) -> None:
    if config.input_pattern:
        events = p | "ReadEventLog" >> ReadEventLog(config.input_pattern)
    else:
        events = p | "ReadEvents" >> ReadFromKafka(
            ConsumerConfig(
                config.kafka.bootstrap_servers,
                topics=(config.input_topic,),
                group_id=None,
                start=config.start_from,
                stop=config.stop_at,
                security=config.kafka.security,
            )
        )
    if config.progress:
        events = events | "ReportProgress" >> beam.ParDo(ProgressFn())
    outputs = events | "CorrectCatalog" >> CorrectCatalog(
        CorrectionSettings(config.model_dir, config.batch_size, config.apply_threshold, config.review_threshold,
                           profile_dir=config.profile_dir),
        config.max_payload_bytes,
    )
    if config.output:
        outputs.corrected | "WriteCorrectedFile" >> WriteRecordFile(config.output, config.output_format)
        (
            merged_dead_letters(outputs)
            | "DeadLettersToJson" >> beam.Map(records.to_json_line)
            | "WriteDeadLetterFile" >> beam.io.WriteToText(
                dead_letter_path(config.output), num_shards=1, shard_name_template=""
            )
        )
    if config.output_topic:
        encoded = outputs | "EncodeOutputs" >> EncodeOutputs()
        encoded | "WriteOutputs" >> WriteOutputs(
            ProducerConfig(config.kafka.bootstrap_servers, security=config.kafka.security),
            {"corrected": config.output_topic, DEAD_LETTER: config.dead_letter_topic},
        )


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix replay``: the streaming logic over event-log files or a bounded Kafka range."""
    if wants_help(argv, "metafix replay", __doc__):
        return 0
    options = PipelineOptions(list(argv or []))
    config = replay_config(options, interactive=sys.stderr.isatty())
    if config.kafka is not None:
        preflight.check_topics(
            config.kafka,
            {"--input-topic": config.input_topic, "--output-topic": config.output_topic,
             "--dead-letter-topic": config.dead_letter_topic},
        )
    preflight.check_model(config.model_dir)
    if config.input_pattern and config.profile_dir is None:
        # A backfill learns its sources' conventions from itself.
        profile_dir = profile_dir_for(config)
        build_profile_dir(config.input_pattern, profile_dir, PipelineOptions(list(argv or [])))
        config = dataclasses.replace(config, profile_dir=profile_dir)
        print(f"replay: profile of the input in {profile_dir}", file=sys.stderr, flush=True)
    options = with_local_defaults(options, streaming=False)
    pipeline = beam.Pipeline(runner=pipeline_runner(options), options=options)
    build_replay_pipeline(pipeline, config)
    started = time.monotonic()
    result = pipeline.run()
    result.wait_until_finish()
    values = print_summary(result, metrics_file=options.view_as(MetafixOptions).metrics_file)
    elapsed = time.monotonic() - started
    n = values.get("records_in", 0) + values.get("dead_letters", 0)
    print(f"replay: {n:,} records in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f} records/s)", flush=True)
    return 0
