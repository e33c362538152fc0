"""``metafix profile``: the catalog profile of event logs or reference catalog
files, as a Beam batch pipeline.

    metafix profile --input 'archive/**/*.avro' --output profiles/
    metafix profile --input events.jsonl --output profiles/
    metafix profile --input 'catalogs/*.csv.gz' [--source store] --output profiles/

Reads event logs (JSON lines, Avro ``CatalogUpdateEvent`` files, or the
stream's ``ArchivedEvent`` archive) or, by their extension, reference catalog
files (CSV, ``streaming/catalogfiles.py``: each file is its own source unless
``--source`` names one), adds each decodable event or row into a profile
(``transforms.profile.ProfileBuilder``) a batch at a time, merges those with
``CombineGlobally`` and writes ``DIR/<version>/profile.json`` and
``DIR/LATEST`` (``model/profilestore.py``). Undecodable lines are skipped and
counted: they carry no catalog knowledge. A running ``metafix stream
--profile DIR`` picks the new version up without a restart.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.options.pipeline_options import PipelineOptions

from model.profilestore import latest_version, save_profile
from streaming.catalogfiles import ReadCatalogFiles, is_catalog_file
from streaming.composites import EventRecord, RecordBatch, settle_heap
from streaming.eventlog import ReadEventLog
from streaming.options import ConfigError, MetafixOptions, wants_help
from streaming.runners import pipeline_runner, with_local_defaults
from transforms import codec
from transforms.profile import ProfileBuilder, ProfileData

METRICS_NAMESPACE = "metafix"


class MergeProfilesFn(beam.CombineFn):
    """Batches of ``(source, track)`` pairs into one profile, added in place into a ``ProfileBuilder``.

    An input is a whole batch, not a pair: a replay's profile pass reads every event, and
    one element per record cost more in Beam than the profiling itself.
    """

    def create_accumulator(self) -> ProfileBuilder:
        return ProfileBuilder()

    def add_input(self, accumulator: ProfileBuilder,
                  pairs: Sequence[tuple[str, Mapping[str, Any]]]) -> ProfileBuilder:
        for source, track in pairs:
            accumulator.add_record(source, track)
        return accumulator

    def merge_accumulators(self, accumulators: Iterable[ProfileBuilder]) -> ProfileBuilder:
        merged = ProfileBuilder()
        for a in accumulators:
            merged.add(a.build())
        return merged

    def extract_output(self, accumulator: ProfileBuilder) -> ProfileData:
        return accumulator.build()


class EventTrackFn(beam.DoFn):
    """A batch of event-log records -> the list of their ``(source, track)``; undecodable ones are counted."""

    def __init__(self) -> None:
        self._skipped = Metrics.counter(METRICS_NAMESPACE, "profile_skipped_undecodable")

    def setup(self) -> None:
        # Every batch read allocates tens of thousands of objects, which set off collections
        # that scanned what the worker has loaded: the profile pass over 1M Avro events took
        # 13-15 s in two processes, 10.9 s with that frozen, 9.4-10.2 s with collections
        # spaced out as well.
        settle_heap()

    def process(self, batch: RecordBatch) -> Iterator[list[tuple[str, Mapping[str, Any]]]]:
        yield list(self._pairs(batch))

    def _pairs(self, batch: RecordBatch) -> Iterator[tuple[str, Mapping[str, Any]]]:
        for record in batch.records:
            if isinstance(record, EventRecord):
                # A row of an Avro event log: already a CatalogUpdateEvent.
                event = record.event
            else:
                try:
                    event = codec.decode_event(record.value, codec.DEFAULT_MAX_PAYLOAD_BYTES)
                except codec.DecodeError:
                    self._skipped.inc()
                    continue
            yield event.get("source") or "", event["track"]


class ProfileTracks(beam.PTransform):
    """Lists of ``(source, track)`` pairs in; one ``ProfileData`` out."""

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "MergeProfiles" >> beam.CombineGlobally(MergeProfilesFn())


class BuildProfile(beam.PTransform):
    """Batches of event-log records (``ReadEventLog``) in; one ``ProfileData`` out."""

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "DecodeEvents" >> beam.ParDo(EventTrackFn())
            | "ProfileTracks" >> ProfileTracks()
        )


class _SaveProfileFn(beam.DoFn):
    def __init__(self, output_dir: str) -> None:
        self._output_dir = output_dir

    def process(self, profile: ProfileData) -> Iterator[str]:
        yield save_profile(profile, self._output_dir)


class ProfileEventLog(beam.PTransform):
    """Event-log files -> their profile, written to ``output_dir``; out comes its version, one element."""

    def __init__(self, input_pattern: str, output_dir: str):
        super().__init__()
        self._input_pattern = input_pattern
        self._output_dir = output_dir

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (pbegin
                | "ReadEventLog" >> ReadEventLog(self._input_pattern)
                | "BuildProfile" >> BuildProfile()
                | "WriteProfile" >> beam.ParDo(_SaveProfileFn(self._output_dir)))


def build_profile_pipeline(p: beam.Pipeline, input_pattern: str, output_dir: str,
                           source: str | None = None) -> beam.PCollection:
    """Event logs or (by extension) reference catalog files -> ``output_dir``.

    ``source`` names the source of a catalog file's records (default: the file's name).
    """
    if not is_catalog_file(input_pattern):
        return p | "ProfileEventLog" >> ProfileEventLog(input_pattern, output_dir)
    return (p
            | "ReadCatalogFiles" >> ReadCatalogFiles(input_pattern, source)
            | "BatchTracks" >> beam.BatchElements(min_batch_size=256, max_batch_size=4096)
            | "ProfileTracks" >> ProfileTracks()
            | "WriteProfile" >> beam.ParDo(_SaveProfileFn(output_dir)))


def build_profile_dir(input_pattern: str, output_dir: str, options: PipelineOptions,
                      source: str | None = None) -> None:
    """Run the profile pipeline to the end (replay calls this before a backfill)."""
    options = with_local_defaults(options, streaming=False)
    pipeline = beam.Pipeline(runner=pipeline_runner(options), options=options)
    build_profile_pipeline(pipeline, input_pattern, output_dir, source)
    pipeline.run().wait_until_finish()


def run(argv: Sequence[str] | None = None) -> int:
    """``metafix profile --input LOGS|CATALOG_FILES [--source NAME] --output DIR``."""
    if wants_help(argv, "metafix profile", __doc__):
        return 0
    options = PipelineOptions(list(argv or []))
    o = options.view_as(MetafixOptions)
    if not o.input or not o.output:
        raise ConfigError("give --input (event-log files, the archive or reference catalog "
                          "files) and --output (profile directory)")
    if o.source and not is_catalog_file(o.input):
        raise ConfigError("--source names the source of reference catalog files (.csv, .csv.gz); "
                          "event logs carry their own")
    build_profile_dir(o.input, o.output, options, o.source)
    print(f"metafix profile: {o.output}/{latest_version(o.output)}", flush=True)
    return 0
