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
Files replayed without ``--profile`` are profiled first, in the same pipeline
(``ProfileInput``, into ``<output>.profile/``), and corrected against that profile.

From 32 MiB of input files, a local replay corrects in two worker processes
(``--direct_num_workers=2 --direct_running_mode=multi_processing``) unless the
command line names the runner or those options.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import posixpath
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions

from schemas import CORRECTED_RECORD, schema_text
from streaming import preflight
from streaming.batch_coder import BatchList
from streaming.composites import (
    DEAD_LETTER,
    CatalogBatch,
    CorrectCatalog,
    CorrectionSettings,
    EncodeOutputs,
    RecordBatch,
)
from streaming.eventlog import ReadEventLog, matched_bytes
from streaming.kafkaio import ConsumerConfig, ReadFromKafka
from streaming.metrics_summary import print_summary
from streaming.options import MetafixOptions, ReplayConfig, replay_config, wants_help
from streaming.pipeline import WriteOutputs, producer_config
from streaming.profile_job import ProfileEventLog
from streaming.runners import (
    pipeline_runner,
    with_local_defaults,
    with_worker_processes,
    workers_are_processes,
)
from transforms import avro_writer, codec, records


class ProgressFn(beam.DoFn):
    """Counts records on local runs and prints a progress line to stderr about once a second."""

    def setup(self) -> None:
        self._count = 0
        self._started = time.monotonic()
        self._last = 0.0

    def process(self, batch: Any) -> Iterator[Any]:
        self._count += len(batch.records if isinstance(batch, RecordBatch) else batch)
        now = time.monotonic()
        if now - self._last >= 1.0:
            self._last = now
            rate = self._count / max(now - self._started, 1e-9)
            print(f"\rreplay: {self._count:,} records  {rate:,.0f}/s", end="", file=sys.stderr, flush=True)
        yield batch

    def teardown(self) -> None:
        print(f"\rreplay: {self._count:,} records done", file=sys.stderr, flush=True)


# An Avro container's sync marker, fixed so that the same input gives the same bytes. A
# reader checks it after each block, and one that starts mid-file looks for it: a fixed
# 16-byte value is as unlikely to occur in compressed data as a random one.
_AVRO_SYNC = hashlib.sha256(b"metafix replay output").digest()[:16]
_CORRECTED_RECORD_FILE = "corrected_record.avsc"


def dead_letter_path(output: str) -> str:
    return f"{output}.dead_letters.jsonl"


def _part_name(position: tuple) -> str:
    """A file name that sorts like ``position``: numbers zero-padded, text as is."""
    return "-".join(f"{p:020d}" if isinstance(p, int) else str(p).replace("/", "_") for p in position)


class _WritePartsFn(beam.DoFn):
    """Writes each CatalogBatch's corrected records and dead letters to part files named by its position.

    Yields (kind, part path) for each part written; a batch's memory is all this holds.
    """

    def __init__(self, parts_dir: str, output_format: str):
        self._parts_dir = parts_dir
        self._format = output_format

    def process(self, batch: CatalogBatch) -> Iterator[tuple[str, str]]:
        name = _part_name(batch.position)
        if batch.corrected:
            path = posixpath.join(self._parts_dir, f"corrected-{name}")
            with FileSystems.create(path) as f:
                if self._format == "avro":
                    # One block, its sync marker left to the concatenation.
                    f.write(avro_writer.deflate_block([codec.avro_body(CORRECTED_RECORD, r) for r in batch.corrected]))
                else:
                    f.write("".join(records.to_json_line(r) + "\n" for r in batch.corrected).encode("utf-8"))
            yield "corrected", path
        if batch.dead_letters:
            path = posixpath.join(self._parts_dir, f"dead-{name}")
            with FileSystems.create(path) as f:
                f.write("".join(records.to_json_line(d) + "\n" for d in batch.dead_letters).encode("utf-8"))
            yield "dead", path


def concatenate_parts(parts: list[str], output: str, output_format: str) -> None:
    """Parts, in name order, into one file. An Avro part is one compressed block, copied as it
    is and followed by the sync marker; JSON-lines parts are copied."""
    with FileSystems.create(output + ".inprogress") as out:
        if output_format == "avro":
            # The schema file's text: the same header bytes in every process.
            out.write(avro_writer.container_header(schema_text(_CORRECTED_RECORD_FILE), "deflate", _AVRO_SYNC))
        for part in sorted(parts):
            with FileSystems.open(part, compression_type="uncompressed") as f:
                while chunk := f.read(1 << 20):
                    out.write(chunk)
            if output_format == "avro":
                out.write(_AVRO_SYNC)
    if FileSystems.exists(output):
        FileSystems.delete([output])
    FileSystems.rename([output + ".inprogress"], [output])


class _ConcatenateFn(beam.DoFn):
    """Every part path (one element) into the outputs; then the parts go."""

    def __init__(self, output: str, output_format: str, parts_dir: str):
        self._output = output
        self._format = output_format
        self._parts_dir = parts_dir

    def process(self, parts: list[tuple[str, str]]) -> None:
        corrected = [path for kind, path in parts if kind == "corrected"]
        dead = [path for kind, path in parts if kind == "dead"]
        concatenate_parts(corrected, self._output, self._format)
        concatenate_parts(dead, dead_letter_path(self._output), "jsonl")
        if FileSystems.exists(self._parts_dir):
            FileSystems.delete([self._parts_dir])


