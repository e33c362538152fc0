"""--kafka-config / --kafka-property and the SASL password's sources (streaming/client_properties.py,
streaming/secret_sources.py, options.kafka_settings): pure parsing and mapping, no broker."""

from __future__ import annotations

import pickle
from pathlib import Path

import confluent_kafka
import kafka
import pytest
from apache_beam.options.pipeline_options import PipelineOptions

from streaming.client_properties import (
    PASSTHROUGH,
    ClientPropertyError,
    map_properties,
    parse_jaas_config,
    parse_overrides,
    parse_properties,
)
from streaming.kafka_clients import CLIENT_NAMES, KafkaSecurity
from streaming.main import main
from streaming.options import ConfigError, MetafixOptions, kafka_settings
from streaming.secret_sources import (
    PASSWORD_ENV,
    SecretError,
    read_secret_file,
    secret_version_name,
)

PLAIN_JAAS = 'org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="{pw}";'


# The properties format


@pytest.mark.parametrize(("text", "expected"), [
    ("a=1\nb:2\nc 3\n", {"a": "1", "b": "2", "c": "3"}),
    ("  key  =  value with  spaces  ", {"key": "value with  spaces  "}),
    ("# a comment\n! another\n\n   \nk=v", {"k": "v"}),
    ("k=v # not a comment", {"k": "v # not a comment"}),
    ("k=first\\\n    second\\\n\tthird", {"k": "firstsecondthird"}),
    # A continuation line that starts with # is part of the value, not a comment.
    ("k=a\\\n#b", {"k": "a#b"}),
    # An even number of trailing backslashes is an escaped backslash, no continuation.
    ("k=a\\\\\nj=b", {"k": "a\\", "j": "b"}),
    ("a\\=b\\:c\\ d=e", {"a=b:c d": "e"}),
    ("k=tab\\there\\nnewline\\u00e9\\q", {"k": "tab\there\nnewline\u00e9q"}),
    ("k=\r\nj=1\rl=2", {"k": "", "j": "1", "l": "2"}),
    ("k==v", {"k": "=v"}),
    ("k=1\nk=2", {"k": "2"}),
    ("lonely", {"lonely": ""}),
])
def test_properties_are_read_as_java_reads_them(text: str, expected: dict[str, str]) -> None:
    assert parse_properties(text) == expected


def test_a_malformed_unicode_escape_is_an_error() -> None:
    with pytest.raises(ClientPropertyError, match="uXXXX"):
        parse_properties("k=\\u12G4")


def test_jaas_config_credentials_with_quotes_and_escapes() -> None:
    module, options = parse_jaas_config(
        'org.apache.kafka.common.security.scram.ScramLoginModule required\n  username="bob"  password="a \\"b\\" ;c";'
    )
    assert module.endswith("ScramLoginModule")
    assert options == {"username": "bob", "password": 'a "b" ;c'}


@pytest.mark.parametrize("value", [
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="b"',  # no ;
    'org.apache.kafka.common.security.plain.PlainLoginModule required username="a" password="b;',  # open quote
    'org.apache.kafka.common.security.plain.PlainLoginModule required username "a";',
])
def test_malformed_jaas_configs_are_errors(value: str) -> None:
    with pytest.raises(ClientPropertyError, match="sasl.jaas.config"):
        parse_jaas_config(value)


# The mapping


