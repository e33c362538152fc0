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

import concurrent.futures
import gc
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from model.profilestore import LatestProfile, bundled_profile_dir
from model.serving import JOB_TF_THREADS, Predictor
from schemas import SCHEMA_IDS, SCHEMAS_BY_FILE, schema_text
from streaming import live_metrics, schema_registry
from streaming.batch_coder import register_batch_types
from streaming.schema_registry import RegistrySettings
from transforms import codec, records
from transforms.policy import RecordScores, Thresholds, correct_track

METRICS_NAMESPACE = "metafix"
DEAD_LETTER = "dead_letter"
REVIEW = "review"
AUDIT = "audit"
MODEL_ERROR = "model_error"


class EventRecord(NamedTuple):
    """An input that is already a ``CatalogUpdateEvent`` (a row of an Avro event log).

    It is validated as is, without a wire-format round trip; only a dead letter needs its
    bytes, and ``value`` encodes them then.
    """

    topic: str | None
    partition: int | None
    offset: int | None
    timestamp_ms: int | None
    key: bytes | None
    event: dict[str, Any]

    @property
    def value(self) -> bytes:
        try:
            return codec.encode_event(self.event)
        except Exception:  # noqa: BLE001 - a row the schema cannot hold: keep what can be shown
            return repr(self.event).encode("utf-8", "backslashreplace")


class RecordBatch(NamedTuple):
    """Input records with their batch's place in the input, for sinks that keep input order.

    A plain sequence of records (ReadFromKafka's batches) is placed by its first record's
    (topic, partition, offset).
    """

    position: tuple
    records: Sequence[Any]


def batch_position(batch: RecordBatch | Sequence[Any]) -> tuple:
    if isinstance(batch, RecordBatch):
        return batch.position
    first = batch[0] if batch else None
    return (first.topic, first.partition, first.offset) if first is not None else ()


class DecodedBatch(NamedTuple):
    """One input batch after decoding: (record, event) pairs and the dead letters, in input order."""

    position: tuple
    events: list[tuple[Any, dict]]
    dead_letters: list[dict]


class CatalogBatch(NamedTuple):
    """The outputs of one input batch (dicts), each list in input order.

    One element carries every output of its batch, so a sink writes them all from one
    step fused with the source: a Flatten runs in the runner on Prism and would end the
    fused stage, letting the source commit its offsets before the sink has written (see
    ``streaming/kafkaio.py``).
    """

    position: tuple
    corrected: list[dict]
    review: list[dict]
    audit: list[dict]
    dead_letters: list[dict]


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


class _Counters:
    """Metrics counters by name, created on first use and incremented once per batch.

    The same counts go to the live metrics (``streaming/live_metrics.py``).
    """

    def __init__(self) -> None:
        self._counters: dict[str, Any] = {}

    def inc_all(self, counts: Counter[str]) -> None:
        for name, n in counts.items():
            counter = self._counters.get(name)
            if counter is None:
                counter = self._counters[name] = Metrics.counter(METRICS_NAMESPACE, name)
            counter.inc(n)
        live_metrics.record_counts(counts)


class DecodeFn(beam.DoFn):
    """A batch of records to one DecodedBatch; what cannot be decoded becomes a dead letter.

    With a schema registry, Avro inputs are read by their writer's schema, fetched once per
    id; a registry that stays unreachable fails the bundle (``RegistryUnavailableError``).
    """

    def __init__(self, max_payload_bytes: int, registry: RegistrySettings | None = None):
        self._max_payload_bytes = max_payload_bytes
        self._registry = registry

    def setup(self) -> None:
        self._counters = _Counters()
        self._writer_schemas = None
        if self._registry is not None:
            self._writer_schemas = schema_registry.WriterSchemaCache(
                schema_registry.connect(self._registry), self._registry.retry_timeout_s)

    def process(self, batch: RecordBatch | Sequence[Any]) -> Iterator[DecodedBatch]:
        events: list[tuple[Any, dict]] = []
        dead: list[dict] = []
        counts: Counter[str] = Counter()
        for record in batch.records if isinstance(batch, RecordBatch) else batch:
            try:
                if isinstance(record, EventRecord):
                    event = codec.validate_event(record.event)
                else:
                    event = codec.decode_event(record.value, self._max_payload_bytes, self._writer_schemas)
            except codec.DecodeError as e:
                counts[f"dead_letters.decode.{e.error_type}"] += 1
                dead.append(_dead_letter_for(
                    record, stage="decode", error_type=e.error_type, message=e.message, event_id=e.event_id
                ))
                continue
            events.append((record, event))
        counts["records_in"] += len(events)
        counts["dead_letters"] += len(dead)
        self._counters.inc_all(+counts)
        yield DecodedBatch(batch_position(batch), events, dead)


