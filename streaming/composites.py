"""The shared Beam composites: decode, correct and route catalog events.

``CorrectCatalog`` is the one composite that both ``metafix stream`` and
``metafix replay`` apply, so streaming and replay run exactly the same logic::

    outputs = records | "CorrectCatalog" >> CorrectCatalog(CorrectionSettings(model_dir="model/export"))
    outputs.corrected, outputs.review, outputs.audit
    outputs.dead_letter_parts   # the dead letters, one PCollection per step that makes them

Input elements are Kafka records (anything with ``topic``, ``partition``,
``offset``, ``timestamp_ms``, ``key`` and ``value``). The DoFns here are thin:
decoding, the decision policy and record assembly are pure functions.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from model.profilestore import LatestProfile, bundled_profile_dir
from model.serving import Predictor
from schemas import AUDIT_SCHEMA_ID, CORRECTED_SCHEMA_ID
from transforms import codec, records
from transforms.policy import RecordScores, Thresholds, correct_track

METRICS_NAMESPACE = "metafix"
DEAD_LETTER = "dead_letter"
REVIEW = "review"
AUDIT = "audit"
MODEL_ERROR = "model_error"


class CatalogOutputs(NamedTuple):
    """The outputs of ``CorrectCatalog``.

    ``dead_letter_parts`` holds the dead letters unmerged, one PCollection per step that
    makes them: a sink that must stay fused with the source writes each part on its own,
    because a Flatten runs in the runner on Prism and would end the fused stage, letting
    the source commit its offsets before the sink has written (see ``streaming/kafkaio.py``).
    A bounded sink may merge them (``merged_dead_letters``).
    """

    corrected: beam.PCollection
    review: beam.PCollection
    audit: beam.PCollection
    dead_letter_parts: dict[str, beam.PCollection]


def merged_dead_letters(outputs: CatalogOutputs) -> beam.PCollection:
    """Every dead letter in one PCollection, for sinks that need not stay fused with the source."""
    return tuple(outputs.dead_letter_parts.values()) | "MergeDeadLetters" >> beam.Flatten()


def _coords(record: Any) -> dict[str, Any]:
    return records.coordinates(record.topic, record.partition, record.offset, record.timestamp_ms)


def _dead_letter_for(record: Any, *, stage: str, error_type: str, message: str, **extra: Any) -> dict:
    return codec.dead_letter(
        record.value,
        key=record.key,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        timestamp_ms=record.timestamp_ms,
        stage=stage,
        error_type=error_type,
        message=message,
        **extra,
    )


class DecodeFn(beam.DoFn):
    """Bytes to events; whatever cannot be decoded goes to the dead-letter output."""

    def __init__(self, max_payload_bytes: int):
        self._max_payload_bytes = max_payload_bytes
        self._decoded = Metrics.counter(METRICS_NAMESPACE, "records_in")
        self._dead = Metrics.counter(METRICS_NAMESPACE, "dead_letters")

    def process(self, record: Any) -> Iterator[Any]:
        try:
            event = codec.decode_event(record.value, self._max_payload_bytes)
        except codec.DecodeError as e:
            self._dead.inc()
            Metrics.counter(METRICS_NAMESPACE, f"dead_letters.decode.{e.error_type}").inc()
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                _dead_letter_for(
                    record, stage="decode", error_type=e.error_type, message=e.message, event_id=e.event_id
                ),
            )
            return
        self._decoded.inc()
        yield record, event


class _LoadedModel:
    """Holder for a predictor shared by all DoFn instances of a worker process."""

    def __init__(self, model_dir: str):
        self.predictor = Predictor.load(model_dir)


class _LoadedProfile:
    """Holder for the profile handle shared by all DoFn instances of a worker process."""

    def __init__(self, profile_dir: str, refresh_s: float):
        self.latest = LatestProfile(profile_dir, refresh_s)


@dataclass(frozen=True)
class CorrectionSettings:
    """Plain, picklable settings of the correction step."""

    model_dir: str
    batch_size: int = 512
    apply_threshold: float | None = None
    review_threshold: float | None = None
    # The catalog profile directory (DIR/LATEST -> DIR/<version>/profile.json);
    # None: the one bundled with the model, if it has one.
    profile_dir: str | None = None
    # How often a worker looks for a newer LATEST, at bundle start.
    profile_refresh_s: float = 60.0


# Far above every field's max_chars: values longer than this are broken or hostile input.
LONG_TEXT_CHARS = 1024


def longest_text(track: dict) -> int:
    """Characters in the longest text value of a raw track."""
    values = [v for v in track.values() if isinstance(v, str)]
    values += [a for a in track.get("featured_artists") or () if isinstance(a, str)]
    return max(map(len, values), default=0)


class CorrectBatchFn(beam.DoFn):
    """Scores records in batches with the model and applies the decision policy.

    Records are buffered within a bundle and scored together, because one call of
    the model costs about as much for 1 record as for hundreds. The buffer is
    flushed at ``finish_bundle``, so nothing outlives the bundle: a bundle's
    outputs are complete before its input offsets are committed.
    """

    def __init__(self, settings: CorrectionSettings, shared_handle: shared.Shared,
                 profile_handle: shared.Shared):
        self._settings = settings
        self._shared_handle = shared_handle
        self._profile_handle = profile_handle
        self._buffer: list[tuple[Any, Any, Any]] = []
        self._counters: dict[str, Any] = {}
        self._batch_size = Metrics.distribution(METRICS_NAMESPACE, "inference_batch_size")
        self._latency = Metrics.distribution(METRICS_NAMESPACE, "inference_latency_ms")
        self._out = Metrics.counter(METRICS_NAMESPACE, "records_out")
        self._model_errors = Metrics.counter(METRICS_NAMESPACE, "inference_errors")

    def setup(self) -> None:
        model_dir = self._settings.model_dir
        self._predictor = self._shared_handle.acquire(lambda: _LoadedModel(model_dir), tag=model_dir).predictor
        base = self._predictor.thresholds
        self._thresholds = Thresholds(
            apply=self._settings.apply_threshold if self._settings.apply_threshold is not None else base.apply,
            review=self._settings.review_threshold if self._settings.review_threshold is not None else base.review,
        )
        self._model_version = self._predictor.version
        profile_dir = self._settings.profile_dir or bundled_profile_dir(self._predictor.version_dir)
        self._latest_profile = None
        if profile_dir is not None:
            refresh_s = self._settings.profile_refresh_s
            self._latest_profile = self._profile_handle.acquire(
                lambda: _LoadedProfile(profile_dir, refresh_s), tag=f"{profile_dir}@{refresh_s}").latest
        self._profile = None

    def start_bundle(self) -> None:
        self._buffer = []
        # One profile per bundle: a newer version is picked up between bundles.
        self._profile = self._latest_profile.current() if self._latest_profile is not None else None

    def process(
        self,
        element: tuple[Any, dict],
        timestamp=beam.DoFn.TimestampParam,
        window=beam.DoFn.WindowParam,
    ) -> Iterator[Any]:
        self._buffer.append((element, timestamp, window))
        if len(self._buffer) >= self._settings.batch_size:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        if not self._buffer:
            return
        batch, self._buffer = self._buffer, []
        tracks = [event["track"] for (_, event), _, _ in batch]
        started = time.perf_counter()
        try:
            scores: list[RecordScores] | None = self._score(tracks)
        except Exception as e:  # noqa: BLE001 - a failed batch is passed on flagged, never lost
            self._model_errors.inc(len(batch))
            scores, model_error = None, f"{type(e).__name__}: {e}"
        self._latency.update(int((time.perf_counter() - started) * 1000))
        self._batch_size.update(len(batch))
        for i, ((record, event), ts, win) in enumerate(batch):
            tag, out = self._correct_one(record, event, scores[i] if scores else None,
                                         None if scores else model_error)
            value = WindowedValue(out, ts, (win,))
            yield value if tag is None else beam.pvalue.TaggedOutput(tag, value)

    def _score(self, tracks: list[dict]) -> list[RecordScores]:
        """The model's scores; a track with an over-long value is scored on its own.

        The model's preprocessing pads the batch's strings to the longest one, so one
        1 MB title in a batch of 512 would cost tens of GB; alone it costs a few hundred MB.
        """
        alone = {i for i, t in enumerate(tracks) if longest_text(t) > LONG_TEXT_CHARS}
        if not alone:
            return self._predictor.predict(tracks)
        together = [i for i in range(len(tracks)) if i not in alone]
        scores: list[RecordScores | None] = [None] * len(tracks)
        if together:
            for i, s in zip(together, self._predictor.predict([tracks[i] for i in together]), strict=True):
                scores[i] = s
        for i in sorted(alone):
            [scores[i]] = self._predictor.predict([tracks[i]])
        return scores

    def _correct_one(
        self, record: Any, event: dict, scores: RecordScores | None, model_error: str | None
    ) -> tuple[str | None, dict]:
        try:
            result = correct_track(
                event["track"],
                scores or RecordScores(fields={}, swapped=0.0),
                thresholds=self._thresholds,
                model_version=self._model_version,
                profile=self._profile,
                source=event.get("source"),
            )
            review = list(result.review)
            if model_error is not None:
                review.insert(0, {"field": "*", "value": None, "error_class": MODEL_ERROR,
                                  "confidence": 0.0, "reason": f"model failed on this batch: {model_error}"[:500]})
            out = records.corrected_record(
                event,
                track=result.track,
                corrections=result.corrections,
                review=review,
                model_version=self._model_version,
                input_coordinates=_coords(record),
                profile_version=self._profile.version if self._profile is not None else None,
                release_date_precision=result.release_date_precision,
            )
        except Exception as e:  # noqa: BLE001 - one bad record must not stop the stream
            self._count("dead_letters.correct")
            return DEAD_LETTER, _dead_letter_for(
                record, stage="correct", error_type=type(e).__name__, message=str(e),
                event_id=event.get("event_id"), model_version=self._model_version,
            )
        self._out.inc()
        for c in out["corrections"]:
            self._count(f"corrected.{c['field']}.{c['error_class']}")
        for r in out["review"]:
            self._count(f"flagged.{r['field']}.{r['error_class']}")
        if scores is not None:
            for field, (cls, conf) in scores.fields.items():
                if cls != "clean" and conf >= self._thresholds.review:
                    self._count(f"detected.{field}.{cls}")
        return None, out

    def _count(self, name: str) -> None:
        counter = self._counters.get(name)
        if counter is None:
            counter = self._counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
        counter.inc()


class RouteFn(beam.DoFn):
    """Every corrected record goes out; those with review flags also to review, every change to audit."""

    def process(self, record: dict) -> Iterator[Any]:
        yield record
        if record["review"]:
            yield beam.pvalue.TaggedOutput(REVIEW, record)
        for entry in records.audit_entries(record):
            yield beam.pvalue.TaggedOutput(AUDIT, entry)


class CorrectCatalog(beam.PTransform):
    """Kafka records in; corrected records, review, audit and dead letters out (dicts)."""

    def __init__(self, settings: CorrectionSettings, max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES):
        super().__init__()
        self._settings = settings
        self._max_payload_bytes = max_payload_bytes

    def expand(self, records_in: beam.PCollection) -> CatalogOutputs:
        decoded = records_in | "DecodeEvents" >> beam.ParDo(DecodeFn(self._max_payload_bytes)).with_outputs(
            DEAD_LETTER, main="events"
        )
        corrected = decoded.events | "ScoreAndCorrect" >> beam.ParDo(
            CorrectBatchFn(self._settings, shared.Shared(), shared.Shared())
        ).with_outputs(DEAD_LETTER, main="corrected")
        routed = corrected.corrected | "RouteOutputs" >> beam.ParDo(RouteFn()).with_outputs(
            REVIEW, AUDIT, main="corrected"
        )
        parts = {"decode": decoded[DEAD_LETTER], "correct": corrected[DEAD_LETTER]}
        return CatalogOutputs(routed.corrected, routed[REVIEW], routed[AUDIT], parts)


def _key_bytes(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None


class OutputTooLarge(ValueError):
    """An encoded output larger than a Kafka record may be."""


class EncodeFn(beam.DoFn):
    """Output dicts to (key, Confluent-framed Avro) pairs; a record that fails to encode becomes a dead letter.

    So does a record that encodes to more than ``max_bytes``: Kafka would refuse it for good,
    and a refused send fails its bundle on every retry.
    """

    def __init__(self, schema_id: int, key_field: str, max_bytes: int = codec.MAX_OUTPUT_BYTES):
        self._schema_id = schema_id
        self._key_field = key_field
        self._max_bytes = max_bytes

    def process(self, record: dict) -> Iterator[Any]:
        try:
            value = codec.confluent_encode(self._schema_id, record)
            if len(value) > self._max_bytes:
                raise OutputTooLarge(f"{len(value)} bytes encoded > limit {self._max_bytes}")
            yield _key_bytes(record.get(self._key_field)), value
        except Exception as e:  # noqa: BLE001
            Metrics.counter(METRICS_NAMESPACE, "dead_letters.encode").inc()
            coords = record.get("input") or {}
            yield beam.pvalue.TaggedOutput(
                DEAD_LETTER,
                codec.dead_letter(
                    repr(record)[: codec.DEAD_LETTER_PAYLOAD_LIMIT].encode("utf-8", "backslashreplace"),
                    stage="encode",
                    error_type=type(e).__name__,
                    message=str(e),
                    topic=coords.get("topic"),
                    partition=coords.get("partition"),
                    offset=coords.get("offset"),
                    timestamp_ms=coords.get("timestamp_ms"),
                    event_id=record.get("event_id"),
                    model_version=record.get("model_version"),
                ),
            )


def _encode_dead_letter(record: dict) -> tuple[bytes | None, bytes]:
    return record["key"], codec.encode_dead_letter(record)


def step_name(name: str) -> str:
    """The CamelCase step-label form of an output or stage name.

    >>> step_name("encode_corrected")
    'EncodeCorrected'
    """
    return name.title().replace("_", "")


class EncodeOutputs(beam.PTransform):
    """Encodes every output for Kafka: {corrected, review, audit, dead_letter} -> (key, value) pairs.

    ``dead_letter`` maps to a dict of PCollections keyed by the stage that made them, left
    unmerged (see ``CatalogOutputs``): the dead letters of each step of ``CorrectCatalog``,
    and, as ``encode_<output>``, the records of each output that failed to encode.
    """

    def expand(self, outputs: CatalogOutputs) -> dict[str, beam.PCollection | dict[str, beam.PCollection]]:
        encoded: dict[str, Any] = {}
        dead = {
            stage: part | f"Encode{step_name(stage)}DeadLetters" >> beam.Map(_encode_dead_letter)
            for stage, part in outputs.dead_letter_parts.items()
        }
        for name, pcoll, schema_id in (
            ("corrected", outputs.corrected, CORRECTED_SCHEMA_ID),
            ("review", outputs.review, CORRECTED_SCHEMA_ID),
            ("audit", outputs.audit, AUDIT_SCHEMA_ID),
        ):
            result = pcoll | f"Encode{step_name(name)}" >> beam.ParDo(EncodeFn(schema_id, "entity_id")).with_outputs(
                DEAD_LETTER, main="encoded"
            )
            encoded[name] = result.encoded
            dead[f"encode_{name}"] = (
                result[DEAD_LETTER] | f"Encode{step_name(name)}Failures" >> beam.Map(_encode_dead_letter)
            )
        encoded[DEAD_LETTER] = dead
        return encoded