class WriteRecordFiles(beam.PTransform):
    """Corrected records to one file (JSON lines or an Avro container), dead letters to another.

    Each batch is written to a part file as it comes, so memory does not grow with the
    input; the parts are then concatenated in input order (by batch position), so the
    same input always gives the same files.
    """

    def __init__(self, path: str, output_format: str):
        super().__init__()
        self._path = path
        self._format = output_format

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        parts_dir = f"{self._path}.parts-{uuid.uuid4().hex[:12]}"
        return (
            batches
            | "WriteParts" >> beam.ParDo(_WritePartsFn(parts_dir, self._format))
            | "AllParts" >> beam.combiners.ToList()
            | "ConcatenateParts" >> beam.ParDo(_ConcatenateFn(self._path, self._format, parts_dir))
        )


def profile_dir_for(config: ReplayConfig) -> str:
    """Where a replay keeps the profile it builds from its input: beside its output."""
    return f"{config.output}.profile" if config.output else tempfile.mkdtemp(prefix="metafix-profile-")


def build_replay_pipeline(p: beam.Pipeline, config: ReplayConfig) -> None:
    if config.profile_from_input:
        # The same files are read twice, for the profile first. One pipeline, not two run
        # one after the other: its worker processes start once, and nothing is held
        # between the passes but the profile.
        profile = p | "ProfileInput" >> ProfileEventLog(config.input_pattern, config.profile_dir)
        batches = p | "ReadEventLog" >> ReadEventLog(config.input_pattern, after=profile)
    elif config.input_pattern:
        batches = p | "ReadEventLog" >> ReadEventLog(config.input_pattern)
    else:
        batches = p | "ReadEvents" >> ReadFromKafka(
            ConsumerConfig(
                config.kafka.bootstrap_servers,
                topics=(config.input_topic,),
                group_id=None,
                start=config.start_from,
                stop=config.stop_at,
                security=config.kafka.security,
                client=config.kafka.client,
            )
        )
    if config.progress:
        batches = batches | "ReportProgress" >> beam.ParDo(ProgressFn()).with_output_types(
            RecordBatch if config.input_pattern else BatchList)
    outputs = batches | "CorrectCatalog" >> CorrectCatalog(
        CorrectionSettings(config.model_dir, config.batch_size, config.apply_threshold, config.review_threshold,
                           profile_dir=config.profile_dir, profile_from_pipeline=config.profile_from_input),
        config.max_payload_bytes,
        config.schema_registry,
    )
    if config.output:
        outputs | "WriteFiles" >> WriteRecordFiles(config.output, config.output_format)
    if config.output_topic:
        topics = {"corrected": config.output_topic, DEAD_LETTER: config.dead_letter_topic}
        encoded = outputs | "EncodeOutputs" >> EncodeOutputs(registry=config.schema_registry, topics=topics)
        encoded | "WriteOutputs" >> WriteOutputs(producer_config(config.kafka), topics)


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix replay``: the streaming logic over event-log files or a bounded Kafka range."""
    if wants_help(argv, "metafix replay", __doc__):
        return 0
    args = list(argv or [])
    options = PipelineOptions(args)
    config = replay_config(options, interactive=sys.stderr.isatty())
    if config.kafka is not None:
        preflight.check_topics(
            config.kafka,
            {"--input-topic": config.input_topic, "--output-topic": config.output_topic,
             "--dead-letter-topic": config.dead_letter_topic},
        )
    if config.schema_registry is not None:
        preflight.check_schema_registry(config.schema_registry)
    input_bytes = matched_bytes(config.input_pattern) if config.input_pattern else 0
    options = with_worker_processes(options, args, input_bytes)
    if workers_are_processes(options):
        preflight.check_model_files(config.model_dir)
    else:
        preflight.check_model(config.model_dir)
    if config.input_pattern and config.profile_dir is None:
        # A backfill learns its sources' conventions from itself.
        config = dataclasses.replace(config, profile_dir=profile_dir_for(config), profile_from_input=True)
        print(f"replay: profile of the input in {config.profile_dir}", file=sys.stderr, flush=True)
    options = with_local_defaults(options, streaming=False)
    pipeline = beam.Pipeline(runner=pipeline_runner(options), options=options)
    build_replay_pipeline(pipeline, config)
    started = time.monotonic()
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as error:
        # Worker processes load the model only now (check_model_files): a model they cannot
        # load ends the replay with the same one line as a check before the start would.
        failure = preflight.model_load_failure(error)
        if failure is None:
            raise
        raise failure from error
    values = print_summary(result, metrics_file=options.view_as(MetafixOptions).metrics_file)
    elapsed = time.monotonic() - started
    n = values.get("records_in", 0) + values.get("dead_letters", 0)
    # 0 workers is the FnApiRunner's "one per core".
    workers = (options.view_as(DirectOptions).direct_num_workers or os.cpu_count()) if workers_are_processes(options) else 1
    print(f"replay: {n:,} records in {elapsed:.1f} s ({n / max(elapsed, 1e-9):,.0f} records/s, "
          f"{workers} worker process{'es' if workers > 1 else ''})", flush=True)
    return 0
