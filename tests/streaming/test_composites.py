"""The shared composites in Beam pipelines: a model that fails, an output Kafka cannot carry."""

from __future__ import annotations

import json
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline as BeamTestPipeline
from apache_beam.testing.util import assert_that, equal_to

from harness.eventgen import catalog_messages
from schemas import CORRECTED_SCHEMA_ID
from streaming.composites import (
    DEAD_LETTER,
    MODEL_ERROR,
    CorrectCatalog,
    CorrectionSettings,
    EncodeFn,
    longest_text,
    merged_dead_letters,
)
from streaming.kafkaio import KafkaRecord
from transforms import codec, records
from transforms.policy import RecordScores, Thresholds, correct_track


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
        outputs = (p | "Records" >> beam.Create(inputs)
                   | "CorrectCatalog" >> CorrectCatalog(CorrectionSettings(str(failing), batch_size=8)))
        assert_that(outputs.corrected | "Outcome" >> beam.Map(_outcome), equal_to(expected), label="AllOut")
        assert_that(outputs.review | "ReviewIds" >> beam.Map(_event_id),
                    equal_to([m.event_id for m in messages]), label="AllForReview")
        assert_that(merged_dead_letters(outputs), equal_to([]), label="NoDeadLetters")

    # Without scores only the policy's deterministic rules apply (confidence 1.0): no model class.
    assert all(c["confidence"] == 1.0 for e in expected for c in json.loads(e[4]))


def _dead_letter_summary(letter: dict) -> tuple[Any, ...]:
    return letter["stage"], letter["error_type"], letter["offset"], letter["event_id"], letter["payload_size"] > 64


def test_an_output_too_large_for_kafka_becomes_a_dead_letter() -> None:
    event = {"event_id": "e1", "entity_id": "x", "source": None, "event_time": None,
             "track": {"title": "A title", "artist": "An artist", "featured_artists": []}}
    result = correct_track(event["track"], RecordScores(fields={}), thresholds=Thresholds(), model_version="m1")
    record = records.corrected_record(event, track=result.track, corrections=result.corrections,
                                      review=result.review, model_version="m1",
                                      input_coordinates=records.coordinates("in", 0, 7, 0))

    with BeamTestPipeline() as p:
        out = (p | "Records" >> beam.Create([record])
               | "Encode" >> beam.ParDo(EncodeFn(CORRECTED_SCHEMA_ID, "entity_id", max_bytes=64)).with_outputs(
                   DEAD_LETTER, main="encoded"))
        assert_that(out.encoded, equal_to([]), label="NothingEncoded")
        assert_that(out[DEAD_LETTER] | "Summary" >> beam.Map(_dead_letter_summary),
                    equal_to([("encode", "OutputTooLarge", 7, "e1", True)]), label="OneDeadLetter")