def test_a_client_properties_file_maps_onto_both_clients() -> None:
    props = parse_properties(
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=PLAIN\n"
        f"sasl.jaas.config={PLAIN_JAAS.format(pw='s3cret')}\n"
        "ssl.truststore.type=PEM\n"
        "ssl.truststore.location=/etc/kafka/ca.pem\n"
        "client.id=metafix-1\n"
        "request.timeout.ms=45000\n"
    )
    for client in CLIENT_NAMES:
        mapped = map_properties(props, client)
        security = KafkaSecurity(**mapped.security, properties=mapped.passthrough)
        kwargs = security.client_kwargs()
        assert kwargs["sasl_plain_username"] == "alice" and kwargs["sasl_plain_password"] == "s3cret"
        assert kwargs["ssl_cafile"] == "/etc/kafka/ca.pem" and kwargs["ssl_check_hostname"] is True
        assert (kwargs["client_id"], kwargs["request_timeout_ms"]) == ("metafix-1", 45000)
        config = security.librdkafka_config()
        assert config["security.protocol"] == "SASL_SSL" and config["sasl.password"] == "s3cret"
        assert config["ssl.ca.location"] == "/etc/kafka/ca.pem"
        assert config["ssl.endpoint.identification.algorithm"] == "https"
        assert (config["client.id"], config["socket.timeout.ms"]) == ("metafix-1", "45000")
        assert "s3cret" not in repr(security)


def test_every_pass_through_setting_is_one_the_client_knows() -> None:
    python_known = set(kafka.KafkaConsumer.DEFAULT_CONFIG) & set(kafka.KafkaProducer.DEFAULT_CONFIG)
    assert {e.kafka_python for e in PASSTHROUGH.values() if e.kafka_python} <= python_known
    # librdkafka refuses an unknown property when the client is made.
    config = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g"}
    config |= {e.librdkafka: "1000" if e.integer else "true" if "enable" in e.librdkafka else "x"
               for e in PASSTHROUGH.values() if e.librdkafka and e.librdkafka != "ssl.crl.location"}
    consumer = confluent_kafka.Consumer(config)
    consumer.close()


def test_endpoint_identification_off_the_java_way_and_librdkafkas() -> None:
    for value in ("", "none"):
        mapped = map_properties({"security.protocol": "SSL", "ssl.endpoint.identification.algorithm": value}, "confluent")
        assert KafkaSecurity(**mapped.security).librdkafka_config()["ssl.endpoint.identification.algorithm"] == "none"
    with pytest.raises(ClientPropertyError):
        map_properties({"ssl.endpoint.identification.algorithm": "http"}, "confluent")


@pytest.mark.parametrize(("props", "client", "message"), [
    ({"sasl.kerberos.principal.to.local.rules": "x"}, "confluent", "unknown or unsupported"),
    ({"enable.ssl.certificate.verification": "false"}, "kafka-python", "not supported with --kafka-client kafka-python"),
    ({"ssl.truststore.location": "/x.jks"}, "confluent", "only PEM"),
    ({"ssl.truststore.type": "PKCS12", "ssl.truststore.location": "/x.p12"}, "kafka-python", "only PEM"),
    ({"group.id": "other"}, "confluent", "--group-id"),
    ({"request.timeout.ms": "soon"}, "confluent", "integer"),
    ({"sasl.jaas.config": "com.sun.security.auth.module.Krb5LoginModule required;"}, "confluent", "Krb5LoginModule"),
])
def test_unknown_or_unsupported_keys_are_errors(props: dict[str, str], client: str, message: str) -> None:
    with pytest.raises(ClientPropertyError, match=message):
        map_properties(props, client)


def test_secrets_never_go_on_a_command_line() -> None:
    for item in ("sasl.password=x", "sasl.jaas.config=x", "ssl.key.password=x"):
        with pytest.raises(ClientPropertyError, match="never go on a command line"):
            parse_overrides([item])
    with pytest.raises(ClientPropertyError, match="key=value"):
        parse_overrides(["client.id"])


# options.kafka_settings: the file, its overrides, the flags and the password's sources


def options(*argv: str) -> MetafixOptions:
    return PipelineOptions(list(argv)).view_as(MetafixOptions)


@pytest.fixture
def properties_file(tmp_path: Path) -> Path:
    path = tmp_path / "client.properties"
    path.write_text(
        "bootstrap.servers=from-file:9093\n"
        "security.protocol=SASL_SSL\nsasl.mechanism=PLAIN\n"
        f"sasl.jaas.config={PLAIN_JAAS.format(pw='file-pw')}\n"
        "client.id=from-file\n"
    )
    return path


