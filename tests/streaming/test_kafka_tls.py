"""SASL_SSL as managed Kafka services run it: a broker certificate from a test CA, SASL/PLAIN
users, hostname verification on, and a password that never shows on a command line.

The preflight's TLS check first meets a bare TLS server (no broker). Then a broker of this
module's own: harness/local_kafka.py with a SASL_SSL listener on $METAFIX_TEST_TLS_KAFKA_PORT
+ 1 (default 19394); its PLAINTEXT listener stays for the test's own producers and readers.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from harness.chaos import OutputReader, account, covers, create_job_topics, produce_values
from harness.eventgen import catalog_messages
from harness.jobs import StreamJob
from harness.local_kafka import LocalKafka, SaslSslListener, create_topic, unique_topic_name
from harness.tls import LocalPki, make_test_pki
from streaming import preflight
from streaming.kafka_clients import CLIENT_NAMES, ConsumerSettings, KafkaSecurity, kafka_client
from streaming.options import ConfigError, KafkaSettings
from streaming.secret_sources import PASSWORD_ENV

USER = "metafix-job"
# Distinctive, so that a search of logs and outputs cannot miss it or match by chance.
PASSWORD = f"pw-{uuid.uuid4().hex}"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> LocalPki:
    return make_test_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="session")
def tls_broker(pki: LocalPki, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalKafka]:
    port = int(os.environ.get("METAFIX_TEST_TLS_KAFKA_PORT", "19393"))
    broker = LocalKafka(port, tmp_path_factory.mktemp("tls-kafka"),
                        sasl_ssl=SaslSslListener(port + 1, pki.keystore, {USER: PASSWORD}))
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def sasl_ssl(broker: LocalKafka, ca: Path, password: str = PASSWORD, client: str = "confluent") -> KafkaSettings:
    return KafkaSettings(broker.sasl_ssl_bootstrap, KafkaSecurity(
        security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_plain_username=USER,
        sasl_plain_password=password, ssl_cafile=str(ca)), client)


class TlsServer(threading.Thread):
    """Accepts one connection on 127.0.0.1 and makes the TLS handshake with ``keystore``."""

    def __init__(self, keystore: Path):
        super().__init__(daemon=True)
        self._context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self._context.load_cert_chain(keystore)
        self._socket = socket.create_server(("127.0.0.1", 0))
        self.bootstrap = f"127.0.0.1:{self._socket.getsockname()[1]}"

    def run(self) -> None:
        connection, _ = self._socket.accept()
        try:
            with self._context.wrap_socket(connection, server_side=True):
                pass
        except OSError:
            pass  # the client refused the certificate
        finally:
            self._socket.close()


@pytest.mark.parametrize(("keystore", "check_hostname", "error"), [
    ("keystore", True, None),
    ("elsewhere", True, "IP address mismatch"),
    ("elsewhere", False, None),
])
def test_the_tls_preflight_verifies_the_ca_and_the_host_name(pki: LocalPki, keystore: str, check_hostname: bool,
                                                               error: str | None) -> None:
    server = TlsServer(getattr(pki, keystore))
    server.start()
    settings = KafkaSettings(server.bootstrap, KafkaSecurity(security_protocol="SSL", ssl_cafile=str(pki.ca),
                                                             ssl_check_hostname=check_hostname))
    if error is None:
        preflight.check_tls(settings)
    else:
        with pytest.raises(ConfigError, match=error):
            preflight.check_tls(settings)
    server.join(timeout=10)


@pytest.mark.kafka
@pytest.mark.parametrize("client", CLIENT_NAMES)
def test_both_clients_connect_through_sasl_ssl_with_hostname_verification(
        tls_broker: LocalKafka, pki: LocalPki, client: str) -> None:
    topic = unique_topic_name("tls")
    create_topic(tls_broker.bootstrap, topic, partitions=2)
    settings = sasl_ssl(tls_broker, pki.ca, client=client)
    assert settings.security.ssl_check_hostname

    assert topic in preflight.existing_topics(settings)
    metadata = kafka_client(client).metadata(ConsumerSettings(settings.bootstrap_servers, None, 10, settings.security))
    try:
        assert metadata.partitions(topic) == [0, 1]
    finally:
        metadata.close()


@pytest.mark.kafka
def test_a_wrong_ca_or_password_fails_the_preflight_with_one_line(tls_broker: LocalKafka, pki: LocalPki) -> None:
    with pytest.raises(ConfigError) as wrong_ca:
        preflight.existing_topics(sasl_ssl(tls_broker, pki.other_ca))
    assert f"TLS to {tls_broker.sasl_ssl_bootstrap}" in str(wrong_ca.value)
    assert "does not verify" in str(wrong_ca.value)

    with pytest.raises(ConfigError) as wrong_password:
        preflight.existing_topics(sasl_ssl(tls_broker, pki.ca, password="not-" + PASSWORD))
    assert "SASL authentication" in str(wrong_password.value)
    for error in (wrong_ca.value, wrong_password.value):
        assert "\n" not in str(error) and PASSWORD not in str(error)


def process_tree_cmdlines(pid: int) -> list[str]:
    root = psutil.Process(pid)
    lines = []
    for process in (root, *root.children(recursive=True)):
        try:
            lines.append(" ".join(process.cmdline()))
        except psutil.Error:
            pass
    return lines


@pytest.mark.kafka
@pytest.mark.prism
@pytest.mark.slow
def test_the_job_runs_through_sasl_ssl_and_the_password_shows_nowhere(
        tls_broker: LocalKafka, pki: LocalPki, tiny_model_dir: Path, tmp_path: Path) -> None:
    # The user's client.properties, as the Kafka CLIs' --command-config takes it; the
    # password comes from the environment.
    client_properties = tmp_path / "client.properties"
    client_properties.write_text(
        "# as for kafka-console-consumer.sh --command-config\n"
        "security.protocol=SASL_SSL\n"
        "sasl.mechanism=PLAIN\n"
        f"sasl.username={USER}\n"
        "ssl.truststore.type=PEM\n"
        f"ssl.truststore.location={pki.ca}\n"
        "ssl.endpoint.identification.algorithm=https\n"
    )
    password_file = tmp_path / "kafka-password"
    password_file.write_text(PASSWORD + "\n")
    metrics_file = tmp_path / "metrics.json"
    topics = create_job_topics(tls_broker.bootstrap, "tls")
    config = ("--kafka-config", str(client_properties))

    wrong_ca = StreamJob(tls_broker.sasl_ssl_bootstrap, topics, tiny_model_dir, tmp_path / "wrong-ca.log",
                         *config, "--ssl-cafile", str(pki.other_ca),
                         "--sasl-plain-password-file", str(password_file)).start()
    assert wrong_ca.wait(timeout_s=120) == 2
    assert [line for line in wrong_ca.log_text().splitlines() if line.strip()] == [
        f"metafix stream: TLS to {tls_broker.sasl_ssl_bootstrap}: the broker's certificate does not verify "
        f"against {pki.other_ca}: self-signed certificate in certificate chain"
    ]

    job = StreamJob(tls_broker.sasl_ssl_bootstrap, topics, tiny_model_dir, tmp_path / "job.log",
                    *config, "--start-from", "earliest", "--metrics-file", str(metrics_file),
                    env={**os.environ, PASSWORD_ENV: PASSWORD}).start()
    reader = OutputReader(tls_broker.bootstrap, topics)
    try:
        sent = produce_values(tls_broker.bootstrap, topics["in"], catalog_messages(300, seed=14, bad_every=29))
        assert reader.read_until(covers(s.coordinate for s in sent), timeout_s=300, job=job), job.log_tail()
        command_lines = process_tree_cmdlines(job.pid)
    finally:
        stopped = job.stop()
        reader.drain(quiet_s=1)
        reader.close()

    # Stopped by SIGTERM, the job exits 0 after writing its summary and metrics file.
    assert (stopped, metrics_file.exists()) == (0, True), job.log_tail()
    accounting = account(sent, reader)
    assert (accounting.lost, accounting.unexpected) == (0, 0)
    assert reader.outputs and reader.dead
    # The job and what it started (the Prism runner) are all there, none with the password.
    assert len(command_lines) >= 2 and any("streaming.cli" in line for line in command_lines)
    assert [line for line in command_lines if PASSWORD in line] == []
    texts = {"job log": job.log_text(), "wrong-CA log": wrong_ca.log_text(), "metrics": metrics_file.read_text()}
    assert [name for name, text in texts.items() if PASSWORD in text] == []
    assert [raw for raw in reader.dead_raw if PASSWORD.encode() in raw] == []
    assert not [r for r in reader.outputs if PASSWORD in repr(r)]
