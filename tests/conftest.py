"""Session-wide fixtures shared by every test package."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from harness.local_kafka import (
    LocalKafka,
    create_topic,
    delete_topics,
    port_is_open,
    serves_kafka,
    unique_topic_name,
)
from harness.local_registry import LocalRegistry, serves_registry


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[LocalKafka]:
    """The test broker on $METAFIX_TEST_KAFKA_PORT (default 19392).

    A broker already serving that port is reused and left running; otherwise one is started
    for the session and stopped at its end.
    """
    broker = LocalKafka(port=int(os.environ.get("METAFIX_TEST_KAFKA_PORT", "19392")))
    if port_is_open(broker.port) and serves_kafka(broker.bootstrap):
        yield broker
        return
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="session")
def registry_server() -> Iterator[LocalRegistry]:
    """The test schema registry (Apicurio, in memory) on $METAFIX_TEST_REGISTRY_PORT (default 18181).

    One already serving that port is reused and left running; otherwise one is started for
    the session and stopped at its end. Tests register under unique subjects (their topics).
    """
    registry = LocalRegistry(port=int(os.environ.get("METAFIX_TEST_REGISTRY_PORT", "18181")))
    if serves_registry(registry.url):
        yield registry
        return
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: LocalKafka) -> str:
    return kafka_broker.bootstrap


@pytest.fixture
def topic_factory(kafka_bootstrap: str) -> Iterator[Callable[..., str]]:
    """Creates uniquely named topics for one test and deletes them after it."""
    created: list[str] = []

    def create(
        prefix: str = "test", partitions: int = 3, config: Mapping[str, str] | None = None
    ) -> str:
        name = unique_topic_name(prefix)
        create_topic(kafka_bootstrap, name, partitions, config)
        created.append(name)
        return name

    yield create
    if created:
        delete_topics(kafka_bootstrap, created)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export root (with LATEST) of a model trained with the tiny configuration, once per session.

    $METAFIX_TEST_MODEL_DIR points at an existing export instead (handy while iterating).
    """
    existing = os.environ.get("METAFIX_TEST_MODEL_DIR")
    if existing:
        return Path(existing)
    from model.training.train import train

    root = tmp_path_factory.mktemp("tiny-model")
    train(root, "tiny")
    return root


@pytest.fixture(scope="session")
def tiny_version_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir / (tiny_model_dir / "LATEST").read_text().strip()
