"""Checks made before a job starts, so a bad setup fails fast with one clear line."""

from __future__ import annotations

from kafka import KafkaConsumer
from kafka.errors import KafkaError, KafkaTimeoutError

from streaming.options import ConfigError, KafkaSettings, StreamConfig


def existing_topics(kafka: KafkaSettings, timeout_ms: int = 10_000) -> set[str]:
    try:
        consumer = KafkaConsumer(**kafka.client_config(), request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms)
    except KafkaTimeoutError as e:
        raise ConfigError(f"cannot reach Kafka at {kafka.bootstrap_servers}") from e
    except KafkaError as e:
        raise ConfigError(f"cannot connect to Kafka at {kafka.bootstrap_servers}: {type(e).__name__}: {e}") from e
    try:
        return set(consumer.topics())
    except KafkaError as e:
        raise ConfigError(f"cannot list topics on {kafka.bootstrap_servers}: {type(e).__name__}: {e}") from e
    finally:
        consumer.close()


def check_topics(kafka: KafkaSettings, topics: dict[str, str | None]) -> None:
    present = existing_topics(kafka)
    for flag, topic in topics.items():
        if topic and topic not in present:
            raise ConfigError(f"{flag}: topic {topic!r} does not exist on {kafka.bootstrap_servers}")


def check_model(model_dir: str) -> str:
    """Loads the model once; returns its version."""
    from model.serving import ModelLoadError, Predictor

    try:
        return Predictor.load(model_dir).version
    except ModelLoadError as e:
        raise ConfigError(f"--model-dir: {e}") from e


def check_stream(config: StreamConfig) -> None:
    check_topics(
        config.kafka,
        {
            "--input-topic": config.input_topic,
            "--output-topic": config.output_topic,
            "--dead-letter-topic": config.dead_letter_topic,
            "--review-topic": config.review_topic,
            "--audit-topic": config.audit_topic,
        },
    )
    check_model(config.model_dir)
