"""The schema registry client: settings from the flags, retries, and the real registry's answers.

Tests marked ``registry`` talk to the local Apicurio Registry (the ``schema_registry``
session fixture); each registers under subjects of its own.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from apache_beam.options.pipeline_options import PipelineOptions
from confluent_kafka.schema_registry import Schema

from harness.local_kafka import free_port
from harness.local_registry import LocalRegistry
from schemas import CATALOG_UPDATE_EVENT, SCHEMA_IDS, schema_text
from streaming import schema_registry
from streaming.composites import DEAD_LETTER, OUTPUT_SCHEMA_FILES, output_schema_ids
from streaming.options import REPO_ROOT, ConfigError, MetafixOptions, registry_settings
from streaming.preflight import check_schema_registry
from streaming.schema_registry import PASSWORD_ENV, RegistrySettings, RegistryUnavailableError
from transforms import codec


def _settings(*flags: str) -> RegistrySettings | None:
    return registry_settings(PipelineOptions(list(flags)).view_as(MetafixOptions))


def test_no_url_means_the_static_ids():
    assert _settings() is None
    with pytest.raises(ConfigError, match="--schema-registry-user needs --schema-registry-url"):
        _settings("--schema-registry-user", "svc")


def test_the_password_comes_from_a_file_or_the_environment_and_stays_out_of_the_repr(tmp_path, monkeypatch):
    secret = tmp_path / "password"
    secret.write_text("s3cret-from-file\n")
    url = "https://registry.example:8081"
    settings = _settings("--schema-registry-url", url, "--schema-registry-user", "svc",
                         "--schema-registry-password-file", str(secret))
    assert settings.client_config()["basic.auth.user.info"] == "svc:s3cret-from-file"
    assert "s3cret" not in repr(settings)
    monkeypatch.setenv(PASSWORD_ENV, "s3cret-from-env")
    settings = _settings("--schema-registry-url", url, "--schema-registry-user", "svc")
    assert settings.client_config()["basic.auth.user.info"] == "svc:s3cret-from-env"
    with pytest.raises(ConfigError, match="needs --schema-registry-user"):
        _settings("--schema-registry-url", url)


def test_bad_registry_flags_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="http:// or https://"):
        _settings("--schema-registry-url", "registry:8081")
    with pytest.raises(ConfigError, match="--schema-registry-ca-file: no such file"):
        _settings("--schema-registry-url", "https://r:8081", "--schema-registry-ca-file", str(tmp_path / "none.pem"))
    with pytest.raises(ConfigError, match="--schema-registry-password-file: cannot read it"):
        _settings("--schema-registry-url", "https://r:8081", "--schema-registry-user", "u",
                  "--schema-registry-password-file", str(tmp_path / "none"))
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    assert _settings("--schema-registry-url", "https://r:8081", "--schema-registry-ca-file",
                     str(ca)).client_config()["ssl.ca.location"] == str(ca)


def test_a_schema_that_is_not_avro_is_incompatible():
    with pytest.raises(codec.DecodeError) as info:
        schema_registry.parse_writer_schema(7, Schema('{"type": "object"}', "JSON"))
    assert info.value.error_type == codec.INCOMPATIBLE_SCHEMA
    with pytest.raises(codec.DecodeError) as info:
        schema_registry.parse_writer_schema(7, Schema('{"type": "no-such-type"}', "AVRO"))
    assert info.value.error_type == codec.INCOMPATIBLE_SCHEMA


def test_an_unreachable_registry_is_retried_then_fails_the_bundle():
    settings = RegistrySettings(f"http://127.0.0.1:{free_port()}", retry_timeout_s=0.2)
    schemas = schema_registry.WriterSchemaCache(schema_registry.connect(settings), settings.retry_timeout_s)
    with pytest.raises(RegistryUnavailableError, match="fetching schema 1 failed for 0 s: ConnectError"):
        codec.decode_event(b"\x00\x00\x00\x00\x01\x02", writer_schemas=schemas)
    with pytest.raises(ConfigError) as info:
        check_schema_registry(settings)
    assert str(info.value).startswith(f"--schema-registry-url: cannot reach the schema registry at {settings.url}")
    assert "\n" not in str(info.value)


@pytest.mark.slow
def test_replay_with_an_unreachable_registry_exits_2_with_one_line(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text('{"event_id": "e", "track": {}}\n')
    url = f"http://127.0.0.1:{free_port()}"
    done = subprocess.run(
        [sys.executable, "-m", "streaming.main", "replay", "--input", str(events), "--output",
         str(tmp_path / "out.jsonl"), "--schema-registry-url", url],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if "metafix" in line]
    assert lines == [f"metafix replay: --schema-registry-url: cannot reach the schema registry at {url}: "
                     "ConnectError: [Errno 111] Connection refused"]


# The event schema as a producer's v2 has it: one optional field more.
def _v2_text() -> str:
    raw = json.loads(schema_text("catalog_update_event.avsc"))
    raw["fields"].append({"name": "priority", "type": ["null", "int"], "default": None})
    return json.dumps(raw)


@pytest.mark.registry
@pytest.mark.slow
def test_writer_schemas_come_from_the_registry(registry_server):
    client = schema_registry.connect(RegistrySettings(registry_server.url))
    subject = f"in-{uuid.uuid4().hex[:8]}-value"
    v1 = client.register_schema(subject, Schema(schema_text("catalog_update_event.avsc"), "AVRO"))
    v2 = client.register_schema(subject, Schema(_v2_text(), "AVRO"))
    as_json = client.register_schema(f"json-{uuid.uuid4().hex[:8]}-value",
                                     Schema('{"type": "object", "properties": {}}', "JSON"))
    cache = schema_registry.WriterSchemaCache(client, retry_timeout_s=5)
    assert cache(v1) is CATALOG_UPDATE_EVENT  # read without resolution
    assert [f["name"] for f in cache(v2)["fields"]][-1] == "priority"
    for schema_id, error_type in ((as_json, codec.INCOMPATIBLE_SCHEMA), (999_999, codec.UNKNOWN_SCHEMA_ID)):
        with pytest.raises(codec.DecodeError) as info:
            cache(schema_id)
        assert info.value.error_type == error_type


@pytest.mark.registry
@pytest.mark.slow
def test_output_schemas_are_registered_under_topic_value_once(registry_server):
    settings = RegistrySettings(registry_server.url)
    suffix = uuid.uuid4().hex[:8]
    topics = {"corrected": f"out-{suffix}", "review": f"review-{suffix}", "audit": None,
              DEAD_LETTER: f"dead-{suffix}"}
    ids = output_schema_ids(settings, topics)
    # The second job start looks the same schemas up: same ids, no new versions.
    assert output_schema_ids(settings, topics) == ids
    client = schema_registry.connect(settings)
    for name, topic in topics.items():
        if topic:
            assert client.get_versions(f"{topic}-value") == [1]
            registered = client.get_latest_version(f"{topic}-value")
            assert registered.schema_id == ids[name]
            assert json.loads(registered.schema.schema_str) == json.loads(schema_text(OUTPUT_SCHEMA_FILES[name]))
    # An output without a topic is not written, and keeps registry.json's id.
    assert ids["audit"] == SCHEMA_IDS["audit_entry.avsc"]


def _authority(directory: Path, name: str) -> Path:
    """A self-signed CA under ``directory``/``name``.pem (its key beside it)."""
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(directory / f"{name}.key"), "-out", str(directory / f"{name}.pem"),
                    "-subj", f"/CN={name}"], check=True, capture_output=True)
    return directory / f"{name}.pem"


def _server_certificate(directory: Path, ca: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 signed by ``ca``, and its key."""
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    extensions = directory / "server.ext"
    extensions.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    subprocess.run(["openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(csr),
                    "-subj", "/CN=127.0.0.1"], check=True, capture_output=True)
    subprocess.run(["openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca.with_suffix(".key")),
                    "-CAcreateserial", "-days", "1", "-out", str(cert), "-extfile", str(extensions)],
                   check=True, capture_output=True)
    return cert, key


