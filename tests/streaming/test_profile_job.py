"""``metafix profile``: a Beam batch pipeline writing a versioned profile."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from model.profilestore import latest_version, load_latest
from streaming.composites import RecordBatch
from streaming.kafkaio import KafkaRecord
from streaming.profile_job import BuildProfile, MergeProfilesFn, build_profile_pipeline
from transforms.profile import build_profile


def _record(source: str, **track: str) -> KafkaRecord:
    value = json.dumps({"event_id": "e", "source": source, "track": track}).encode()
    return KafkaRecord("t", 0, 0, 0, None, value)


TRACKS = [("feed", {"artist": "KAROL G", "title": "Provenza", "release_date": "4/26/2024"}),
          ("feed", {"artist": "benny blanco", "title": "Eastside", "release_date": "12/31/2023"}),
          ("other", {"artist": "KAROL G", "title": "Bichota", "duration_ms": "3.2"})]


def test_build_profile_merges_records_as_build_profile_does() -> None:
    with TestPipeline() as p:
        records = [_record(s, **t) for s, t in TRACKS] + [KafkaRecord("t", 0, 1, 0, None, b"{not json")]
        # As ReadEventLog gives them: batches of records, here two.
        batches = [RecordBatch((0,), records[:2]), RecordBatch((1,), records[2:])]
        profile = p | beam.Create(batches) | BuildProfile()
        assert_that(profile | beam.Map(lambda pr: pr.to_json()), equal_to([build_profile(TRACKS).to_json()]))


def test_profile_pipeline_writes_a_versioned_profile_and_latest(tmp_path) -> None:
    log = tmp_path / "events.jsonl"
    log.write_text("".join(json.dumps({"event_id": f"e{i}", "source": s, "track": t}) + "\n"
                           for i, (s, t) in enumerate(TRACKS)))
    with TestPipeline() as p:
        build_profile_pipeline(p, str(log), str(tmp_path / "profiles"))
    expected = build_profile(TRACKS)
    assert latest_version(tmp_path / "profiles") == expected.version
    assert load_latest(tmp_path / "profiles") == expected
    assert (tmp_path / "profiles" / expected.version / "profile.json").read_text() == expected.to_json()


def test_the_combiner_adds_in_place_and_merges_accumulators_as_build_profile_does() -> None:
    combine = MergeProfilesFn()
    halves = [combine.create_accumulator(), combine.create_accumulator()]
    for i, pair in enumerate(TRACKS):
        halves[i % 2] = combine.add_input(halves[i % 2], [pair])
    first_half = combine.extract_output(halves[0])

    merged = combine.extract_output(combine.merge_accumulators(halves))

    assert merged == build_profile(TRACKS)
    # What was extracted before is not changed by later merges.
    assert first_half == build_profile(TRACKS[::2])
