"""A Confluent-API schema registry, as the jobs use it: writer schemas in, output schema ids out.

    settings = RegistrySettings("http://127.0.0.1:18181/apis/ccompat/v7")
    client = connect(settings)                       # in a DoFn's setup(), never pickled
    writer_schemas = WriterSchemaCache(client, settings.retry_timeout_s)
    codec.decode_event(payload, writer_schemas=writer_schemas)
    output_schema_id(client, "catalog.corrected-value", schema_text("corrected_record.avsc"), 300)

Ids the registry does not know, and schemas that are not Avro, are ``codec.DecodeError``s
(dead letters). A registry that does not answer is retried with back-off for
``retry_timeout_s``; then ``RegistryUnavailableError`` fails the bundle, so its offsets stay
uncommitted and nothing is lost or dead-lettered for an outage (as a Kafka write that
cannot be made within its bound fails the job, see ``streaming/kafkaio.py``).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import fastavro
import httpx2
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas import CATALOG_UPDATE_EVENT
from transforms.codec import INCOMPATIBLE_SCHEMA, UNKNOWN_SCHEMA_ID, DecodeError

log = logging.getLogger(__name__)

PASSWORD_ENV = "METAFIX_SCHEMA_REGISTRY_PASSWORD"
# The Confluent API's error codes (the HTTP status is 404 for each).
SUBJECT_NOT_FOUND = 40401
SCHEMA_NOT_FOUND = 40403
# An id unknown now is asked again after this long: a registry replica may lag behind the
# one the producer registered with. Until then hostile ids cost no request each.
UNKNOWN_RECHECK_S = 60.0

T = TypeVar("T")


@dataclass(frozen=True)
class RegistrySettings:
    """Plain, picklable settings; the password is left out of the repr (and so of logs)."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_file: str | None = None
    retry_timeout_s: float = 300.0
    request_timeout_s: float = 10.0

    def client_config(self) -> dict[str, Any]:
        """confluent-kafka's ``SchemaRegistryClient`` configuration; retries are this module's."""
        config: dict[str, Any] = {"url": self.url, "timeout": self.request_timeout_s, "max.retries": 0}
        if self.username is not None:
            config["basic.auth.user.info"] = f"{self.username}:{self.password or ''}"
        if self.ca_file is not None:
            config["ssl.ca.location"] = self.ca_file
        return config


class RegistryUnavailableError(RuntimeError):
    """The registry did not answer within the retry bound (or refused the credentials)."""


def connect(settings: RegistrySettings) -> SchemaRegistryClient:
    return SchemaRegistryClient(settings.client_config())


def _is_not_found(error: SchemaRegistryError, *codes: int) -> bool:
    # A plain 404 without a Confluent error code is a wrong URL, not an unknown schema.
    return error.http_status_code == 404 and error.error_code in codes


def _backoff_s(failures: int) -> float:
    """0.5, 1, 2, 4 ... seconds, at most 10: an outage is noticed soon after it ends."""
    return min(0.5 * 2**failures, 10.0)


def _is_transient(error: SchemaRegistryError) -> bool:
    return error.http_status_code is None or error.http_status_code >= 500 or error.http_status_code in (408, 429)


def with_retries(call: Callable[[], T], what: str, retry_timeout_s: float) -> T:
    """``call()``, retried with back-off while the registry is unreachable or failing (5xx, 429).

    Its answers (a 404, a refused registration) are raised at once as ``SchemaRegistryError``;
    a failure that lasts past ``retry_timeout_s`` becomes ``RegistryUnavailableError``.
    """
    started = time.monotonic()
    failures = 0
    while True:
        try:
            return call()
        except SchemaRegistryError as e:
            if not _is_transient(e):
                raise
            error = f"HTTP {e.http_status_code}: {e.error_message}"
        except httpx2.HTTPError as e:
            error = f"{type(e).__name__}: {e}"
        if time.monotonic() - started > retry_timeout_s:
            raise RegistryUnavailableError(f"schema registry: {what} failed for {retry_timeout_s:.0f} s: {error}")
        delay_s = _backoff_s(failures)
        failures += 1
        log.warning("schema registry: %s failed (%s); retry %d in %.1f s", what, error, failures, delay_s)
        time.sleep(delay_s)


def _refused(what: str, error: SchemaRegistryError) -> RegistryUnavailableError:
    # Wrong credentials or a wrong URL: every record would fail alike, so the bundle fails.
    return RegistryUnavailableError(f"schema registry: {what} was refused: HTTP {error.http_status_code}: "
                               f"{error.error_message}")


