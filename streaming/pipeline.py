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
from streaming.composites import (
    DEAD_LETTER,
    CorrectCatalog,
    CorrectionSettings,
    EncodeOutputs,
    step_name,
)
from streaming.kafkaio import ConsumerConfig, ProducerConfig, ReadFromKafka, WriteToKafkaTopics
from streaming.options import StreamConfig


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
    )


def _to_topic(key_value: tuple[bytes | None, bytes], topic: str) -> tuple[str, bytes | None, bytes]:
    return topic, key_value[0], key_value[1]


class WriteOutputs(beam.PTransform):
    """Encoded outputs to their topics, one write step per PCollection, through one producer.

    The outputs are not flattened into one write: on Prism a Flatten runs in the runner and
    ends the fused stage, so the reader's bundle, and its offset commit, would finish before
    the records are written (see ``streaming/kafkaio.py``).
    """

    def __init__(self, producer: ProducerConfig, topics: dict[str, str | None]):
        super().__init__()
        self._producer = producer
        self._topics = topics

    def expand(self, encoded: dict[str, beam.PCollection | dict[str, beam.PCollection]]) -> None:
        for name, topic in self._topics.items():
            if not topic:
                continue
            # Steps are named by output and stage, never by position: Dataflow --update and
            # Flink savepoints match steps by name.
            parts = encoded[name] if isinstance(encoded[name], dict) else {"": encoded[name]}
            for stage, part in parts.items():
                step = step_name(name) + step_name(stage)
                (
                    part
                    | f"To{step}Topic" >> beam.Map(_to_topic, topic)
                    | f"Produce{step}" >> WriteToKafkaTopics(self._producer)
                )


def build_pipeline(p: beam.Pipeline, config: StreamConfig) -> None:
    """Kafka -> decode -> score and correct -> Kafka (output, review, audit, dead letters)."""
    records = p | "ReadEvents" >> ReadFromKafka(consumer_config(config))
    if config.archive_dir:
        records | "ArchiveRawEvents" >> ArchiveEvents(config.archive_dir)
    outputs = records | "CorrectCatalog" >> CorrectCatalog(correction_settings(config), config.max_payload_bytes)
    encoded = outputs | "EncodeOutputs" >> EncodeOutputs()
    encoded | "WriteOutputs" >> WriteOutputs(
        ProducerConfig(config.kafka.bootstrap_servers, security=config.kafka.security),
        {
            "corrected": config.output_topic,
            "review": config.review_topic,
            "audit": config.audit_topic,
            DEAD_LETTER: config.dead_letter_topic,
        },
    )
