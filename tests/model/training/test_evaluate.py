"""Evaluation: metric arithmetic on hand-made cases, and a full run on the tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from model.training import evaluate as ev
from model.training.corrupt import generate
from model.training.data import load_seeds
from model.training.train import DEFAULT_DATA_DIR, label_arrays
from transforms.fields import CLEAN, FIELD_SPECS, SCORED_FIELDS, SWAP_CLASS
from transforms.policy import RecordScores, Thresholds
from transforms.profile import build_profile

HEADLINE = ("detection_macro_f1", "correction_exact_match", "false_correction_rate")


def _no_errors(n: int) -> dict[str, np.ndarray]:
    labels: dict[str, np.ndarray] = {s.name: np.zeros(n, dtype=np.int64) for s in SCORED_FIELDS}
    labels["swapped"] = np.zeros(n, dtype=bool)
    return labels


def test_detection_counts_and_macro_f1() -> None:
    labels, predicted = _no_errors(4), _no_errors(4)
    caps = FIELD_SPECS["title"].classes.index("all_caps")
    labels["title"][:2] = caps
    predicted["title"][[0, 2]] = caps  # one hit, one miss, one false alarm
    labels["swapped"][3] = predicted["swapped"][3] = True
    counts = ev.detection_counts(predicted, labels)
    assert counts[("title", "all_caps")] == (1, 1, 1)
    assert counts[("record", SWAP_CLASS)] == (1, 0, 0)
    summary = ev.summarise_detection(counts)
    assert summary["per_class"]["all_caps"]["f1"] == pytest.approx(0.5)
    assert summary["per_class"][SWAP_CLASS]["f1"] == 1.0
    assert summary["detection_macro_f1"] == pytest.approx(
        0.75
    )  # classes absent on both sides left out


@pytest.fixture(scope="module")
def examples() -> list:
    seeds = load_seeds(DEFAULT_DATA_DIR)[:300]
    return generate(seeds, seed=5, copies=2, corruption_rate=0.6)


def test_oracle_scores_correct_everything(examples: list) -> None:
    """With the true labels as scores and the seeds' profile the policy must reproduce
    Example.expected, case classes aside (a single re-cased value is left by design)."""
    examples = [ex for ex in examples if not {"all_caps", "all_lower"} & set(ex.labels.values())]
    profile = build_profile((s.source, s.text) for s in load_seeds(DEFAULT_DATA_DIR)[:300])
    scores = [
        RecordScores(
            fields={name: (cls, 1.0) for name, cls in ex.labels.items()},
            swapped=1.0 if ex.swapped else 0.0,
        )
        for ex in examples
    ]
    report = ev.correction_report(examples, scores, Thresholds(apply=0.9, review=0.5), "oracle", profile)
    assert report["corrupted_fields"] > 100
    assert report["correction_exact_match"] >= 0.99
    assert report["false_correction_rate"] == 0.0


def test_everything_clean_scores_change_nothing(examples: list) -> None:
    scores = [RecordScores(fields={}, swapped=0.0) for _ in examples]
    report = ev.correction_report(examples, scores, Thresholds(), "none")
    assert report["false_correction_rate"] == 0.0
    assert report["correction_exact_match"] < 0.5
    labels = label_arrays(examples)
    assert labels["title"].shape == (len(examples),)
    assert (labels["title"] == 0).sum() == sum(ex.labels["title"] == CLEAN for ex in examples)


def test_evaluate_writes_json_and_report(
    tiny_model_dir: Path, tiny_version_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "eval" / "metrics.json"
    document = ev.evaluate(tiny_model_dir, path, throughput_seconds=0.3)
    on_disk = json.loads(path.read_text())
    for key in HEADLINE:
        assert 0.0 <= on_disk[key] <= 1.0
        assert 0.0 <= on_disk["baseline"][key] <= 1.0
    assert on_disk["model_version"] == tiny_version_dir.name
    assert on_disk["throughput"]["batch_size"] == 512
    assert on_disk["throughput"]["model_records_per_s"] > 0
    for name in ("test", "second_seed"):
        assert on_disk[name]["records"] > 0
        assert "per_class" in on_disk[name]["baseline"]["detection"]
        assert "lookalike_false_correction_rate" in on_disk[name]["model"]
    assert document["training_data_matches"] is True
    report = (tiny_version_dir / "report.md").read_text()
    assert "rules" in report and "baseline" in report
    # The real records, with the model's bundled profile and as a replay of them corrects them.
    for real in (on_disk["real"], on_disk["real"]["as_replayed"]):
        assert real["headline"]["clean_records"] > 0 and real["headline"]["malformed_values"] > 0
    assert "Real records (test split), as a replay of it corrects them" in report
    for image in (
        "confusion_test.png",
        "confusion_second_seed.png",
        "precision_recall.png",
        "f1_per_class.png",
    ):
        png = tiny_version_dir / image
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", image
        assert f"]({image})" in report
