"""The shared composites: a model that fails, an output Kafka cannot carry, and encoded batches
byte-identical to fastavro's encoding of every record."""

from __future__ import annotations

import gc
import io
import json
import random
import struct
from types import SimpleNamespace
from typing import Any

import apache_beam as beam
import fastavro
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.utils import shared

from harness.eventgen import catalog_messages
from model.profilestore import save_profile
from model.serving import Predictor
from schemas import AUDIT_ENTRY, AUDIT_SCHEMA_ID, CORRECTED_RECORD, CORRECTED_SCHEMA_ID
from streaming.composites import (
    GC_YOUNG_THRESHOLD,
    MODEL_ERROR,
    CatalogBatch,
    CorrectBatchFn,
    CorrectCatalog,
    CorrectionSettings,
    EncodeFn,
    RouteFn,
    chunk_bounds,
    longest_text,
)
from streaming.kafkaio import KafkaRecord
from transforms import codec, records
from transforms.fields import SCORED_FIELDS
from transforms.policy import RecordScores, Thresholds, correct_track
from transforms.profile import build_profile


def test_longest_text_looks_at_every_text_value() -> None:
    assert longest_text({"title": "abc", "isrc": None, "featured_artists": ["x" * 9]}) == 9
    assert longest_text({"title": None, "featured_artists": []}) == 0


def _outcome(record: dict) -> tuple[Any, ...]:
    """What the test compares of a corrected record, in a hashable form."""
    first_flag = record["review"][0] if record["review"] else {}
    return (
        record["event_id"],
        first_flag.get("field"),
        first_flag.get("error_class"),
        json.dumps(record["review"][1:], default=str, sort_keys=True),
        json.dumps(record["corrections"], default=str, sort_keys=True),
        json.dumps(record["track"], default=str, sort_keys=True),
    )


def _event_id(record: dict) -> str:
    return record["event_id"]


def _corrected(batch: CatalogBatch) -> list[dict]:
    return batch.corrected


def _review(batch: CatalogBatch) -> list[dict]:
    return batch.review


def _dead_letters(batch: CatalogBatch) -> list[dict]:
    return batch.dead_letters


@pytest.mark.slow
def test_a_batch_the_model_fails_on_goes_out_uncorrected_and_flagged(tiny_model_dir, tmp_path) -> None:
    from harness.chaos import write_failing_model
    from model.serving import Predictor

    # A real SavedModel that loads like the tiny one but fails on every batch.
    failing = write_failing_model(tmp_path / "failing-model", like=tiny_model_dir)
    predictor = Predictor.load(failing)
    messages = list(catalog_messages(24, seed=5, bad_every=0))
    inputs = [KafkaRecord("in", 0, i, 1_700_000_000_000, m.key, m.value) for i, m in enumerate(messages)]
    expected = []
    for m in messages:
        event = codec.decode_event(m.value)
        # Uncorrected: the policy with no model scores; the model_error flag comes first.
        result = correct_track(event["track"], RecordScores(fields={}), thresholds=predictor.thresholds,
                               model_version=predictor.version)
        expected.append((event["event_id"], "*", MODEL_ERROR, json.dumps(result.review, default=str, sort_keys=True),
                         json.dumps(result.corrections, default=str, sort_keys=True),
                         json.dumps(result.track, default=str, sort_keys=True)))

    with BeamTestPipeline() as p:
        # Two input batches; the first is scored in chunks of 8.
        outputs = (p | "Batches" >> beam.Create([inputs[:20], inputs[20:]])
                   | "CorrectCatalog" >> CorrectCatalog(CorrectionSettings(str(failing), batch_size=8)))
        assert_that(outputs | "Corrected" >> beam.FlatMap(_corrected) | "Outcome" >> beam.Map(_outcome),
                    equal_to(expected), label="AllOut")
        assert_that(outputs | "Review" >> beam.FlatMap(_review) | "ReviewIds" >> beam.Map(_event_id),
                    equal_to([m.event_id for m in messages]), label="AllForReview")
        assert_that(outputs | "DeadLetters" >> beam.FlatMap(_dead_letters), equal_to([]), label="NoDeadLetters")

    # Without scores only the policy's deterministic rules apply (confidence 1.0): no model class.
    assert all(c["confidence"] == 1.0 for e in expected for c in json.loads(e[4]))


def _dead_letter_summary(letter: dict) -> tuple[Any, ...]:
    return letter["stage"], letter["error_type"], letter["offset"], letter["event_id"], letter["payload_size"] > 64


def _corrected_record(event: dict, scores: RecordScores, offset: int) -> dict:
    result = correct_track(event["track"], scores, thresholds=Thresholds(), model_version="m1")
    return records.corrected_record(event, track=result.track, corrections=result.corrections,
                                    review=result.review, model_version="m1",
                                    input_coordinates=records.coordinates("in", 0, offset, 1_700_000_000_000))


def _encode_batch(batch: CatalogBatch, max_bytes: int = codec.MAX_OUTPUT_BYTES) -> Any:
    fn = EncodeFn(max_bytes)
    fn.setup()
    [encoded] = fn.process(batch)
    return encoded


