"""train() on the tiny config: the export layout, the manifest, and a hermetic SavedModel."""

from __future__ import annotations

import json
import re
import shutil
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from model.serving import Predictor
from model.signature import SWAPPED_OUTPUT, probs_output
from model.training import train as training
from transforms.fields import SCORED_FIELDS, SWAP_CLASS

TRACKS = [
    {
        "title": "Back in Black",
        "artist": "AC/DC",
        "album": "Back in Black",
        "isrc": "AUAP08000046",
        "upc": "886443546271",
        "release_date": "1980-07-25",
        "duration_ms": "255000",
        "genre": "Rock",
    },
    {
        "title": "01 - THUNDERSTRUCK",
        "artist": " AC/DC",
        "album": None,
        "isrc": "au-ap-09-00014",
        "upc": "8864 4354 6271",
        "release_date": "Sep 24, 1990",
        "duration_ms": "4:52",
        "genre": "rock",
    },
    {"title": "Caf&eacute; del Mar", "artist": "Energy 52", "genre": "Dance"},
    {},
]


def test_export_layout_and_manifest(tiny_model_dir: Path, tiny_version_dir: Path) -> None:
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{8}", tiny_version_dir.name)
    for name in ("saved_model.pb", "variables", "assets", "manifest.json", training.TRANSFORM_DIR):
        assert (tiny_version_dir / name).exists(), name
    assert not list(tiny_model_dir.glob(".staging-*"))
    manifest = json.loads((tiny_version_dir / "manifest.json").read_text())
    assert manifest["version"] == tiny_version_dir.name
    assert manifest["fields"] == {s.name: list(s.classes) for s in SCORED_FIELDS}
    assert manifest["swap_class"] == SWAP_CLASS
    assert manifest["config"]["name"] == "tiny"
    assert len(manifest["data_fingerprint"]) == 64
    assert manifest["version"].endswith(manifest["data_fingerprint"][:8])
    assert 0.0 <= manifest["thresholds"]["review"] <= manifest["thresholds"]["apply"] <= 1.0
    for split in ("validation", "test"):
        metrics = manifest["metrics"][split]
        assert 0.0 <= metrics["detection_macro_f1"] <= 1.0
        assert 0.0 <= metrics["false_correction_rate"] <= 1.0
    assert manifest["libraries"]["tensorflow_transform"]
    # The word/genre/artist vocabularies travel inside the SavedModel.
    assert {"words", "genre", "artists"} <= {
        p.name for p in (tiny_version_dir / "assets").iterdir()
    }


def test_hermetic_without_transform_output(tiny_version_dir: Path, tmp_path: Path) -> None:
    reference = Predictor.load(tiny_version_dir).predict_probs(TRACKS)
    moved = tmp_path / "elsewhere" / tiny_version_dir.name
    shutil.copytree(tiny_version_dir, moved)
    shutil.rmtree(moved / training.TRANSFORM_DIR)
    # Hide the original transform output too, so nothing can fall back on it.
    original = tiny_version_dir / training.TRANSFORM_DIR
    hidden = tmp_path / "hidden_transform_fn"
    original.rename(hidden)
    try:
        probs = Predictor.load(moved).predict_probs(TRACKS)
    finally:
        hidden.rename(original)
    for spec in SCORED_FIELDS:
        out = probs[probs_output(spec.name)]
        assert out.shape == (len(TRACKS), len(spec.classes))
        np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(out, reference[probs_output(spec.name)], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(
        probs[SWAPPED_OUTPUT], reference[SWAPPED_OUTPUT], rtol=1e-6, atol=1e-7
    )


def test_serving_signature_takes_raw_strings(tiny_version_dir: Path) -> None:
    import tensorflow as tf

    serve = tf.saved_model.load(str(tiny_version_dir)).signatures["serving_default"]
    inputs = serve.structured_input_signature[1]
    assert set(inputs) == {s.name for s in SCORED_FIELDS}
    assert all(
        spec.dtype == tf.string and spec.shape.as_list() == [None] for spec in inputs.values()
    )
    assert set(serve.structured_outputs) == {probs_output(s.name) for s in SCORED_FIELDS} | {
        SWAPPED_OUTPUT
    }


def test_export_holds_only_what_the_signature_reads(tiny_version_dir: Path) -> None:
    # Not the tf_keras model's object graph, nor its optimizer's slots: loading those cost
    # every scoring process about 1 s of CPU more.
    import tensorflow as tf

    loaded = tf.saved_model.load(str(tiny_version_dir))
    captured = {id(t) for t in loaded.signatures["serving_default"].captured_inputs}
    variables = [o for o in tf.train.TrackableView(loaded).descendants() if isinstance(o, tf.Variable)]
    assert variables
    assert [v.name for v in variables if id(v.handle) not in captured] == []


def test_choose_thresholds_lowest_within_the_false_correction_budget() -> None:
    n = 1000
    labels = {s.name: np.zeros(n, dtype=np.int32) for s in SCORED_FIELDS}
    labels["swapped"] = np.zeros(n, dtype=np.float32)
    probs = {}
    for s in SCORED_FIELDS:
        p = np.zeros((n, len(s.classes)), dtype=np.float32)
        p[:, 0] = 1.0
        probs[probs_output(s.name)] = p
    probs[SWAPPED_OUTPUT] = np.zeros(n, dtype=np.float32)
    # Ten clean titles wrongly called errors with confidence 0.705 .. 0.795.
    title = probs[probs_output("title")]
    title[:10] = 0.0
    title[:10, 1] = np.linspace(0.705, 0.795, 10)
    title[:10, 0] = 1.0 - title[:10, 1]
    budget = 3 / (n * len(SCORED_FIELDS))  # three false corrections allowed
    t = training.choose_thresholds(probs, labels, budget)
    assert t["apply"] == pytest.approx(0.77)  # 0.775, 0.785, 0.795 still pass it
    assert t["review"] <= t["apply"]


def test_version_names_sort_by_time() -> None:
    a = training.make_version("f" * 64, datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC))
    b = training.make_version("0" * 64, datetime(2024, 1, 2, 3, 4, 6, tzinfo=UTC))
    assert a == "20240102-030405-ffffffff" and sorted([b, a]) == [a, b]


def test_fingerprint_depends_on_config_and_data(tmp_path: Path) -> None:
    (tmp_path / "seeds.csv").write_text("a,b\n")
    tiny, full = training.CONFIGS["tiny"], training.CONFIGS["full"]
    assert training.data_fingerprint(tiny, tmp_path) == training.data_fingerprint(tiny, tmp_path)
    assert training.data_fingerprint(tiny, tmp_path) != training.data_fingerprint(full, tmp_path)
    before = training.data_fingerprint(tiny, tmp_path)
    (tmp_path / "seeds.csv").write_text("a,c\n")
    assert training.data_fingerprint(tiny, tmp_path) != before
