"""Kafka client settings from a Java ``client.properties`` file, mapped onto the client in use.

    props = parse_properties(Path("client.properties").read_text())  # what `kafka-*.sh --command-config` reads
    props |= parse_overrides(["client.id=metafix-7"])                 # --kafka-property, later wins
    settings = map_properties(props, "confluent")                     # ClientPropertyError for a key it cannot take

Keys are the Java client's names (``security.protocol``, ``sasl.jaas.config``,
``ssl.truststore.location``...), and librdkafka's names where they differ
(``sasl.username``, ``ssl.ca.location``...), since confluent users keep those. A key
neither client understands, or one the client in use has no counterpart for, is an
error: a silently ignored ``ssl.truststore.location`` would connect without the CA the
operator meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Keys whose values are secrets: never accepted on a command line, never shown.
SECRET_KEYS = frozenset({"sasl.jaas.config", "sasl.password", "ssl.key.password"})

_WHITESPACE = " \t\f"
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}


class ClientPropertyError(ValueError):
    """A properties file or key that cannot be used; the message is one line for the user."""


# The java.util.Properties.load format


def parse_properties(text: str) -> dict[str, str]:
    """Key/value pairs of a ``.properties`` text, as ``java.util.Properties.load`` reads them.

    >>> parse_properties("# comment\\n! also\\na=1\\nb : two words\\nc=\\\\\\n   continued\\nd\\\\:e=\\\\u0041\\n")
    {'a': '1', 'b': 'two words', 'c': 'continued', 'd:e': 'A'}
    """
    entries: dict[str, str] = {}
    for line in _logical_lines(text):
        key, value = _split_entry(line)
        entries[_unescape(key)] = _unescape(value)
    return entries


def _logical_lines(text: str) -> Iterator[str]:
    lines = re.split(r"\r\n|\r|\n", text)
    i = 0
    while i < len(lines):
        line = lines[i].lstrip(_WHITESPACE)
        i += 1
        # A comment is recognised only at the start of a logical line, and never continues.
        if not line or line[0] in "#!":
            continue
        # An odd number of trailing backslashes joins the next line, minus its leading blanks.
        while _continues(line) and i < len(lines):
            line = line[:-1] + lines[i].lstrip(_WHITESPACE)
            i += 1
        yield line


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split_entry(line: str) -> tuple[str, str]:
    """The key ends at the first unescaped ``=``, ``:`` or blank; one separator and the blanks around it go."""
    i = 0
    while i < len(line) and not (line[i] in "=:" or line[i] in _WHITESPACE):
        i += 2 if line[i] == "\\" else 1
    key, rest = line[:i], line[i:].lstrip(_WHITESPACE)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_WHITESPACE)
    return key, rest


def _unescape(text: str) -> str:
    out = []
    i = 0
    while i < len(text):
        char = text[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        following = text[i + 1:i + 2]
        if following == "u":
            digits = text[i + 2:i + 6]
            if not re.fullmatch(r"[0-9a-fA-F]{4}", digits):
                raise ClientPropertyError(f"malformed \\uXXXX escape: \\u{digits}")
            out.append(chr(int(digits, 16)))
            i += 6
        else:
            # A lone backslash at the very end is dropped, as Java does.
            out.append(_ESCAPES.get(following, following))
            i += 2
    return "".join(out)


def parse_overrides(items: Sequence[str]) -> dict[str, str]:
    """``--kafka-property key=value`` items; a secret key is refused (a command line shows in ``ps``).

    >>> parse_overrides(["client.id=metafix", "request.timeout.ms = 40000"])
    {'client.id': 'metafix', 'request.timeout.ms': '40000'}
    """
    entries = {}
    for item in items:
        key, sep, value = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ClientPropertyError(f"--kafka-property wants key=value, got {item!r}")
        if key in SECRET_KEYS:
            raise ClientPropertyError(
                f"--kafka-property {key}: secrets never go on a command line (ps shows it); put it in the "
                "--kafka-config file, or give the password with --sasl-plain-password-file or $METAFIX_SASL_PLAIN_PASSWORD"
            )
        entries[key] = value.strip()
    return entries


# sasl.jaas.config


_JAAS_TOKEN = re.compile(r'\s*(?:"((?:[^"\\]|\\.)*)"|([^\s=;"]+)|(=)|(;))', re.DOTALL)
_JAAS_MODULES = {
    "org.apache.kafka.common.security.plain.PlainLoginModule": ("PLAIN",),
    "org.apache.kafka.common.security.scram.ScramLoginModule": ("SCRAM-SHA-256", "SCRAM-SHA-512"),
}


def parse_jaas_config(value: str) -> tuple[str, dict[str, str]]:
    """The login module and its options of a one-module ``sasl.jaas.config`` value.

    >>> parse_jaas_config('org.apache.kafka.common.security.plain.PlainLoginModule required '
    ...                   'username="alice" password="p\\\\"w";')
    ('org.apache.kafka.common.security.plain.PlainLoginModule', {'username': 'alice', 'password': 'p"w'})
    """
    tokens = []
    position = 0
    text = value.strip()
    while position < len(text):
        match = _JAAS_TOKEN.match(text, position)
        if match is None:
            raise ClientPropertyError("sasl.jaas.config: cannot parse it (a quote left open?)")
        quoted, word, equals, semicolon = match.groups()
        if quoted is not None:
            tokens.append(("value", re.sub(r"\\(.)", r"\1", quoted, flags=re.DOTALL)))
        elif word is not None:
            tokens.append(("value", word))
        else:
            tokens.append(("=", "=") if equals else (";", ";"))
        position = match.end()
    # ModuleName Flag (key = value)* ;
    if len(tokens) < 3 or tokens[-1][0] != ";" or tokens[0][0] != "value" or tokens[1][0] != "value":
        raise ClientPropertyError("sasl.jaas.config: expected '<LoginModule> required key=\"value\" ... ;'")
    module, options_tokens = tokens[0][1], tokens[2:-1]
    if len(options_tokens) % 3 or any(t[0] == ";" for t in options_tokens):
        raise ClientPropertyError("sasl.jaas.config: one login module with key=\"value\" options is supported")
    options = {}
    for i in range(0, len(options_tokens), 3):
        (k_kind, key), (eq, _), (v_kind, option) = options_tokens[i:i + 3]
        if (k_kind, eq, v_kind) != ("value", "=", "value"):
            raise ClientPropertyError("sasl.jaas.config: expected key=\"value\" options")
        options[key] = option
    return module, options


# The mapping onto the two clients


@dataclass(frozen=True)
class Passthrough:
    """A setting both clients have, under their own names; None where a client has none."""

    librdkafka: str | None
    kafka_python: str | None
    integer: bool = False

    def value(self, text: str) -> Any:
        return int(text) if self.integer else text


# Java name -> its counterpart in each client. Only settings with the same meaning in both.
PASSTHROUGH: Mapping[str, Passthrough] = {
    "client.id": Passthrough("client.id", "client_id"),
    "request.timeout.ms": Passthrough("socket.timeout.ms", "request_timeout_ms", integer=True),
    "metadata.max.age.ms": Passthrough("metadata.max.age.ms", "metadata_max_age_ms", integer=True),
    "reconnect.backoff.ms": Passthrough("reconnect.backoff.ms", "reconnect_backoff_ms", integer=True),
    "reconnect.backoff.max.ms": Passthrough("reconnect.backoff.max.ms", "reconnect_backoff_max_ms", integer=True),
    "retry.backoff.ms": Passthrough("retry.backoff.ms", "retry_backoff_ms", integer=True),
    "connections.max.idle.ms": Passthrough("connections.max.idle.ms", "connections_max_idle_ms", integer=True),
    "receive.buffer.bytes": Passthrough("socket.receive.buffer.bytes", "receive_buffer_bytes", integer=True),
    "send.buffer.bytes": Passthrough("socket.send.buffer.bytes", "send_buffer_bytes", integer=True),
    "ssl.crl.location": Passthrough("ssl.crl.location", None),
    # librdkafka-only: kafka-python always verifies a certificate it is given a CA for.
    "enable.ssl.certificate.verification": Passthrough("enable.ssl.certificate.verification", None),
}

# Key -> the KafkaSecurity field it sets (both clients take these, streaming/kafka_clients.py).
SECURITY_KEYS: Mapping[str, str] = {
    "security.protocol": "security_protocol",
    "sasl.mechanism": "sasl_mechanism",
    "sasl.mechanisms": "sasl_mechanism",  # librdkafka's spelling
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.truststore.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
    "ssl.key.password": "ssl_password",
}

# Keys metafix sets itself, and the flag to use instead.
_OWN_KEYS = {
    "group.id": "--group-id",
    "enable.auto.commit": "metafix commits offsets after each written bundle",
    "auto.offset.reset": "--start-from",
    "acks": "metafix always writes with acks=all",
    "enable.idempotence": "metafix always writes idempotently",
    "key.serializer": "metafix writes bytes",
    "value.serializer": "metafix writes bytes",
    "key.deserializer": "metafix reads bytes",
    "value.deserializer": "metafix reads bytes",
}


@dataclass(frozen=True)
class MappedProperties:
    """What a properties set means for the job: security fields, pass-through settings, bootstrap."""

    security: dict[str, Any]
    passthrough: tuple[tuple[str, str], ...]
    bootstrap_servers: str | None


def map_properties(props: Mapping[str, str], client: str) -> MappedProperties:
    """Maps Java/librdkafka keys onto KafkaSecurity fields and pass-through settings for ``client``.

    >>> m = map_properties({"security.protocol": "SASL_SSL", "sasl.mechanism": "PLAIN",
    ...                     "ssl.endpoint.identification.algorithm": "", "client.id": "c1"}, "kafka-python")
    >>> m.security, m.passthrough
    ({'security_protocol': 'SASL_SSL', 'sasl_mechanism': 'PLAIN', 'ssl_check_hostname': False}, (('client.id', 'c1'),))
    """
    security: dict[str, Any] = {}
    passthrough = []
    # Java's default truststore type is JKS, which neither client reads.
    truststore_type = props.get("ssl.truststore.type", "JKS").upper()
    for key, value in props.items():
        if key in ("ssl.truststore.location", "ssl.truststore.type") and truststore_type != "PEM":
            raise ClientPropertyError(
                f"ssl.truststore.type={truststore_type}: only PEM files are supported; export the CA with "
                "`keytool -exportcert -rfc`, point ssl.truststore.location at it and set ssl.truststore.type=PEM"
            )
        if key in SECURITY_KEYS:
            security[SECURITY_KEYS[key]] = value
        elif key == "sasl.jaas.config":
            security.update(_jaas_credentials(value))
        elif key == "ssl.endpoint.identification.algorithm":
            # Java disables the check with an empty value, librdkafka with "none".
            if value.lower() not in ("https", "", "none"):
                raise ClientPropertyError(f"{key}: 'https' or '' (none), got {value!r}")
            security["ssl_check_hostname"] = value.lower() == "https"
        elif key == "ssl.truststore.type":
            continue
        elif key in PASSTHROUGH:
            entry = PASSTHROUGH[key]
            if (entry.librdkafka if client == "confluent" else entry.kafka_python) is None:
                raise ClientPropertyError(f"{key} is not supported with --kafka-client {client}")
            if entry.integer and not re.fullmatch(r"-?[0-9]+", value):
                raise ClientPropertyError(f"{key} must be an integer, got {value!r}")
            passthrough.append((key, value))
        elif key == "bootstrap.servers":
            continue
        elif key in _OWN_KEYS:
            raise ClientPropertyError(f"{key} is set by metafix ({_OWN_KEYS[key]})")
        else:
            raise ClientPropertyError(f"unknown or unsupported Kafka client property {key!r}")
    return MappedProperties(security, tuple(passthrough), props.get("bootstrap.servers"))


def _jaas_credentials(value: str) -> dict[str, str]:
    module, options = parse_jaas_config(value)
    if module not in _JAAS_MODULES:
        raise ClientPropertyError(
            f"sasl.jaas.config: {module.rsplit('.', 1)[-1]} is not supported (PlainLoginModule or ScramLoginModule)"
        )
    unknown = set(options) - {"username", "password"}
    if unknown:
        raise ClientPropertyError(f"sasl.jaas.config: unsupported option(s) {', '.join(sorted(unknown))}")
    credentials = {}
    if "username" in options:
        credentials["sasl_plain_username"] = options["username"]
    if "password" in options:
        credentials["sasl_plain_password"] = options["password"]
    return credentials