def parse_writer_schema(schema_id: int, schema: Schema) -> dict[str, Any]:
    """The registry's schema for ``schema_id``, parsed; a schema metafix cannot read is a DecodeError."""
    if (schema.schema_type or "AVRO") != "AVRO":
        raise DecodeError(INCOMPATIBLE_SCHEMA, f"schema id {schema_id} is a {schema.schema_type} schema, not Avro")
    if schema.references:
        raise DecodeError(INCOMPATIBLE_SCHEMA, f"schema id {schema_id} references other subjects, "
                                               "which metafix does not resolve")
    try:
        parsed = fastavro.parse_schema(json.loads(schema.schema_str))
    except Exception as e:  # json and fastavro raise many types for a bad schema
        raise DecodeError(INCOMPATIBLE_SCHEMA, f"schema id {schema_id} does not parse: {type(e).__name__}: "
                                               f"{str(e)[:300]}") from e
    # metafix's own schema is returned as itself: decoding skips resolution for it.
    return CATALOG_UPDATE_EVENT if parsed == CATALOG_UPDATE_EVENT else parsed


class WriterSchemaCache:
    """``codec.WriterSchemas`` over a registry: each id is fetched and parsed once."""

    def __init__(self, client: SchemaRegistryClient, retry_timeout_s: float):
        self._client = client
        self._retry_timeout_s = retry_timeout_s
        self._schemas: dict[int, dict[str, Any] | DecodeError] = {}
        self._unknown_until: dict[int, float] = {}

    def __call__(self, schema_id: int) -> dict[str, Any]:
        known = self._schemas.get(schema_id)
        if known is None:
            known = self._fetch(schema_id)
        if isinstance(known, DecodeError):
            raise known
        return known

    def _fetch(self, schema_id: int) -> dict[str, Any] | DecodeError:
        if time.monotonic() < self._unknown_until.get(schema_id, float("-inf")):
            return DecodeError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not in the schema registry")
        what = f"fetching schema {schema_id}"
        try:
            schema = with_retries(lambda: self._client.get_schema(schema_id), what, self._retry_timeout_s)
        except SchemaRegistryError as e:
            if not _is_not_found(e, SCHEMA_NOT_FOUND):
                raise _refused(what, e) from e
            self._unknown_until[schema_id] = time.monotonic() + UNKNOWN_RECHECK_S
            return DecodeError(UNKNOWN_SCHEMA_ID, f"schema id {schema_id} is not in the schema registry")
        try:
            parsed: dict[str, Any] | DecodeError = parse_writer_schema(schema_id, schema)
        except DecodeError as e:
            parsed = e
        self._schemas[schema_id] = parsed
        return parsed


def output_schema_id(client: SchemaRegistryClient, subject: str, schema_text: str, retry_timeout_s: float) -> int:
    """The id of ``schema_text`` under ``subject``: looked up, or registered when it is not there yet.

    Looking up first lets a job whose credentials may only read use schemas registered ahead.
    """
    schema = Schema(schema_text, "AVRO")
    what = f"looking up {subject}"
    try:
        return with_retries(lambda: client.lookup_schema(subject, schema).schema_id, what, retry_timeout_s)
    except SchemaRegistryError as e:
        if not _is_not_found(e, SUBJECT_NOT_FOUND, SCHEMA_NOT_FOUND):
            raise _refused(what, e) from e
    what = f"registering {subject}"
    try:
        return with_retries(lambda: client.register_schema(subject, schema), what, retry_timeout_s)
    except SchemaRegistryError as e:  # e.g. incompatible with the subject's compatibility rule
        raise _refused(what, e) from e


def check_reachable(settings: RegistrySettings) -> None:
    """Lists the subjects once, without retries; raises ``RegistryUnavailableError`` with one line."""
    client = connect(settings)
    try:
        subjects = client.get_subjects()
    except SchemaRegistryError as e:
        if e.http_status_code in (401, 403):
            raise RegistryUnavailableError(f"the schema registry at {settings.url} refused the credentials "
                                      f"(user {settings.username!r}): HTTP {e.http_status_code}") from e
        raise RegistryUnavailableError(f"{settings.url} does not answer as a Confluent-API schema registry: "
                                  f"HTTP {e.http_status_code}") from e
    except httpx2.HTTPError as e:
        raise RegistryUnavailableError(f"cannot reach the schema registry at {settings.url}: "
                                  f"{type(e).__name__}: {e}") from e
    if not isinstance(subjects, list):
        raise RegistryUnavailableError(f"{settings.url} does not answer as a Confluent-API schema registry")
