"""The test suite's cache of trained models (``conftest.cached_training``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import cached_training, training_key

import model.training.train as training


def test_the_training_key_is_a_stable_hash_per_config() -> None:
    assert re.fullmatch(r"[0-9a-f]{16}", training_key("tiny"))
    assert training_key("tiny") == training_key("tiny")
    assert training_key("tiny") != training_key("full")


def _fake_train(calls: list[Path]):
    def train(output_dir: Path, config: str) -> Path:
        calls.append(Path(output_dir))
        (Path(output_dir) / "v1").mkdir()
        (Path(output_dir) / "LATEST").write_text("v1")
        return Path(output_dir) / "v1"
    return train


def test_a_model_is_trained_once_into_its_key_and_then_reused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(training, "train", _fake_train(calls))
    first = cached_training("tiny", tmp_path)
    again = cached_training("tiny", tmp_path)
    assert first == again == tmp_path / f"tiny-{training_key('tiny')}"
    assert (first / "LATEST").read_text() == "v1"
    assert len(calls) == 1 and calls[0] != first  # trained elsewhere, renamed into place
    assert [p.name for p in tmp_path.iterdir()] == [first.name]


def test_a_new_export_replaces_those_of_other_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for stale in ("tiny-0000000000000000", "full-0000000000000000"):
        (tmp_path / stale).mkdir()
        (tmp_path / stale / "LATEST").write_text("old")
    monkeypatch.setattr(training, "train", _fake_train([]))
    done = cached_training("tiny", tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([done.name, "full-0000000000000000"])


def test_a_run_that_loses_the_race_keeps_the_export_already_in_place(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    done = tmp_path / f"tiny-{training_key('tiny')}"

    def train_while_another_finishes(output_dir: Path, config: str) -> Path:
        done.mkdir()
        (done / "LATEST").write_text("theirs")
        return _fake_train([])(output_dir, config)

    monkeypatch.setattr(training, "train", train_while_another_finishes)
    assert cached_training("tiny", tmp_path) == done
    assert (done / "LATEST").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == [done.name]
