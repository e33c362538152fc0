"""Session-wide fixtures shared by every test package."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
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


REPO_ROOT = Path(__file__).resolve().parents[1]
# Trained test models kept between sessions of this checkout (a fresh clone trains its own).
TEST_MODEL_CACHE = REPO_ROOT / ".state" / "test-models"
# What training reads besides the seed data, the generator and the config (``data_fingerprint``).
_TRAINING_INPUTS = ("model", "transforms", "schemas")
_TRAINING_LIBRARIES = ("tensorflow", "tensorflow-transform", "tf-keras", "numpy", "apache-beam")


def training_key(config: str) -> str:
    """A hash of everything a training run of ``config`` depends on: the seed data, the
    generator and the config (``data_fingerprint``), every source file of the packages
    training imports, the real records its profile is built from, and the library versions.
    Training is deterministic, so an export under the same key is the one it would make."""
    from importlib.metadata import version

    from model.training.data import DEFAULT_DATA_DIR
    from model.training.realdata import DEFAULT_REAL_DIR
    from model.training.train import CONFIGS, data_fingerprint

    h = hashlib.sha256(data_fingerprint(CONFIGS[config], DEFAULT_DATA_DIR).encode())
    sources = [(REPO_ROOT, p) for folder in _TRAINING_INPUTS for p in sorted((REPO_ROOT / folder).rglob("*"))
               if p.suffix in (".py", ".avsc", ".json") and "export" not in p.relative_to(REPO_ROOT).parts]
    real = [(DEFAULT_REAL_DIR, p) for p in sorted(DEFAULT_REAL_DIR.rglob("*")) if p.is_file()]
    for root, path in sources + real:
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    h.update(" ".join(version(name) for name in _TRAINING_LIBRARIES).encode())
    return h.hexdigest()[:16]


def cached_training(config: str, cache: Path = TEST_MODEL_CACHE) -> Path:
    """The export root of a ``config`` model, trained once per ``training_key``.

    A run trains into a folder of its own and renames it into place, so two sessions
    at once each end with a whole export (the later rename loses and is discarded).
    Exports of the config under other keys are removed then: every edit of the
    sources would otherwise leave one behind.
    """
    from model.training.train import train

    done = cache / f"{config}-{training_key(config)}"
    if not (done / "LATEST").is_file():
        cache.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{config}-", dir=cache))
        train(staging, config)
        try:
            staging.rename(done)
        except OSError:
            shutil.rmtree(staging)
        for stale in cache.glob(f"{config}-*"):
            if stale != done:
                shutil.rmtree(stale, ignore_errors=True)
    return done


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The export root (with LATEST) of a model trained with the tiny configuration.

    Trained once per checkout and training key (``cached_training``); each session works on
    a copy, because some tests write beside the model (evaluate's report) and must see
    their own files, not those of an earlier session.
    $METAFIX_TEST_MODEL_DIR points at an existing export instead (handy while iterating).
    """
    existing = os.environ.get("METAFIX_TEST_MODEL_DIR")
    if existing:
        return Path(existing)
    root = tmp_path_factory.mktemp("tiny") / "tiny-model"
    shutil.copytree(cached_training("tiny"), root)
    return root


@pytest.fixture(scope="session")
def tiny_version_dir(tiny_model_dir: Path) -> Path:
    return tiny_model_dir / (tiny_model_dir / "LATEST").read_text().strip()
