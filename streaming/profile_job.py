"""``metafix profile``: the catalog profile of event logs, as a Beam batch pipeline.

    metafix profile --input 'archive/**/*.avro' --output profiles/
    metafix profile --input events.jsonl --output profiles/

Reads event logs (JSON lines, Avro ``CatalogUpdateEvent`` files, or the
stream's ``ArchivedEvent`` archive), turns each decodable event into a
one-record profile (``transforms.profile.profile_of_record``), merges them
with ``CombineGlobally`` and writes ``DIR/<version>/profile.json`` and
``DIR/LATEST`` (``model/profilestore.py``). Undecodable lines are skipped and
counted: they carry no catalog knowledge. A running ``metafix stream
--profile DIR`` picks the new version up without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from model.profilestore import latest_version, save_profile
from streaming.eventlog import ReadEventLog
from streaming.options import ConfigError, MetafixOptions, wants_help
from streaming.runners import pipeline_runner, with_local_defaults
from transforms import codec
from transforms.profile import ProfileData, profile_of_record

METRICS_NAMESPACE = "metafix"


class MergeProfilesFn(beam.CombineFn):
    """``ProfileData.merge`` as a combiner (associative and commutative)."""

    def create_accumulator(self) -> ProfileData:
        return ProfileData()

    def add_input(self, accumulator: ProfileData, element: ProfileData) -> ProfileData:
        return accumulator.merge(element)

    def merge_accumulators(self, accumulators: Iterable[ProfileData]) -> ProfileData:
        merged = ProfileData()
        for a in accumulators:
            merged = merged.merge(a)
        return merged

    def extract_output(self, accumulator: ProfileData) -> ProfileData:
        return accumulator


class RecordProfileFn(beam.DoFn):
    """One event-log record -> the profile of its track; undecodable ones are counted."""

    def __init__(self) -> None:
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "profile_skipped_undecodable")

    def process(self, record: Any) -> Iterator[ProfileData]:
        try:
            event = codec.decode_event(record.value, codec.DEFAULT_MAX_PAYLOAD_BYTES)
        except codec.DecodeError:
            self._skipped.inc()
            return
        yield profile_of_record(event.get("source") or "", event["track"])


class BuildProfile(beam.PTransform):
    """Kafka-like records in; one ``ProfileData`` out."""

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "ProfileEachRecord" >> beam.ParDo(RecordProfileFn())
            | "MergeProfiles" >> beam.CombineGlobally(MergeProfilesFn())
        )


class _SaveProfileFn(beam.DoFn):
    def __init__(self, output_dir: str) -> None:
        self._output_dir = output_dir

    def process(self, profile: ProfileData) -> Iterator[str]:
        yield save_profile(profile, self._output_dir)


def build_profile_pipeline(p: beam.Pipeline, input_pattern: str, output_dir: str) -> beam.PCollection:
    return (
        p
        | "ReadEventLog" >> ReadEventLog(input_pattern)
        | "BuildProfile" >> BuildProfile()
        | "WriteProfile" >> beam.ParDo(_SaveProfileFn(output_dir))
    )


def build_profile_dir(input_pattern: str, output_dir: str, options: PipelineOptions) -> None:
    """Run the profile pipeline to the end (replay calls this before a backfill)."""
    options = with_local_defaults(options, streaming=False)
    pipeline = beam.Pipeline(runner=pipeline_runner(options), options=options)
    build_profile_pipeline(pipeline, input_pattern, output_dir)
    pipeline.run().wait_until_finish()


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix profile --input LOGS --output DIR``."""
    if wants_help(argv, "metafix profile", __doc__):
        return 0
    options = PipelineOptions(list(argv or []))
    o = options.view_as(MetafixOptions)
    if not o.input or not o.output:
        raise ConfigError("give --input (event-log files or the archive) and --output (profile directory)")
    build_profile_dir(o.input, o.output, options)
    print(f"metafix profile: {o.output}/{latest_version(o.output)}", flush=True)
    return 0
