"""Command-line options of the metafix jobs, validated at start into frozen configs.

One ``PipelineOptions`` subclass holds every metafix flag, so the same flags
work on every runner (and show up in Dataflow's job description). ``stream_config``
and ``replay_config`` turn them into frozen dataclasses or raise ``ConfigError``
with a one-line message the CLI prints before exiting non-zero.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from streaming.client_properties import (
    ClientPropertyError,
    map_properties,
    parse_overrides,
    parse_properties,
)
from streaming.kafka_clients import CLIENT_NAMES, DEFAULT_CLIENT, ClientName, KafkaSecurity
from streaming.kafkaio import DEFAULT_MAX_RECORDS_PER_POLL
from streaming.schema_registry import PASSWORD_ENV as REGISTRY_PASSWORD_ENV
from streaming.schema_registry import RegistrySettings
from streaming.secret_sources import (
    PASSWORD_ENV,
    SecretError,
    read_secret_file,
    secret_version_name,
)
from transforms.codec import DEFAULT_MAX_PAYLOAD_BYTES

log = logging.getLogger("metafix")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODEL_DIR = str(REPO_ROOT / "model" / "export")
# Partitions added to the input topic are read within this long (and a listing).
DEFAULT_PARTITION_DISCOVERY_INTERVAL_S = 10.0
SECURITY_FLAGS = (
    "security_protocol",
    "sasl_mechanism",
    "sasl_plain_username",
    "sasl_plain_password",
    "ssl_cafile",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_password",
)


class ConfigError(ValueError):
    """A bad option: the message is shown to the user as is."""


class BothSpellings:
    """An argument group whose flags are also accepted as Beam spells its own: --input_topic.

    Beam's options and Dataflow template parameters are snake_case, so a template or a
    script can pass metafix flags without renaming them.
    """

    def __init__(self, group: argparse._ArgumentGroup) -> None:
        self._group = group

    def add_argument(self, *flags: str, **kwargs: Any) -> argparse.Action:
        snake = ["--" + f[2:].replace("-", "_") for f in flags if f.startswith("--") and "-" in f[2:]]
        # A Beam option of the same spelling and destination (KafkaStreamsRunnerOptions'
        # --bootstrap_servers) already fills this option; any other clash is an error.
        taken = self._group._option_string_actions  # argparse keeps no public view of it
        snake = [f for f in snake if f not in taken or taken[f].dest != kwargs.get("dest")]
        return self._group.add_argument(*flags, *snake, **kwargs)


class MetafixOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        g = BothSpellings(parser.add_argument_group("metafix"))
        g.add_argument("--bootstrap-servers", dest="bootstrap_servers", help="Kafka bootstrap servers, host:port[,host:port]")
        g.add_argument("--input-topic", dest="input_topic", help="Topic of catalog-update events")
        g.add_argument("--output-topic", dest="output_topic", help="Topic for corrected records")
        g.add_argument("--dead-letter-topic", dest="dead_letter_topic", help="Topic for inputs that could not be processed")
        g.add_argument("--review-topic", dest="review_topic", help="Topic for records with fields flagged for review")
        g.add_argument("--audit-topic", dest="audit_topic", help="Topic with one entry per correction")
        g.add_argument("--group-id", dest="group_id", default="metafix", help="Kafka consumer group whose offsets the job commits")
        g.add_argument("--start-from", dest="start_from", default="committed",
                       help="earliest | latest | committed | an ISO-8601 time")
        g.add_argument("--stop-at", dest="stop_at", default=None,
                       help="Bounded Kafka read: 'end' (offsets at start) or an ISO-8601 time")
        g.add_argument("--model-dir", dest="model_dir", default=None,
                       help=f"Exported model (root with LATEST, or a version dir); default {DEFAULT_MODEL_DIR}")
        g.add_argument("--apply-threshold", dest="apply_threshold", type=float, default=None,
                       help="Confidence at or above which a detected error is corrected (default: the model's)")
        g.add_argument("--review-threshold", dest="review_threshold", type=float, default=None,
                       help="Confidence at or above which a detected error is flagged for review (default: the model's)")
        g.add_argument("--profile", dest="profile_dir", default=None,
                       help="Catalog profile directory (DIR/LATEST; metafix profile writes it); default: "
                            "stream: the model's bundled profile; replay of files: built from the input first")
        g.add_argument("--profile-refresh-s", dest="profile_refresh_s", type=float, default=60.0,
                       help="stream: look for a newer profile version this often (seconds)")
        g.add_argument("--batch-size", dest="batch_size", type=int, default=512, help="Records per model call")
        g.add_argument("--max-records-per-poll", dest="max_records_per_poll", type=int, default=DEFAULT_MAX_RECORDS_PER_POLL,
                       help=f"Records the Kafka source emits per bundle at most (default {DEFAULT_MAX_RECORDS_PER_POLL})")
        g.add_argument("--partition-discovery-interval-s", dest="partition_discovery_interval_s", type=float,
                       default=DEFAULT_PARTITION_DISCOVERY_INTERVAL_S,
                       help="stream: list the input topic this often (seconds) and read the partitions added "
                            "to it from their beginning; 0 reads only the partitions there are at start")
        g.add_argument("--max-payload-bytes", dest="max_payload_bytes", type=int, default=DEFAULT_MAX_PAYLOAD_BYTES,
                       help="Larger inputs go to the dead-letter topic")
        g.add_argument("--archive-dir", dest="archive_dir", default=None,
                       help="Keep the raw input events as hourly-partitioned Avro files under this path")
        g.add_argument("--metrics-file", dest="metrics_file", default=None,
                       help="Write the job's final metrics (counters, distributions) to this JSON file")
        g.add_argument("--metrics-port", dest="metrics_port", type=int, default=None,
                       help="stream: serve live Prometheus metrics and /healthz on this port (0: any free port)")
        g.add_argument("--metrics-address", dest="metrics_address", default="127.0.0.1",
                       help="stream: the address the metrics port binds (0.0.0.0 for a scraper on another host)")
        g.add_argument("--input", dest="input", default=None, help="replay: event-log files (glob or filesystem URL); "
                            "profile: those, or reference catalog files (.csv, .csv.gz)")
        g.add_argument("--output", dest="output", default=None, help="replay: output path prefix")
        g.add_argument("--source", dest="source", default=None,
                       help="profile: the source of reference catalog files' records (default: each file's name)")
        g.add_argument("--format", dest="output_format", default="jsonl", choices=("jsonl", "avro"),
                       help="replay: output file format")
        g.add_argument("--progress", dest="progress", default="auto", choices=("auto", "on", "off"),
                       help="replay: progress bar on local runs")
        g.add_argument("--kafka-client", dest="kafka_client", default=DEFAULT_CLIENT, choices=CLIENT_NAMES,
                       help=f"Kafka client library (default {DEFAULT_CLIENT}: a tenth of kafka-python's CPU per record)")
        for flag in SECURITY_FLAGS:
            g.add_argument("--" + flag.replace("_", "-"), dest=flag, default=None,
                           help=f"Kafka {flag} (passed to kafka-python; never logged)")
        g.add_argument("--kafka-config", dest="kafka_config", default=None,
                       help="Kafka client settings in the Java client.properties format (as the Kafka CLIs' "
                            "--command-config); the flags above override it")
        g.add_argument("--kafka-property", dest="kafka_property", action="append", default=None,
                       help="key=value, repeatable: a client setting that overrides --kafka-config (no secrets)")
        g.add_argument("--sasl-plain-password-file", dest="sasl_plain_password_file", default=None,
                       help=f"Read the SASL password from this file (else ${PASSWORD_ENV}, else --kafka-config)")
        g.add_argument("--sasl-plain-password-secret", dest="sasl_plain_password_secret", default=None,
                       help="Secret Manager secret with the SASL password (projects/P/secrets/S[/versions/V]), "
                            "read by each worker")
        g.add_argument("--schema-registry-url", dest="schema_registry_url", default=None,
                       help="Confluent-API schema registry (e.g. http://host:8081, or Apicurio's "
                            ".../apis/ccompat/v7): writer schemas by each input's id, output ids by "
                            "<topic>-value; without it the ids of schemas/registry.json")
        g.add_argument("--schema-registry-user", dest="schema_registry_user", default=None,
                       help="Schema registry basic-auth user")
        g.add_argument("--schema-registry-password-file", dest="schema_registry_password_file", default=None,
                       help=f"File holding the basic-auth password (or set {REGISTRY_PASSWORD_ENV})")
        g.add_argument("--schema-registry-ca-file", dest="schema_registry_ca_file", default=None,
                       help="PEM file of the CA that signed the registry's TLS certificate")
        g.add_argument("--schema-registry-retry-timeout-s", dest="schema_registry_retry_timeout_s", type=float,
                       default=300.0, help="How long an unreachable registry is retried before the "
                                           "bundle fails (its offsets stay uncommitted)")


def parse_time_ms(text: str) -> int:
    """An ISO-8601 time (naive means UTC) in epoch milliseconds."""
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as e:
        raise ConfigError(f"not an ISO-8601 time: {text!r}") from e
    if t.tzinfo is None:
        t = t.replace(tzinfo=UTC)
    return int(t.timestamp() * 1000)


@dataclass(frozen=True)
class KafkaSettings:
    bootstrap_servers: str
    security: KafkaSecurity = field(default_factory=KafkaSecurity)
    client: ClientName = DEFAULT_CLIENT

    def client_config(self) -> dict[str, Any]:
        return {"bootstrap_servers": self.bootstrap_servers, **self.security.client_kwargs()}


@dataclass(frozen=True)
class StreamConfig:
    kafka: KafkaSettings
    input_topic: str
    output_topic: str
    dead_letter_topic: str
    review_topic: str | None
    audit_topic: str | None
    group_id: str
    start_from: str | int
    stop_at: str | int | None
    model_dir: str
    apply_threshold: float | None
    review_threshold: float | None
    batch_size: int
    max_records_per_poll: int
    max_payload_bytes: int
    archive_dir: str | None
    profile_dir: str | None = None
    profile_refresh_s: float = 60.0
    # None: the partitions at start only.
    partition_discovery_interval_s: float | None = DEFAULT_PARTITION_DISCOVERY_INTERVAL_S
    schema_registry: RegistrySettings | None = None


def _start_position(text: str) -> str | int:
    if text in ("earliest", "latest", "committed"):
        return text
    return parse_time_ms(text)


def _stop_position(text: str | None) -> str | int | None:
    if text is None or text == "end":
        return text
    return parse_time_ms(text)


def resolve_model_dir(model_dir: str | None) -> str:
    return model_dir or os.environ.get("METAFIX_MODEL_DIR") or DEFAULT_MODEL_DIR


def _check_thresholds(o: MetafixOptions) -> None:
    a, r = o.apply_threshold, o.review_threshold
    for name, v in (("--apply-threshold", a), ("--review-threshold", r)):
        if v is not None and not 0.0 <= v <= 1.0:
            raise ConfigError(f"{name} must be between 0 and 1, got {v}")
    if a is not None and r is not None and r > a:
        raise ConfigError(f"--review-threshold ({r}) must not exceed --apply-threshold ({a})")
    if o.batch_size < 1:
        raise ConfigError("--batch-size must be at least 1")
    if o.profile_refresh_s <= 0:
        raise ConfigError("--profile-refresh-s must be positive")


def read_kafka_config(path: str) -> dict[str, str]:
    """The properties of a ``--kafka-config`` file (UTF-8; Latin-1, Java's own reading, as a fallback)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(f"--kafka-config: cannot read {path}: {e.strerror}") from e
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        text = raw.decode("latin-1")
    try:
        return parse_properties(text)
    except ClientPropertyError as e:
        raise ConfigError(f"--kafka-config {path}: {e}") from e


def kafka_settings(o: MetafixOptions, environ: Mapping[str, str] = os.environ) -> KafkaSettings:
    """Kafka settings from, lowest precedence first: --kafka-config, --kafka-property, the flags.

    The SASL password comes from the first of: --sasl-plain-password-file,
    --sasl-plain-password-secret (read where a client is made), --sasl-plain-password,
    $METAFIX_SASL_PLAIN_PASSWORD, the properties file.
    """
    properties = read_kafka_config(o.kafka_config) if o.kafka_config else {}
    try:
        properties |= parse_overrides(o.kafka_property or [])
        mapped = map_properties(properties, o.kafka_client)
    except ClientPropertyError as e:
        source = f"--kafka-config {o.kafka_config}" if o.kafka_config else "--kafka-property"
        raise ConfigError(f"{source}: {e}") from e
    bootstrap = o.bootstrap_servers or mapped.bootstrap_servers
    if not bootstrap:
        raise ConfigError("--bootstrap-servers is required")
    security = mapped.security | {f: getattr(o, f) for f in SECURITY_FLAGS if getattr(o, f) is not None}
    security.update(_password(o, environ))
    return KafkaSettings(bootstrap, KafkaSecurity(**security, properties=mapped.passthrough), o.kafka_client)


def _password(o: MetafixOptions, environ: Mapping[str, str]) -> dict[str, str]:
    """The password source given explicitly, as KafkaSecurity fields; empty to keep the file's."""
    given = [flag for flag, value in (("--sasl-plain-password-file", o.sasl_plain_password_file),
                                      ("--sasl-plain-password-secret", o.sasl_plain_password_secret),
                                      ("--sasl-plain-password", o.sasl_plain_password)) if value]
    if len(given) > 1:
        raise ConfigError(f"give the SASL password one way, not with {' and '.join(given)}")
    try:
        if o.sasl_plain_password_file:
            return {"sasl_plain_password": read_secret_file(o.sasl_plain_password_file)}
        if o.sasl_plain_password_secret:
            secret = secret_version_name(o.sasl_plain_password_secret)
            return {"sasl_plain_password": None, "sasl_plain_password_secret": secret}
    except SecretError as e:
        raise ConfigError(str(e)) from e
    if o.sasl_plain_password:
        # Beam also hands every known option to the runner, which shows them (Prism's UI, Dataflow's).
        log.warning("--sasl-plain-password shows in ps and in the runner's pipeline options: give the password "
                    "with --sasl-plain-password-file, $%s or --kafka-config instead", PASSWORD_ENV)
        return {}
    if environ.get(PASSWORD_ENV):
        return {"sasl_plain_password": environ[PASSWORD_ENV]}
    return {}


def registry_settings(o: MetafixOptions) -> RegistrySettings | None:
    """The schema registry's settings; the password from its file, else from the environment."""
    if not o.schema_registry_url:
        for flag, value in (("--schema-registry-user", o.schema_registry_user),
                            ("--schema-registry-password-file", o.schema_registry_password_file),
                            ("--schema-registry-ca-file", o.schema_registry_ca_file)):
            if value:
                raise ConfigError(f"{flag} needs --schema-registry-url")
        return None
    if not o.schema_registry_url.startswith(("http://", "https://")):
        raise ConfigError(f"--schema-registry-url must be an http:// or https:// URL, got {o.schema_registry_url!r}")
    if o.schema_registry_retry_timeout_s < 0:
        raise ConfigError("--schema-registry-retry-timeout-s must not be negative")
    password = os.environ.get(REGISTRY_PASSWORD_ENV)
    if o.schema_registry_password_file:
        try:
            password = Path(o.schema_registry_password_file).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as e:
            raise ConfigError(f"--schema-registry-password-file: cannot read it: {e.strerror}") from e
    if password is not None and not o.schema_registry_user:
        raise ConfigError("a schema registry password needs --schema-registry-user")
    if o.schema_registry_ca_file and not Path(o.schema_registry_ca_file).is_file():
        raise ConfigError(f"--schema-registry-ca-file: no such file: {o.schema_registry_ca_file}")
    return RegistrySettings(
        url=o.schema_registry_url,
        username=o.schema_registry_user,
        password=password,
        ca_file=o.schema_registry_ca_file,
        retry_timeout_s=o.schema_registry_retry_timeout_s,
    )


def stream_config(options: PipelineOptions) -> StreamConfig:
    o = options.view_as(MetafixOptions)
    for flag, value in (("--input-topic", o.input_topic), ("--output-topic", o.output_topic),
                        ("--dead-letter-topic", o.dead_letter_topic)):
        if not value:
            raise ConfigError(f"{flag} is required")
    _check_thresholds(o)
    if o.partition_discovery_interval_s < 0:
        raise ConfigError("--partition-discovery-interval-s must be 0 (off) or positive")
    return StreamConfig(
        kafka=kafka_settings(o),
        input_topic=o.input_topic,
        output_topic=o.output_topic,
        dead_letter_topic=o.dead_letter_topic,
        review_topic=o.review_topic,
        audit_topic=o.audit_topic,
        group_id=o.group_id,
        start_from=_start_position(o.start_from),
        stop_at=_stop_position(o.stop_at),
        model_dir=resolve_model_dir(o.model_dir),
        apply_threshold=o.apply_threshold,
        review_threshold=o.review_threshold,
        batch_size=o.batch_size,
        max_records_per_poll=o.max_records_per_poll,
        max_payload_bytes=o.max_payload_bytes,
        archive_dir=o.archive_dir,
        profile_dir=o.profile_dir,
        profile_refresh_s=o.profile_refresh_s,
        partition_discovery_interval_s=o.partition_discovery_interval_s or None,
        schema_registry=registry_settings(o),
    )


@dataclass(frozen=True)
class ReplayConfig:
    input_pattern: str | None
    kafka: KafkaSettings | None
    input_topic: str | None
    start_from: str | int
    stop_at: str | int | None
    output: str | None
    output_format: str
    output_topic: str | None
    dead_letter_topic: str | None
    model_dir: str
    apply_threshold: float | None
    review_threshold: float | None
    batch_size: int
    max_payload_bytes: int
    progress: bool
    profile_dir: str | None = None
    schema_registry: RegistrySettings | None = None
    # True: the replay writes profile_dir itself, from its input, before it corrects.
    profile_from_input: bool = False


def replay_config(options: PipelineOptions, *, interactive: bool) -> ReplayConfig:
    o = options.view_as(MetafixOptions)
    if bool(o.input) == bool(o.input_topic):
        raise ConfigError("give either --input (event-log files) or --input-topic (a Kafka topic)")
    if not o.output and not o.output_topic:
        raise ConfigError("give --output (files) and/or --output-topic (Kafka)")
    if o.output_topic and not o.dead_letter_topic and not o.output:
        raise ConfigError("--output-topic needs --dead-letter-topic (or --output for dead-letter files)")
    _check_thresholds(o)
    kafka = kafka_settings(o) if (o.input_topic or o.output_topic) else None
    # A replay never reads or moves the stream's group offsets.
    start_from = _start_position("earliest" if o.start_from == "committed" else o.start_from)
    stop_at = _stop_position(o.stop_at or ("end" if o.input_topic else None))
    return ReplayConfig(
        input_pattern=o.input,
        kafka=kafka,
        input_topic=o.input_topic,
        start_from=start_from,
        stop_at=stop_at,
        output=o.output,
        output_format=o.output_format,
        output_topic=o.output_topic,
        dead_letter_topic=o.dead_letter_topic,
        model_dir=resolve_model_dir(o.model_dir),
        apply_threshold=o.apply_threshold,
        review_threshold=o.review_threshold,
        batch_size=o.batch_size,
        max_payload_bytes=o.max_payload_bytes,
        progress=o.progress == "on" or (o.progress == "auto" and interactive),
        profile_dir=o.profile_dir,
        schema_registry=registry_settings(o),
    )


def wants_help(argv: Sequence[str] | None, prog: str, doc: str | None) -> bool:
    """Prints the metafix flags for ``--help``; any standard Beam option is accepted too."""
    if not {"-h", "--help"} & set(argv or []):
        return False
    parser = argparse.ArgumentParser(prog=prog, description=doc,
                                     epilog="Standard Beam pipeline options (--runner, ...) are accepted too.")
    MetafixOptions._add_argparse_args(parser)  # the options class owns its flags
    parser.print_help()
    return True
