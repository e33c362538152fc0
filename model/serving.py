"""Load an exported detector once and score batches of raw tracks.

    predictor = Predictor.load("model/export")      # export root (LATEST) or a version dir
    scores = predictor.predict([event["track"] for event in batch])
    result = correct_track(track, scores[i], thresholds=predictor.thresholds,
                           model_version=predictor.version)

The SavedModel carries its tensorflow-transform graph, so ``predict`` feeds
raw strings and nothing else from training is needed. Loading is the heavy
part (seconds); do it once per process (a DoFn's ``setup``). ``predict`` is
safe to call from several threads at once: it holds no mutable state and a
loaded TF function may run concurrently.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from model.signature import SWAPPED_OUTPUT, probs_output, raw_columns
from transforms.fields import SCORED_FIELD_NAMES, SCORED_FIELDS
from transforms.policy import RecordScores, Thresholds

LATEST_FILE = "LATEST"
MANIFEST_FILE = "manifest.json"
SIGNATURE = "serving_default"


class ModelLoadError(Exception):
    """The model directory is missing, incomplete or does not match this code."""


def _is_url(path: str | Path) -> bool:
    return "://" in str(path)


def _join(root: str | Path, name: str) -> str | Path:
    # URLs (gs://, s3://) stay strings joined with "/": pathlib would fold their "//".
    return f"{str(root).rstrip('/')}/{name}" if _is_url(root) else Path(root) / name


# The file checks below use the os module for local paths, so that checking a model
# directory does not import TensorFlow (about 3 s of CPU): the launcher of a replay in
# worker processes checks only the files (streaming/preflight.py, check_model_files).
def _exists(path: str | Path) -> bool:
    if not _is_url(path):
        return Path(path).exists()
    import tensorflow as tf

    return bool(tf.io.gfile.exists(str(path)))


def _is_dir(path: str | Path) -> bool:
    if not _is_url(path):
        return Path(path).is_dir()
    import tensorflow as tf

    return bool(tf.io.gfile.isdir(str(path)))


def _read_text(path: str | Path) -> str:
    if not _is_url(path):
        return Path(path).read_text(encoding="utf-8")
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(str(path), "r") as f:
            return f.read()
    except tf.errors.OpError as err:
        raise OSError(err.message) from err


def resolve_version_dir(model_dir: str | Path) -> str | Path:
    """The version directory for ``model_dir``: itself if it holds a SavedModel,
    else the version its ``LATEST`` file names. Local paths and any filesystem
    TensorFlow reads (gs://) work; local ones come back as ``Path``."""
    root = model_dir if _is_url(model_dir) else Path(model_dir)
    if not _is_dir(root):
        raise ModelLoadError(f"model directory {root} does not exist")
    if _exists(_join(root, "saved_model.pb")):
        return root
    latest = _join(root, LATEST_FILE)
    if not _exists(latest):
        raise ModelLoadError(f"{root} holds neither a SavedModel nor a {LATEST_FILE} file")
    try:
        version = _read_text(latest).strip()
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{latest} cannot be read: {err}") from err
    if not version or Path(version).name != version:
        raise ModelLoadError(f"{latest} does not name a version directory: {version!r}")
    version_dir = _join(root, version)
    if not _exists(_join(version_dir, "saved_model.pb")):
        raise ModelLoadError(f"{latest} points at {version_dir}, which holds no SavedModel")
    return version_dir


def read_manifest(version_dir: str | Path) -> dict[str, Any]:
    path = _join(version_dir, MANIFEST_FILE)
    if not _exists(path):
        raise ModelLoadError(f"{path} is missing")
    try:
        manifest = json.loads(_read_text(path))
    except (OSError, ValueError) as err:
        raise ModelLoadError(f"{path} cannot be read: {err}") from err
    if not isinstance(manifest, dict):
        raise ModelLoadError(f"{path} is not a JSON object")
    expected = {spec.name: list(spec.classes) for spec in SCORED_FIELDS}
    if manifest.get("fields") != expected:
        raise ModelLoadError(
            f"{path}: the model's fields/classes differ from transforms.fields "
            "(trained for another version of the field list)"
        )
    for key in ("version", "thresholds"):
        if key not in manifest:
            raise ModelLoadError(f"{path} has no {key!r}")
    return manifest


def _string_tensor(tf: Any, rows: np.ndarray) -> Any:
    """A string tensor of an object array of ``str``, in any shape."""
    try:
        return tf.constant(rows, dtype=tf.string)
    except (UnicodeEncodeError, ValueError):
        # A lone surrogate (JSON "\ud800") has no UTF-8 form. Pass its bytes on as
        # training did; the graph decodes them to U+FFFD instead of failing the batch.
        # Any other string's bytes are its UTF-8 form, as tf.constant makes them.
        encoded = np.empty(rows.shape, dtype=object)
        encoded.flat[:] = [v.encode("utf-8", "surrogatepass") for v in rows.flat]
        return tf.constant(encoded, dtype=tf.string)


# The outputs the policy reads, in the order of the stacked call's columns.
_OUTPUTS = (*(probs_output(name) for name in SCORED_FIELD_NAMES), SWAPPED_OUTPUT)


def _stacked_call(tf: Any, serve: Any) -> tuple[Any, list[tuple[str, int, int | None]]]:
    """The signature as one call: a [rows, scored fields] string tensor in, one float32
    [rows, columns] tensor out; and each output's (name, first column, width or None for
    a vector).

    Why one call: the interpreter lock. Each tensor made and each output read is a step
    that needs the lock, and a model thread asking for it back waits until the bundle
    thread holding it blocks or has run for Python's 5 ms switch interval. With a
    tensor per field and an array per output, a call of 454 records took 19 ms alone,
    44 ms beside one busy Python thread and 389 ms beside three; as one call, 19, 29
    and 72 ms.
    """
    shapes = serve.structured_outputs
    layout: list[tuple[str, int, int | None]] = []
    column = 0
    for name in _OUTPUTS:
        shape = shapes[name].shape
        if shapes[name].dtype != tf.float32 or shape.rank not in (1, 2) or (shape.rank == 2 and shape[1] is None):
            raise ModelLoadError(f"output {name}: {shapes[name].dtype.name} {shape}, "
                                 "not float32 [rows] or [rows, classes]")
        width = shape[1] if shape.rank == 2 else None
        layout.append((name, column, width))
        column += width or 1

    @tf.function(input_signature=[tf.TensorSpec([None, len(SCORED_FIELD_NAMES)], tf.string)])
    def call(rows: Any) -> Any:
        scored = serve(**{name: rows[:, i] for i, name in enumerate(SCORED_FIELD_NAMES)})
        return tf.concat([tf.reshape(scored[name], [tf.shape(rows)[0], -1]) for name in _OUTPUTS], axis=1)

    return call.get_concrete_function(), layout


# TensorFlow's intra- and inter-op threads in a job's processes. TensorFlow sizes its pools at
# its first use in a process and keeps them, so every load in a job's process asks for the
# same: the launcher's model check too, since a LOOPBACK worker runs in the launcher's
# process. With one of each, a model call runs on one core while the bundle threads' Python
# work runs on the other; with TensorFlow's default (one per core) in the stream, two more
# pool workers took about 0.2 of a core each, and the stream was slower (README, Measured).
JOB_TF_THREADS = 1


_PYPLOT = "matplotlib.pyplot"


def import_tensorflow() -> Any:
    """TensorFlow, imported without matplotlib's pyplot.

    TensorFlow's import brings in Keras 3, whose plotting helpers import ``matplotlib.pyplot``
    when matplotlib is installed (it is, for the training report) and go without it when that
    import fails. Nothing that scores plots, and pyplot cost 0.5-0.7 s of the import's
    2.5-3.5 s of CPU (measured here, four alternating pairs), in every process that loads the
    model. The block holds only during this import: pyplot imports normally afterwards.
    """
    import sys

    if "tensorflow" in sys.modules or _PYPLOT in sys.modules:
        import tensorflow as tf

        return tf
    sys.modules[_PYPLOT] = None  # a None entry makes "import matplotlib.pyplot" raise ImportError
    try:
        import tensorflow as tf
    finally:
        if sys.modules.get(_PYPLOT, _PYPLOT) is None:
            del sys.modules[_PYPLOT]
    return tf


def _set_threads(tf: Any, threads: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    except RuntimeError:
        # TensorFlow is already initialised in this process (another model loaded first).
        pass


def padded_rows(n: int) -> int:
    """Rows a model call of ``n`` records is padded to: a power of two up to 64, then a multiple of 64.

    TensorFlow's CPU kernels (oneDNN) keep compiled primitives per input shape. A stream's
    batches come in every size from 1 to --batch-size, and each new size cost resident
    memory: 1,200 calls of random sizes grew a process by 130 MB, the same calls rounded to
    these sizes by nothing. With a batch size of 512 there are 13 shapes.

    >>> [padded_rows(n) for n in (1, 3, 64, 65, 500, 512, 513)]
    [1, 4, 64, 128, 512, 512, 576]
    """
    if n <= 64:
        return 1 << max(n - 1, 0).bit_length()
    return -(-n // 64) * 64


class Predictor:
    """A loaded detector: raw tracks in, ``RecordScores`` out."""

    def __init__(self, version_dir: str | Path, manifest: Mapping[str, Any], loaded: Any,
                 call: Any, layout: Sequence[tuple[str, int, int | None]]) -> None:
        self.version_dir = version_dir
        self.manifest = dict(manifest)
        # The loaded object owns the variables the signature reads: keep it alive.
        self._loaded = loaded
        self._call = call
        self._layout = list(layout)
        self._classes = {spec.name: np.array(spec.classes, dtype=object) for spec in SCORED_FIELDS}

    @classmethod
    def load(cls, model_dir: str | Path, threads: int | None = None) -> Predictor:
        """Load the SavedModel under ``model_dir`` (export root or version dir).

        ``threads`` caps TensorFlow's intra- and inter-op thread pools of this process
        (None leaves TF's default, one per core). It takes effect only before TensorFlow
        has run anything in the process; later it is left as it was.
        """
        version_dir = resolve_version_dir(model_dir)
        manifest = read_manifest(version_dir)
        tf = import_tensorflow()

        if threads is not None:
            _set_threads(tf, threads)

        try:
            loaded = tf.saved_model.load(str(version_dir))
            serve = loaded.signatures[SIGNATURE]
        except Exception as err:  # protobuf, TF and OS errors alike: the model is unusable
            raise ModelLoadError(f"cannot load the SavedModel in {version_dir}: {err}") from err
        outputs = set(serve.structured_outputs)
        wanted = set(_OUTPUTS)
        if not wanted <= outputs:
            raise ModelLoadError(
                f"{version_dir}: signature lacks outputs {sorted(wanted - outputs)}"
            )
        try:
            call, layout = _stacked_call(tf, serve)
        except Exception as err:  # a signature this code cannot call: the model is unusable
            raise ModelLoadError(f"{version_dir}: cannot make the scoring call: {err}") from err
        return cls(version_dir, manifest, loaded, call, layout)

    @property
    def version(self) -> str:
        return str(self.manifest["version"])

    @property
    def thresholds(self) -> Thresholds:
        t = self.manifest["thresholds"]
        return Thresholds(apply=float(t["apply"]), review=float(t["review"]))

    def predict_columns(self, columns: Mapping[str, Sequence[str]]) -> dict[str, np.ndarray]:
        """Raw model outputs for column-wise raw strings (one list per scored field).

        The call is padded with empty rows to ``padded_rows`` rows, and the outputs cut
        back: rows are scored independently, so padding changes no real row's scores.
        """
        import tensorflow as tf

        n = len(columns[SCORED_FIELD_NAMES[0]])
        rows = np.full((padded_rows(n), len(SCORED_FIELD_NAMES)), "", dtype=object)
        for i, name in enumerate(SCORED_FIELD_NAMES):
            rows[:n, i] = columns[name]
        out = self._call(_string_tensor(tf, rows)).numpy()[:n]
        return {name: out[:, start] if width is None else out[:, start:start + width]
                for name, start, width in self._layout}

    def predict_probs(self, tracks: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
        """Raw model outputs for raw track dicts: ``<field>_probs`` and ``swapped_prob``."""
        if not tracks:
            return {
                **{
                    probs_output(s.name): np.zeros((0, len(s.classes)), np.float32)
                    for s in SCORED_FIELDS
                },
                SWAPPED_OUTPUT: np.zeros((0,), np.float32),
            }
        return self.predict_columns(raw_columns(tracks))

    def scores_from_probs(self, probs: Mapping[str, np.ndarray]) -> list[RecordScores]:
        """Argmax class and its probability per field, vectorised over the batch."""
        per_field = []
        for name in SCORED_FIELD_NAMES:
            p = probs[probs_output(name)]
            best = p.argmax(axis=1)
            confidence = np.take_along_axis(p, best[:, None], axis=1)[:, 0]
            per_field.append(
                zip(self._classes[name][best].tolist(), confidence.tolist(), strict=True)
            )
        swapped = np.asarray(probs[SWAPPED_OUTPUT]).tolist()
        return [
            RecordScores(fields=dict(zip(SCORED_FIELD_NAMES, row, strict=True)), swapped=s)
            for row, s in zip(zip(*per_field, strict=True), swapped, strict=True)
        ]

    def predict(self, tracks: Sequence[Mapping[str, Any]]) -> list[RecordScores]:
        """Scores for a batch of raw track dicts (CatalogUpdateEvent ``track`` records)."""
        return self.scores_from_probs(self.predict_probs(tracks))