def test_flags_override_properties_which_override_the_file(properties_file: Path) -> None:
    settings = kafka_settings(options("--kafka-config", str(properties_file), "--kafka-property", "client.id=from-flag",
                                      "--kafka-property", "retry.backoff.ms=250", "--sasl-mechanism", "SCRAM-SHA-512"),
                              environ={})
    assert settings.bootstrap_servers == "from-file:9093"
    assert settings.security.sasl_mechanism == "SCRAM-SHA-512"
    assert dict(settings.security.properties) == {"client.id": "from-flag", "retry.backoff.ms": "250"}
    assert settings.security.password() == "file-pw"
    assert kafka_settings(options("--kafka-config", str(properties_file), "--bootstrap-servers", "flag:1"),
                          environ={}).bootstrap_servers == "flag:1"


def test_password_sources_in_order(properties_file: Path, tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("from-password-file\n")
    base = ("--kafka-config", str(properties_file))
    env = {PASSWORD_ENV: "from-env"}
    assert kafka_settings(options(*base), environ=env).security.password() == "from-env"
    assert kafka_settings(options(*base, "--sasl-plain-password-file", str(password_file)),
                          environ=env).security.password() == "from-password-file"
    secret = kafka_settings(options(*base, "--sasl-plain-password-secret", "projects/p/secrets/kafka"), environ=env)
    assert secret.security.sasl_plain_password is None
    assert secret.security.sasl_plain_password_secret == "projects/p/secrets/kafka/versions/latest"
    with pytest.raises(ConfigError, match="one way"):
        kafka_settings(options(*base, "--sasl-plain-password-file", str(password_file),
                               "--sasl-plain-password-secret", "projects/p/secrets/kafka"), environ={})


def test_a_password_from_a_file_or_the_environment_is_in_no_option_and_no_repr(properties_file: Path,
                                                                                tmp_path: Path) -> None:
    password_file = tmp_path / "pw"
    password_file.write_text("pw-in-file")
    o = options("--kafka-config", str(properties_file), "--sasl-plain-password-file", str(password_file))
    settings = kafka_settings(o, environ={PASSWORD_ENV: "pw-in-env"})
    # What Beam serialises into the job's options (and Prism or Dataflow show) names files only.
    shown = repr(o.get_all_options(retain_unknown_options=True)) + repr(settings)
    assert [pw for pw in ("pw-in-file", "pw-in-env", "file-pw") if pw in shown] == []
    assert pickle.loads(pickle.dumps(settings)).security.password() == "pw-in-file"


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (None, "cannot read")])
def test_a_bad_password_file_is_a_config_error(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "pw"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ConfigError, match=message):
        kafka_settings(options("--bootstrap-servers", "b:1", "--sasl-plain-password-file", str(path)), environ={})


def test_secret_names_and_files() -> None:
    assert secret_version_name("projects/p/secrets/s/versions/3") == "projects/p/secrets/s/versions/3"
    with pytest.raises(SecretError, match="not a Secret Manager name"):
        secret_version_name("my-secret")


def test_a_password_file_keeps_everything_but_its_trailing_newline(tmp_path: Path) -> None:
    path = tmp_path / "pw"
    path.write_text(" two words \n")
    assert read_secret_file(path) == " two words "


def test_an_unsupported_key_ends_the_command_with_one_line_and_code_2(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["stream", "--bootstrap-servers", "127.0.0.1:1", "--input-topic", "i", "--output-topic", "o",
                 "--dead-letter-topic", "d", "--kafka-property", "sasl.kerberos.service.name=kafka"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.strip().splitlines() == [
        "metafix stream: --kafka-property: unknown or unsupported Kafka client property 'sasl.kerberos.service.name'"
    ]


def test_a_password_on_the_command_line_still_works_and_warns(caplog: pytest.LogCaptureFixture) -> None:
    settings = kafka_settings(options("--bootstrap-servers", "b:1", "--sasl-plain-password", "argv-pw"),
                              environ={PASSWORD_ENV: "env-pw"})
    assert settings.security.password() == "argv-pw"
    assert "shows in ps" in caplog.text and "argv-pw" not in caplog.text
