"""The streaming job's graph: ``build_pipeline``, and ``WriteOutputs``, which replay shares.

``build_pipeline`` (here) and ``build_replay_pipeline`` (``streaming/replay.py``) apply
the same ``CorrectCatalog`` composite (``streaming/composites.py``); they differ only in
where records come from and where results go. These functions only wire named
composites; the logic lives in ``transforms/`` (pure field logic), ``model/serving.py``
and ``streaming/kafkaio.py``.
"""

from __future__ import annotations

import apache_beam as beam

from streaming.archive import ArchiveEvents
from streaming.batch_coder import BatchList
from streaming.composites import (
    DEAD_LETTER,
    CorrectCatalog,
    CorrectionSettings,
    EncodedBatch,
    EncodeOutputs,
)
from streaming.kafkaio import (
    ConsumerConfig,
    Message,
    ProducerConfig,
    ReadFromKafka,
    WriteBatchesToKafka,
)
from streaming.options import KafkaSettings, StreamConfig


def correction_settings(config: StreamConfig) -> CorrectionSettings:
    return CorrectionSettings(
        model_dir=config.model_dir,
        batch_size=config.batch_size,
        apply_threshold=config.apply_threshold,
        review_threshold=config.review_threshold,
        profile_dir=config.profile_dir,
        profile_refresh_s=config.profile_refresh_s,
    )


def consumer_config(config: StreamConfig) -> ConsumerConfig:
    return ConsumerConfig(
        config.kafka.bootstrap_servers,
        topics=(config.input_topic,),
        group_id=config.group_id,
        start=config.start_from,
        stop=config.stop_at,
        max_records_per_call=config.max_records_per_poll,
        security=config.kafka.security,
        client=config.kafka.client,
        partition_discovery_interval_s=config.partition_discovery_interval_s,
    )


def producer_config(kafka: KafkaSettings) -> ProducerConfig:
    return ProducerConfig(kafka.bootstrap_servers, security=kafka.security, client=kafka.client)


def messages_for_topics(batch: EncodedBatch, topics: dict[str, str | None]) -> list[Message]:
    """The (topic, key, value) messages of one EncodedBatch; outputs without a topic are dropped."""
    return BatchList(
        (topic, key, value)
        for name, topic in topics.items()
        if topic
        for key, value in getattr(batch, "dead_letters" if name == DEAD_LETTER else name)
    )


class WriteOutputs(beam.PTransform):
    """Encoded batches to their topics, in one write step fused with the read.

    Each element carries every output of its input batch, so nothing is flattened: on
    Prism a Flatten runs in the runner and ends the fused stage, so the reader's bundle,
    and its offset commit, would finish before the records are written (see
    ``streaming/kafkaio.py``).
    """

    def __init__(self, producer: ProducerConfig, topics: dict[str, str | None]):
        super().__init__()
        self._producer = producer
        self._topics = topics

    def expand(self, encoded: beam.PCollection) -> None:
        (
            encoded
            | "ToTopics" >> beam.Map(messages_for_topics, self._topics).with_output_types(BatchList)
            | "ProduceOutputs" >> WriteBatchesToKafka(self._producer)
        )


def build_pipeline(p: beam.Pipeline, config: StreamConfig) -> None:
    """Kafka -> decode -> score and correct -> Kafka (output, review, audit, dead letters)."""
    records = p | "ReadEvents" >> ReadFromKafka(consumer_config(config))
    if config.archive_dir:
        records | "ArchiveRawEvents" >> ArchiveEvents(config.archive_dir)
    outputs = records | "CorrectCatalog" >> CorrectCatalog(
        correction_settings(config), config.max_payload_bytes, config.schema_registry)
    topics = {
        "corrected": config.output_topic,
        "review": config.review_topic,
        "audit": config.audit_topic,
        DEAD_LETTER: config.dead_letter_topic,
    }
    encoded = outputs | "EncodeOutputs" >> EncodeOutputs(registry=config.schema_registry, topics=topics)
    encoded | "WriteOutputs" >> WriteOutputs(producer_config(config.kafka), topics)