# A collection of the youngest generation starts once this many more objects (containers)
# were allocated than freed; Python's default is 700.
GC_YOUNG_THRESHOLD = 200_000


def settle_heap() -> None:
    """Tunes this process's garbage collector for batch work, once a worker's DoFn holds what it keeps.

    * What is loaded by now is frozen: Beam, TensorFlow and the model (over half a million
      objects) and the catalog profile live as long as the process. Left in the oldest
      generation, they made a full collection rare and slow (about a second), and cyclic
      garbage holding whole batches piled up between them: the stream's resident memory
      rose by hundreds of MB in saw-teeth. Frozen, they are never scanned.
    * Collections are spaced out: a batch keeps its records' objects alive until its bundle
      ends, so with the default thresholds the collector scanned each of them in every
      generation and found next to nothing. Measured on 300k events end to end: 27-28 % of
      the stream's time went to collections with the defaults, 1-3 % with this threshold,
      and those found 12 cyclic objects in all (6 collections).
    """
    gc.freeze()
    gc.set_threshold(GC_YOUNG_THRESHOLD, 10, 10)


class _LoadedModel:
    """Holder for a predictor shared by all DoFn instances of a worker process."""

    def __init__(self, model_dir: str, tf_threads: int | None):
        self.predictor = Predictor.load(model_dir, threads=tf_threads)


class _LoadedProfile:
    """Holder for the profile handle shared by all DoFn instances of a worker process."""

    def __init__(self, profile_dir: str, refresh_s: float):
        self.latest = LatestProfile(profile_dir, refresh_s)


@dataclass(frozen=True)
class CorrectionSettings:
    """Plain, picklable settings of the correction step.

    tf_threads: TensorFlow's intra- and inter-op threads per process (None: TF's default,
    one per core); see ``JOB_TF_THREADS``.
    """

    model_dir: str
    batch_size: int = 512
    apply_threshold: float | None = None
    review_threshold: float | None = None
    tf_threads: int | None = JOB_TF_THREADS
    # The catalog profile directory (DIR/LATEST -> DIR/<version>/profile.json);
    # None: the one bundled with the model, if it has one.
    profile_dir: str | None = None
    # How often a worker looks for a newer LATEST, at bundle start.
    profile_refresh_s: float = 60.0
    # True: profile_dir is written by an earlier step of the same pipeline (a replay's
    # profile of its input), so it is loaded at the first batch: a runner may set DoFns
    # up before that step has run.
    profile_from_pipeline: bool = False

    def __post_init__(self) -> None:
        if self.profile_from_pipeline and not self.profile_dir:
            raise ValueError("profile_from_pipeline needs the profile_dir that the pipeline writes")


# Far above every field's max_chars: values longer than this are broken or hostile input.
LONG_TEXT_CHARS = 1024


def longest_text(track: dict) -> int:
    """Characters in the longest text value of a raw track."""
    # A loop, not lists and max(): this runs for every record, on the model's thread.
    longest = 0
    for value in track.values():
        if isinstance(value, str) and len(value) > longest:
            longest = len(value)
    for artist in track.get("featured_artists") or ():
        if isinstance(artist, str) and len(artist) > longest:
            longest = len(artist)
    return longest


