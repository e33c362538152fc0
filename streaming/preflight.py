"""Checks made before a job starts, so a bad setup fails fast with one clear line."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import ssl
from collections.abc import Iterator

from kafka import KafkaConsumer
from kafka.errors import KafkaError, KafkaTimeoutError, SaslAuthenticationFailedError

from model.serving import (
    JOB_TF_THREADS,
    ModelLoadError,
    Predictor,
    read_manifest,
    resolve_version_dir,
)
from streaming.options import ConfigError, KafkaSettings, StreamConfig
from streaming.schema_registry import RegistrySettings, RegistryUnavailableError, check_reachable
from streaming.secret_sources import SecretError


def _accepts_connections(bootstrap_servers: str, timeout_s: float = 2.0) -> bool:
    for server in bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        try:
            with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
                return True
        except (OSError, ValueError):
            continue
    return False


def _authentication_failed(kafka: KafkaSettings) -> ConfigError:
    # Never the password: only the mechanism and the user name.
    security = kafka.security
    return ConfigError(
        f"Kafka at {kafka.bootstrap_servers} closed the connection during SASL authentication "
        f"({security.sasl_mechanism} as user {security.sasl_plain_username!r}): "
        "wrong credentials, or a mechanism that listener does not enable"
    )


@contextlib.contextmanager
def _client_logs_muted() -> Iterator[None]:
    """kafka-python logs every failed attempt; a preflight reports the outcome in one line."""
    kafka_log = logging.getLogger("kafka")
    level = kafka_log.level
    kafka_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        kafka_log.setLevel(level)


def _tls_context(kafka: KafkaSettings) -> ssl.SSLContext:
    security = kafka.security
    try:
        context = ssl.create_default_context(cafile=security.ssl_cafile)
        if security.ssl_certfile:
            context.load_cert_chain(security.ssl_certfile, security.ssl_keyfile, security.ssl_password)
    except (OSError, ssl.SSLError) as e:
        files = ", ".join(f for f in (security.ssl_cafile, security.ssl_certfile, security.ssl_keyfile) if f)
        raise ConfigError(f"cannot load the TLS files ({files}): {getattr(e, 'strerror', None) or e}") from e
    context.check_hostname = security.ssl_check_hostname
    return context


def check_tls(kafka: KafkaSettings, timeout_s: float = 10.0) -> None:
    """One TLS handshake with the first reachable bootstrap server, verified as the clients will.

    Both clients only retry a failed handshake until they time out; this names the cause.
    """
    if kafka.security.security_protocol.upper() not in ("SSL", "SASL_SSL"):
        return
    context = _tls_context(kafka)
    ca = kafka.security.ssl_cafile or "the system CAs"
    for server in kafka.bootstrap_servers.split(","):
        host, _, port = server.strip().rpartition(":")
        host = host.strip("[]")
        try:
            with socket.create_connection((host, int(port)), timeout=timeout_s) as sock:
                with context.wrap_socket(sock, server_hostname=host):
                    return
        except ssl.SSLCertVerificationError as e:
            raise ConfigError(f"TLS to {server.strip()}: the broker's certificate does not verify "
                              f"against {ca}: {e.verify_message}") from e
        except ssl.SSLError as e:
            raise ConfigError(f"TLS handshake with {server.strip()} failed: {e.reason or e}") from e
        except (OSError, ValueError):
            # Unreachable: the topic listing that follows reports it.
            continue


def existing_topics(kafka: KafkaSettings, timeout_ms: int = 10_000) -> set[str]:
    check_tls(kafka)
    with _client_logs_muted():
        return _existing_topics(kafka, timeout_ms)


def _existing_topics(kafka: KafkaSettings, timeout_ms: int) -> set[str]:
    try:
        client_config = kafka.client_config()
    except SecretError as e:
        raise ConfigError(str(e)) from e
    try:
        consumer = KafkaConsumer(**client_config, request_timeout_ms=timeout_ms,
                                 bootstrap_timeout_ms=timeout_ms)
    except SaslAuthenticationFailedError as e:
        raise _authentication_failed(kafka) from e
    except KafkaTimeoutError as e:
        # A broker that rejects SCRAM credentials just closes the connection, which the
        # client retries until it times out: tell that apart from a broker that is away.
        if kafka.security.security_protocol.startswith("SASL") and _accepts_connections(kafka.bootstrap_servers):
            raise _authentication_failed(kafka) from e
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
    """Loads the model once; returns its version.

    With the job's TensorFlow threads (``JOB_TF_THREADS``): a LOOPBACK worker runs in this
    process, and TensorFlow keeps the pools of its first load. Loaded with TensorFlow's
    default here, the stream ran with two threads of each, whatever its correction step
    asked for.
    """
    try:
        return Predictor.load(model_dir, threads=JOB_TF_THREADS).version
    except ModelLoadError as e:
        raise ConfigError(f"--model-dir: {e}") from e


def check_model_files(model_dir: str) -> None:
    """The model directory's files (LATEST, SavedModel, manifest), without loading TensorFlow.

    For a launcher whose workers are other processes: they load the model at their start,
    and ``model_load_failure`` finds the error if that fails. Loading it here as well cost
    a replay about 5 s of CPU (mostly importing TensorFlow) before it started, in a child
    process, since in the launcher TensorFlow and the model (about 630 MB) would stay.
    """
    try:
        read_manifest(resolve_version_dir(model_dir))
    except ModelLoadError as e:
        raise ConfigError(f"--model-dir: {e}") from e


# The last line of a worker's traceback as the runner reports it, with Beam's step suffix.
_MODEL_LOAD_FAILURE = re.compile(r"ModelLoadError: (.+?)(?: \[while running '[^']*'\])?$", re.MULTILINE)


def model_load_failure(error: BaseException) -> ConfigError | None:
    """The ``--model-dir`` error for a job that failed because a worker could not load the model."""
    match = _MODEL_LOAD_FAILURE.search(str(error))
    return ConfigError(f"--model-dir: {match.group(1)}") if match else None


def check_schema_registry(settings: RegistrySettings) -> None:
    try:
        check_reachable(settings)
    except RegistryUnavailableError as e:
        raise ConfigError(f"--schema-registry-url: {e}") from e


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
    if config.schema_registry is not None:
        check_schema_registry(config.schema_registry)
    check_model(config.model_dir)
