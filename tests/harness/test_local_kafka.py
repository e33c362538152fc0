"""The local KRaft broker: its properties, lifecycle, CLI and topic helper."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition

from harness.local_kafka import (
    HOST,
    LocalKafka,
    LocalKafkaError,
    SaslSslListener,
    broker_properties,
    create_topic,
    free_port,
    main,
    port_is_open,
    render_properties,
    unique_topic_name,
)


def test_broker_properties_describe_a_single_node_kraft_broker(tmp_path: Path) -> None:
    props = broker_properties(19092, 19093, tmp_path / "data")

    assert props["process.roles"] == "broker,controller"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:19093"
    assert props["log.dirs"] == str(tmp_path / "data")
    assert props["auto.create.topics.enable"] == "false"
    assert props["num.partitions"] == "3"


def test_extra_properties_override_and_extend_the_defaults(tmp_path: Path) -> None:
    extra = {
        "listeners": "PLAINTEXT://127.0.0.1:1,CONTROLLER://127.0.0.1:2,SASL://127.0.0.1:3",
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
    }
    props = broker_properties(1, 2, tmp_path, extra)

    assert props["listeners"] == extra["listeners"]
    assert props["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert render_properties({"a": "1", "b.c": "x=y"}) == "a=1\nb.c=x=y\n"


def test_a_sasl_ssl_listener_joins_the_plaintext_one_with_its_users_and_pem_keystore(tmp_path: Path) -> None:
    listener = SaslSslListener(19094, tmp_path / "broker-keystore.pem", {"alice": "a-pw", "bob": "b-pw"})
    props = broker_properties(19092, 19093, tmp_path / "data", sasl_ssl=listener)

    assert props["listeners"] == "PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093,SASL_SSL://127.0.0.1:19094"
    assert props["advertised.listeners"] == "PLAINTEXT://127.0.0.1:19092,SASL_SSL://127.0.0.1:19094"
    assert props["inter.broker.listener.name"] == "PLAINTEXT"
    assert "SASL_SSL:SASL_SSL" in props["listener.security.protocol.map"].split(",")
    assert props["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "broker-keystore.pem")
    assert props["listener.name.sasl_ssl.plain.sasl.jaas.config"] == (
        'org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="a-pw" user_bob="b-pw";'
    )
    with pytest.raises(ValueError, match="quotes"):
        SaslSslListener(1, tmp_path, {"eve": 'pw"'}).properties()


def test_unique_topic_names_differ_and_keep_the_prefix() -> None:
    names = {unique_topic_name("events") for _ in range(100)}

    assert len(names) == 100
    assert all(name.startswith("events-") for name in names)


def test_start_refuses_a_port_another_process_holds(tmp_path: Path) -> None:
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        squatter.listen()
        broker = LocalKafka(port=squatter.getsockname()[1], state_dir=tmp_path)

        with pytest.raises(LocalKafkaError, match="already taken"):
            broker.start()


@pytest.mark.kafka
def test_bad_properties_fail_at_format_with_kafkas_reason(tmp_path: Path) -> None:
    broker = LocalKafka(port=free_port(), state_dir=tmp_path, extra_properties={"node.id": "x"})

    with pytest.raises(LocalKafkaError, match="Invalid value x"):
        broker.start(timeout_s=60)
    assert not broker.is_running()


@pytest.mark.kafka
def test_a_broker_that_dies_at_startup_reports_its_log(tmp_path: Path) -> None:
    # Bound but not listening: invisible to the port check, fatal to the broker's bind.
    with socket.socket() as squatter:
        squatter.bind((HOST, 0))
        broker = LocalKafka(port=squatter.getsockname()[1], state_dir=tmp_path)

        with pytest.raises(LocalKafkaError, match="exited during startup") as failure:
            broker.start(timeout_s=60)

    assert "Address already in use" in str(failure.value)
    assert not broker.is_running()


@pytest.mark.kafka
@pytest.mark.slow
def test_cli_up_down_and_restart_keep_the_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    port = free_port()
    cli = ["--port", str(port), "--state-dir", str(tmp_path)]
    broker = LocalKafka(port=port, state_dir=tmp_path)
    try:
        assert main(["up", *cli]) == 0
        assert main(["up", *cli]) == 0
        assert "already running" in capsys.readouterr().out
        topic = unique_topic_name("restart")
        create_topic(broker.bootstrap, topic, partitions=1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
        producer.send(topic, b"kept").get(timeout=30)
        producer.close()

        broker.restart()

        consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap)
        consumer.assign([TopicPartition(topic, 0)])
        consumer.seek_to_beginning()
        polled = consumer.poll(timeout_ms=10_000)
        consumer.close()
        assert [r.value for r in polled[TopicPartition(topic, 0)]] == [b"kept"]
    finally:
        assert main(["down", *cli]) == 0
    assert not broker.is_running()
    assert not port_is_open(port)
    assert main(["down", *cli]) == 0
    assert "no broker" in capsys.readouterr().out


@pytest.mark.kafka
def test_create_topic_returns_once_every_partition_has_a_leader(kafka_bootstrap: str) -> None:
    topic = unique_topic_name("leaders")
    create_topic(kafka_bootstrap, topic, partitions=5)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        [described] = admin.describe_topics([topic])
        admin.delete_topics([topic])
    finally:
        admin.close()

    assert sorted(p["partition_index"] for p in described["partitions"]) == [0, 1, 2, 3, 4]
    assert all(p["leader_id"] >= 0 for p in described["partitions"])
