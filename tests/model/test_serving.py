"""Predictor: loading (and refusing to load), scores, concurrency."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from model.serving import SIGNATURE, ModelLoadError, Predictor, resolve_version_dir
from model.signature import SWAPPED_OUTPUT, probs_output, raw_columns
from streaming.options import REPO_ROOT
from transforms.fields import FIELD_SPECS, SCORED_FIELD_NAMES
from transforms.policy import RecordScores, Thresholds

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
        "title": "HIGHWAY TO HELL",
        "artist": "AC/DC",
        "release_date": "27/07/1979",
        "duration_ms": 208000,
    },
    {"title": None, "artist": None},
    {"title": "Broken \ud800 surrogate", "artist": "Band"},  # JSON can carry lone surrogates
]


@pytest.fixture(scope="module")
def predictor(tiny_model_dir: Path) -> Predictor:
    return Predictor.load(tiny_model_dir)


def test_load_from_root_or_version_dir(predictor: Predictor, tiny_version_dir: Path) -> None:
    assert predictor.version == tiny_version_dir.name
    assert predictor.version_dir == tiny_version_dir
    assert Predictor.load(tiny_version_dir).version == predictor.version
    assert isinstance(predictor.thresholds, Thresholds)


def test_predict_returns_scores_per_track(predictor: Predictor) -> None:
    scores = predictor.predict(TRACKS)
    assert len(scores) == len(TRACKS)
    for s in scores:
        assert isinstance(s, RecordScores)
        assert set(s.fields) == set(SCORED_FIELD_NAMES)
        for name, (cls, confidence) in s.fields.items():
            assert cls in FIELD_SPECS[name].classes
            assert 0.0 <= confidence <= 1.0
        assert 0.0 <= s.swapped <= 1.0
    assert predictor.predict([]) == []


def test_a_records_scores_do_not_depend_on_the_padding_of_its_call(predictor: Predictor) -> None:
    # 3 records are padded to 4 rows and 65 to 128; each alone to 1.
    alone = [predictor.predict_probs([t]) for t in TRACKS[:3]]
    for batch in (TRACKS[:3], (TRACKS * 17)[:65]):
        probs = predictor.predict_probs(batch)
        assert {len(v) for v in probs.values()} == {len(batch)}
        for i, single in enumerate(alone):
            for key, value in single.items():
                np.testing.assert_allclose(probs[key][i], value[0], rtol=1e-5, atol=1e-6)


def test_the_one_scoring_call_gives_what_the_signature_gives(predictor: Predictor, tiny_version_dir: Path) -> None:
    # Scoring stacks the fields into one tensor and the outputs into one array: each
    # output must come back under its own name, bit for bit (album and artist have the
    # same number of classes, so only the values tell them apart). 8 rows need no padding.
    import tensorflow as tf

    serve = tf.saved_model.load(str(tiny_version_dir)).signatures[SIGNATURE]
    columns = raw_columns((TRACKS * 2)[:8])
    expected = serve(**{name: tf.constant([v.encode("utf-8", "surrogatepass") for v in values])
                        for name, values in columns.items()})

    got = predictor.predict_columns(columns)

    assert set(got) == {probs_output(name) for name in SCORED_FIELD_NAMES} | {SWAPPED_OUTPUT}
    for name, value in got.items():
        assert value.dtype == np.float32
        np.testing.assert_array_equal(value, expected[name].numpy())


def test_predict_is_deterministic_and_thread_safe(predictor: Predictor) -> None:
    batch = TRACKS * 50
    expected = predictor.predict(batch)
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: predictor.predict(batch), range(8)))
    assert all(r == expected for r in results)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="does not exist"):
        Predictor.load(tmp_path / "nope")


def test_empty_directory(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="neither a SavedModel nor a LATEST"):
        Predictor.load(tmp_path)


def test_latest_pointing_nowhere(tmp_path: Path) -> None:
    (tmp_path / "LATEST").write_text("20990101-000000-deadbeef\n")
    with pytest.raises(ModelLoadError, match="holds no SavedModel"):
        resolve_version_dir(tmp_path)
    (tmp_path / "LATEST").write_text("../../etc\n")
    with pytest.raises(ModelLoadError, match="does not name a version"):
        resolve_version_dir(tmp_path)


def test_checking_a_local_model_directory_does_not_import_tensorflow(tiny_model_dir: Path) -> None:
    # A replay in worker processes checks only the files in its launcher: importing
    # TensorFlow for that would cost it seconds of CPU and 630 MB.
    code = ("import sys; from model.serving import read_manifest, resolve_version_dir; "
            f"print(read_manifest(resolve_version_dir({str(tiny_model_dir)!r}))['version']); "
            "print('tensorflow' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    version, imported = done.stdout.split()
    assert version == resolve_version_dir(tiny_model_dir).name
    assert imported == "False"


def test_tensorflow_is_imported_without_pyplot_which_imports_normally_afterwards() -> None:
    # A fresh process, as a worker is: here TensorFlow is imported already.
    code = ("import sys; from model.serving import import_tensorflow; tf = import_tensorflow(); "
            "print(tf.constant(2).numpy(), 'matplotlib.pyplot' in sys.modules); "
            "import matplotlib.pyplot; print(matplotlib.pyplot.__name__)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["2", "False", "matplotlib.pyplot"]


def _copy(version_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / version_dir.name
    shutil.copytree(version_dir, target, ignore=shutil.ignore_patterns("transform_fn", "*.png"))
    return target


def test_corrupt_saved_model(tiny_version_dir: Path, tmp_path: Path) -> None:
    copy = _copy(tiny_version_dir, tmp_path)
    (copy / "saved_model.pb").write_bytes(b"not a protobuf")
    with pytest.raises(ModelLoadError, match="cannot load the SavedModel"):
        Predictor.load(copy)


def test_missing_variables(tiny_version_dir: Path, tmp_path: Path) -> None:
    copy = _copy(tiny_version_dir, tmp_path)
    shutil.rmtree(copy / "variables")
    with pytest.raises(ModelLoadError):
        Predictor.load(copy)


def test_corrupt_or_mismatched_manifest(tiny_version_dir: Path, tmp_path: Path) -> None:
    copy = _copy(tiny_version_dir, tmp_path)
    manifest_path = copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text("{not json")
    with pytest.raises(ModelLoadError, match="cannot be read"):
        Predictor.load(copy)
    manifest["fields"]["title"] = ["clean"]
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelLoadError, match="differ from transforms.fields"):
        Predictor.load(copy)
    manifest_path.unlink()
    with pytest.raises(ModelLoadError, match="missing"):
        Predictor.load(copy)


def test_load_from_a_filesystem_url(tiny_model_dir: Path) -> None:
    # TensorFlow's in-memory filesystem stands in for gs://: both go through tf.io.gfile.
    import os

    import tensorflow as tf

    for folder, _, files in os.walk(tiny_model_dir):
        for name in files:
            local = os.path.join(folder, name)
            remote = "ram://export/" + os.path.relpath(local, tiny_model_dir)
            tf.io.gfile.makedirs(os.path.dirname(remote))
            tf.io.gfile.copy(local, remote, overwrite=True)

    predictor = Predictor.load("ram://export")

    assert str(predictor.version_dir) == f"ram://export/{predictor.version}"
    assert len(predictor.predict([{"title": "Song", "artist": "Artist"}])) == 1