def test_an_output_too_large_for_kafka_becomes_a_dead_letter() -> None:
    event = {"event_id": "e1", "entity_id": "x", "source": None, "event_time": None,
             "track": {"title": "A title", "artist": "An artist", "featured_artists": []}}
    record = _corrected_record(event, RecordScores(fields={}), offset=7)

    encoded = _encode_batch(CatalogBatch((), [record], [], [], []), max_bytes=64)

    assert encoded.corrected == [] and encoded.review == [] and encoded.audit == []
    [(key, value)] = encoded.dead_letters
    _, letter = codec.confluent_decode(value)
    assert _dead_letter_summary(letter) == ("encode", "OutputTooLarge", 7, "e1", True)


def _fastavro_framed(schema_id: int, schema: dict, record: dict) -> bytes:
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema, record)
    return struct.pack(">bI", 0, schema_id) + body.getvalue()


def _random_scores(rng: random.Random) -> RecordScores:
    return RecordScores(
        fields={spec.name: (rng.choice(spec.classes), rng.random()) for spec in SCORED_FIELDS},
        swapped=rng.random(),
    )


def test_encoded_batches_are_fastavros_bytes_for_every_record() -> None:
    # Thousands of records with random model scores, so that corrections, review flags and
    # audit entries of every kind occur; review entries reuse the corrected record's bytes.
    rng = random.Random(12)
    messages = list(catalog_messages(3000, seed=12, bad_every=0))
    corrected = [_corrected_record(codec.decode_event(m.value), _random_scores(rng), offset=i)
                 for i, m in enumerate(messages)]
    [routed] = RouteFn().process(CatalogBatch((), corrected, [], [], []))
    assert len(routed.review) > 300 and len(routed.audit) > 300

    encoded = _encode_batch(routed)

    def expected(schema_id: int, schema: dict, outputs: list[dict]) -> list[tuple[bytes | None, bytes]]:
        return [(r["entity_id"].encode() if r["entity_id"] is not None else None,
                 _fastavro_framed(schema_id, schema, r)) for r in outputs]

    assert encoded.corrected == expected(CORRECTED_SCHEMA_ID, CORRECTED_RECORD, routed.corrected)
    assert encoded.review == expected(CORRECTED_SCHEMA_ID, CORRECTED_RECORD, routed.review)
    assert encoded.audit == expected(AUDIT_SCHEMA_ID, AUDIT_ENTRY, routed.audit)
    assert encoded.dead_letters == []


class _Other:
    """Any other object a step of the same process holds through a Beam Shared handle."""


def test_the_model_is_loaded_once_however_often_the_step_is_set_up(monkeypatch, tmp_path) -> None:
    loads = []

    def load(model_dir: str, threads: int | None = None) -> SimpleNamespace:
        loads.append(model_dir)
        return SimpleNamespace(thresholds=Thresholds(apply=0.9, review=0.5), version="v1", version_dir=str(tmp_path))

    monkeypatch.setattr(Predictor, "load", load)
    handle = shared.Shared()
    first = CorrectBatchFn(CorrectionSettings(model_dir="model/export"), handle, shared.Shared())
    first.setup()
    # Beam keeps alive only the object last acquired through any Shared handle in the process.
    other = shared.Shared().acquire(_Other)
    gc.collect()
    # The SDK harness sets up a new instance when it runs bundles in parallel or replaces an idle one.
    second = CorrectBatchFn(CorrectionSettings(model_dir="model/export"), handle, shared.Shared())
    second.setup()

    assert loads == ["model/export"]
    assert other is not None


def test_the_catalog_profile_is_frozen_with_the_loaded_heap_and_so_is_a_newer_one(monkeypatch, tmp_path) -> None:
    # Left to the collector, the profile was scanned by every full collection a stream's
    # batches set off.
    monkeypatch.setattr(Predictor, "load", lambda model_dir, threads=None: SimpleNamespace(
        thresholds=Thresholds(apply=0.9, review=0.5), version="v1", version_dir=str(tmp_path)))
    profiles = tmp_path / "profiles"
    save_profile(build_profile([("s", {"artist": "KAROL G"})]), profiles)
    step = CorrectBatchFn(CorrectionSettings(model_dir="model/export", profile_dir=str(profiles),
                                             profile_refresh_s=0.0), shared.Shared(), shared.Shared())
    step.setup()
    step.start_bundle()
    first = step._profile
    first_frozen = id(first.artists) not in {id(o) for o in gc.get_objects()}
    save_profile(build_profile([("s", {"artist": "benny blanco"})]), profiles)
    step.start_bundle()
    newer = step._profile
    newer_frozen = id(newer.artists) not in {id(o) for o in gc.get_objects()}

    assert newer.is_known_artist("benny blanco") and not first.is_known_artist("benny blanco")
    assert first_frozen
    assert newer_frozen
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD


@pytest.mark.parametrize("n", [0, 1, 127, 128, 129, 512, 640, 641, 2000, 5000])
def test_model_calls_cover_the_batch_in_order_each_at_most_the_batch_size(n: int) -> None:
    bounds = chunk_bounds(n, 512)

    assert [i for start, end in bounds for i in range(start, end)] == list(range(n))
    assert all(0 < end - start <= 512 for start, end in bounds)
    # The first call, which nothing overlaps, is the short one.
    assert not bounds or bounds[0][1] - bounds[0][0] == min(n, 128)