def chunk_bounds(n: int, size: int) -> list[tuple[int, int]]:
    """(start, end) of the model calls for ``n`` records: a short first call, then ``size`` at most.

    Nothing overlaps the first call: the policy waits for its scores. A quarter-size first
    call lets the policy start sooner, and the next call runs while it corrects.

    >>> chunk_bounds(1000, 512)
    [(0, 128), (128, 640), (640, 1000)]
    >>> chunk_bounds(100, 512)
    [(0, 100)]
    """
    first = min(n, max(1, size // 4))
    bounds = [(0, first)] if n else []
    bounds += [(start, min(start + size, n)) for start in range(first, n, size)]
    return bounds


class CorrectBatchFn(beam.DoFn):
    """Scores a DecodedBatch with the model and applies the decision policy: one CatalogBatch out.

    The batch is scored in chunks of ``batch_size``, because one call of the model costs
    about as much for 1 record as for hundreds. The next chunk's model call runs in a
    thread (TensorFlow releases the GIL) while this one applies the policy to the chunk
    before, so inference overlaps the Python work. Routing to review and audit is
    ``RouteFn``'s.
    """

    def __init__(self, settings: CorrectionSettings, shared_handle: shared.Shared,
                 profile_handle: shared.Shared):
        self._settings = settings
        self._shared_handle = shared_handle
        self._profile_handle = profile_handle
        self._batch_size = Metrics.distribution(METRICS_NAMESPACE, "inference_batch_size")
        self._latency = Metrics.distribution(METRICS_NAMESPACE, "inference_latency_ms")

    def setup(self) -> None:
        settings = self._settings
        # The holder itself is kept: Beam's Shared holds it only weakly (and keeps alive just the
        # last object any Shared acquired), so a DoFn holding only the predictor would let it be
        # collected, and the next setup (the SDK harness recreates idle DoFns) load it again.
        self._model = self._shared_handle.acquire(
            lambda: _LoadedModel(settings.model_dir, settings.tf_threads), tag=settings.model_dir
        )
        self._predictor = self._model.predictor
        base = self._predictor.thresholds
        self._thresholds = Thresholds(
            apply=settings.apply_threshold if settings.apply_threshold is not None else base.apply,
            review=settings.review_threshold if settings.review_threshold is not None else base.review,
        )
        self._model_version = self._predictor.version
        self._scorer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metafix-model")
        self._counters = _Counters()
        self._latest_profile = None
        self._profile = None
        if not settings.profile_from_pipeline:
            self._load_profile(settings.profile_dir or bundled_profile_dir(self._predictor.version_dir))
        settle_heap()

    def _load_profile(self, profile_dir: str | None) -> None:
        if profile_dir is not None:
            refresh_s = self._settings.profile_refresh_s
            # The holder is kept for the same reason as the model's.
            self._profile_holder = self._profile_handle.acquire(
                lambda: _LoadedProfile(profile_dir, refresh_s), tag=f"{profile_dir}@{refresh_s}")
            self._latest_profile = self._profile_holder.latest

    def teardown(self) -> None:
        self._scorer.shutdown(wait=False)

    def start_bundle(self) -> None:
        # One profile per bundle: a newer version is picked up between bundles.
        profile = self._latest_profile.current() if self._latest_profile is not None else None
        if self._profile is not None and profile is not self._profile:
            gc.freeze()  # a newer version was loaded: frozen as the first was (settle_heap)
        self._profile = profile

    def process(self, decoded: DecodedBatch) -> Iterator[CatalogBatch]:
        if self._latest_profile is None and self._settings.profile_from_pipeline:
            self._load_profile(self._settings.profile_dir)
            self._profile = self._latest_profile.current()
            gc.freeze()  # loaded now, and kept: frozen as settle_heap freezes what setup loads
        chunks = [decoded.events[start:end] for start, end in chunk_bounds(len(decoded.events),
                                                                            self._settings.batch_size)]
        corrected: list[dict] = []
        dead = list(decoded.dead_letters)
        counts: Counter[str] = Counter()
        scoring = self._scorer.submit(self._timed_score, chunks[0]) if chunks else None
        for i, chunk in enumerate(chunks):
            scores, model_error, latency_ms = scoring.result()
            # Metrics are recorded on this thread: the runner collects only the bundle thread's.
            self._latency.update(latency_ms)
            self._batch_size.update(len(chunk))
            live_metrics.record_inference(len(chunk), latency_ms / 1000)
            if i + 1 < len(chunks):
                scoring = self._scorer.submit(self._timed_score, chunks[i + 1])
            if model_error is not None:
                counts["inference_errors"] += len(chunk)
            for j, (record, event) in enumerate(chunk):
                out, is_dead = self._correct_one(record, event, scores[j] if scores else None, model_error, counts)
                (dead if is_dead else corrected).append(out)
        self._counters.inc_all(+counts)
        yield CatalogBatch(decoded.position, corrected, [], [], dead)

    def _timed_score(self, chunk: list[tuple[Any, dict]]) -> tuple[list[RecordScores] | None, str | None, int]:
        """(scores, None, ms), or (None, the model's error, ms): a failed chunk goes on flagged, never lost."""
        started = time.perf_counter()
        try:
            scores, error = self._score([event["track"] for _, event in chunk]), None
        except Exception as e:  # noqa: BLE001 - passed on as a model_error flag on every record
            scores, error = None, f"{type(e).__name__}: {e}"
        return scores, error, int((time.perf_counter() - started) * 1000)

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
        self, record: Any, event: dict, scores: RecordScores | None, model_error: str | None, counts: Counter[str]
    ) -> tuple[dict, bool]:
        """(corrected record, False), or (dead letter, True) when the record cannot be corrected."""
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
            counts[f"dead_letters.correct.{type(e).__name__}"] += 1
            return _dead_letter_for(
                record, stage="correct", error_type=type(e).__name__, message=str(e),
                event_id=event.get("event_id"), model_version=self._model_version,
            ), True
        counts["records_out"] += 1
        for c in out["corrections"]:
            counts[f"corrected.{c['field']}.{c['error_class']}"] += 1
        for r in out["review"]:
            counts[f"flagged.{r['field']}.{r['error_class']}"] += 1
        if scores is not None:
            for field, (cls, conf) in scores.fields.items():
                if cls != "clean" and conf >= self._thresholds.review:
                    counts[f"detected.{field}.{cls}"] += 1
        return out, False


class RouteFn(beam.DoFn):
    """Every corrected record goes out; those with review flags also to review, every change to audit.

    A review entry is the corrected record itself (the same dict), so its encoding is reused.
    """

    def process(self, batch: CatalogBatch) -> Iterator[CatalogBatch]:
        review = [r for r in batch.corrected if r["review"]]
        audit = [entry for r in batch.corrected for entry in records.audit_entries(r)]
        yield CatalogBatch(batch.position, batch.corrected, review, audit, batch.dead_letters)


class CorrectCatalog(beam.PTransform):
    """Batches of Kafka-like records (sequences or RecordBatches) in; one CatalogBatch (dicts) out per batch."""

    def __init__(self, settings: CorrectionSettings, max_payload_bytes: int = codec.DEFAULT_MAX_PAYLOAD_BYTES,
                 registry: RegistrySettings | None = None):
        super().__init__()
        self._settings = settings
        self._max_payload_bytes = max_payload_bytes
        self._registry = registry

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return (
            batches
            | "DecodeEvents" >> beam.ParDo(DecodeFn(self._max_payload_bytes, self._registry))
            .with_output_types(DecodedBatch)
            | "ScoreAndCorrect" >> beam.ParDo(CorrectBatchFn(self._settings, shared.Shared(), shared.Shared()))
            .with_output_types(CatalogBatch)
            | "RouteOutputs" >> beam.ParDo(RouteFn()).with_output_types(CatalogBatch)
        )


def _key_bytes(value: str | None) -> bytes | None:
    return value.encode("utf-8") if value is not None else None


class OutputTooLarge(ValueError):
    """An encoded output larger than a Kafka record may be."""


KeyValue = tuple[bytes | None, bytes]


class EncodedBatch(NamedTuple):
    """The Kafka (key, value) pairs of one CatalogBatch, by output; dead letters include encode failures."""

    corrected: list[KeyValue]
    review: list[KeyValue]
    audit: list[KeyValue]
    dead_letters: list[KeyValue]


# Each output's schema file; its id comes from registry.json, or from the schema registry
# under <topic>-value. Review entries are corrected records.
OUTPUT_SCHEMA_FILES = {
    "corrected": "corrected_record.avsc",
    "review": "corrected_record.avsc",
    "audit": "audit_entry.avsc",
    DEAD_LETTER: "dead_letter.avsc",
}


def output_schema_ids(registry: RegistrySettings | None, topics: dict[str, str | None]) -> dict[str, int]:
    """Output name -> the schema id its records are framed with.

    With a registry, each output that has a topic gets its schema's id under ``<topic>-value``
    (registered if need be); the others keep registry.json's (they are not written).
    """
    ids = {name: SCHEMA_IDS[file] for name, file in OUTPUT_SCHEMA_FILES.items()}
    if registry is None:
        return ids
    client = schema_registry.connect(registry)
    for name, file in OUTPUT_SCHEMA_FILES.items():
        topic = topics.get(name)
        if topic:
            ids[name] = schema_registry.output_schema_id(client, f"{topic}-value", schema_text(file),
                                                         registry.retry_timeout_s)
    return ids


def encode_output(schema_id: int, record: dict, max_bytes: int = codec.MAX_OUTPUT_BYTES,
                  schema: dict | None = None) -> KeyValue:
    """(key, Confluent-framed Avro); raises when the record does not fit the schema or Kafka.

    A record that encodes to more than ``max_bytes`` raises ``OutputTooLarge``: Kafka would
    refuse it for good, and a refused send fails its bundle on every retry. ``schema``: the
    parsed schema ``schema_id`` stands for (by default registry.json's).
    """
    value = codec.confluent_encode(schema_id, record, schema)
    if len(value) > max_bytes:
        raise OutputTooLarge(f"{len(value)} bytes encoded > limit {max_bytes}")
    return _key_bytes(record.get("entity_id")), value


def encode_failure(record: dict, error: Exception) -> dict:
    """The dead letter of an output record that failed to encode."""
    coords = record.get("input") or {}
    return codec.dead_letter(
        repr(record)[: codec.DEAD_LETTER_PAYLOAD_LIMIT].encode("utf-8", "backslashreplace"),
        stage="encode",
        error_type=type(error).__name__,
        message=str(error),
        topic=coords.get("topic"),
        partition=coords.get("partition"),
        offset=coords.get("offset"),
        timestamp_ms=coords.get("timestamp_ms"),
        event_id=record.get("event_id"),
        model_version=record.get("model_version"),
    )


# Batches are elements: Beam's size sampling must not pickle them (streaming/batch_coder.py).
register_batch_types(RecordBatch, DecodedBatch, CatalogBatch, EncodedBatch)


class EncodeFn(beam.DoFn):
    """One CatalogBatch to one EncodedBatch; a record that fails to encode becomes a dead letter.

    A review entry that is the corrected record itself reuses the corrected record's bytes
    (behind the review subject's id, should the registry have given it another).
    """

    def __init__(self, max_bytes: int = codec.MAX_OUTPUT_BYTES, registry: RegistrySettings | None = None,
                 topics: dict[str, str | None] | None = None):
        self._max_bytes = max_bytes
        self._registry = registry
        self._topics = dict(topics or {})

    def setup(self) -> None:
        self._counters = _Counters()
        self._ids = output_schema_ids(self._registry, self._topics)

    def process(self, batch: CatalogBatch) -> Iterator[EncodedBatch]:
        failed: list[dict] = []
        encoded_by_id: dict[int, KeyValue] = {}
        corrected = self._encode_all("corrected", batch.corrected, failed, encoded_by_id)
        review_id = self._ids["review"]
        review = [self._with_id(encoded_by_id[id(r)], review_id) for r in batch.review if id(r) in encoded_by_id]
        if len(review) < len(batch.review):
            # Review entries that are not corrected records of this batch are encoded on their own.
            same_id = review_id == self._ids["corrected"]
            review = self._encode_all("review", batch.review, failed, encoded_by_id if same_id else {})
        audit = self._encode_all("audit", batch.audit, failed, {})
        if failed:
            self._counters.inc_all(Counter(f"dead_letters.encode.{d['error_type']}" for d in failed))
        dead_schema = SCHEMAS_BY_FILE[OUTPUT_SCHEMA_FILES[DEAD_LETTER]]
        dead = [(d["key"], codec.confluent_encode(self._ids[DEAD_LETTER], d, dead_schema))
                for d in (*batch.dead_letters, *failed)]
        yield EncodedBatch(corrected, review, audit, dead)

    def _with_id(self, pair: KeyValue, schema_id: int) -> KeyValue:
        key, value = pair
        return key, value if schema_id == self._ids["corrected"] else codec.reframe(value, schema_id)

    def _encode_all(
        self, name: str, outputs: list[dict], failed: list[dict], encoded_by_id: dict[int, KeyValue]
    ) -> list[KeyValue]:
        schema_id, schema = self._ids[name], SCHEMAS_BY_FILE[OUTPUT_SCHEMA_FILES[name]]
        encoded = []
        for record in outputs:
            known = encoded_by_id.get(id(record))
            if known is not None:
                encoded.append(known)
                continue
            try:
                pair = encode_output(schema_id, record, self._max_bytes, schema)
            except Exception as e:  # noqa: BLE001 - the record goes out as a dead letter instead
                failed.append(encode_failure(record, e))
                continue
            encoded_by_id[id(record)] = pair
            encoded.append(pair)
        return encoded


class EncodeOutputs(beam.PTransform):
    """Encodes every output for Kafka: CatalogBatch -> EncodedBatch.

    ``topics``: output name -> topic, whose ``<topic>-value`` subjects give the ids when a
    schema ``registry`` is set.
    """

    def __init__(self, max_bytes: int = codec.MAX_OUTPUT_BYTES, registry: RegistrySettings | None = None,
                 topics: dict[str, str | None] | None = None):
        super().__init__()
        self._max_bytes = max_bytes
        self._registry = registry
        self._topics = topics

    def expand(self, batches: beam.PCollection) -> beam.PCollection:
        return batches | "EncodeBatches" >> beam.ParDo(
            EncodeFn(self._max_bytes, self._registry, self._topics)).with_output_types(EncodedBatch)