@pytest.fixture(scope="module")
def secured_registry(tmp_path_factory) -> tuple[LocalRegistry, Path, Path]:
    """A registry on HTTPS only that asks for user metafix; its CA, and a CA that did not sign it."""
    directory = tmp_path_factory.mktemp("registry-tls")
    ca = _authority(directory, "registry-ca")
    registry = LocalRegistry(port=free_port(), state_dir=directory, tls=_server_certificate(directory, ca),
                             users={"metafix": "s3cret-registry"})
    registry.start()
    try:
        yield registry, ca, _authority(directory, "stranger-ca")
    finally:
        registry.stop()


@pytest.mark.registry
@pytest.mark.slow
def test_tls_and_basic_auth(secured_registry, tmp_path):
    registry, ca, stranger = secured_registry
    password = tmp_path / "password"
    password.write_text("s3cret-registry\n")
    flags = ["--schema-registry-url", registry.url, "--schema-registry-user", "metafix",
             "--schema-registry-password-file", str(password)]
    settings = _settings(*flags, "--schema-registry-ca-file", str(ca))
    check_schema_registry(settings)
    topic = f"tls-{uuid.uuid4().hex[:8]}"
    ids = output_schema_ids(settings, {"corrected": topic})
    cache = schema_registry.WriterSchemaCache(schema_registry.connect(settings), settings.retry_timeout_s)
    assert cache(ids["corrected"])["name"] == "io.metafix.CorrectedRecord"

    with pytest.raises(ConfigError, match="CERTIFICATE_VERIFY_FAILED") as info:
        check_schema_registry(_settings(*flags, "--schema-registry-ca-file", str(stranger)))
    assert "\n" not in str(info.value)
    password.write_text("wrong")
    with pytest.raises(ConfigError, match="refused the credentials \\(user 'metafix'\\): HTTP 401") as info:
        check_schema_registry(_settings(*flags, "--schema-registry-ca-file", str(ca)))
    assert "s3cret" not in str(info.value)
