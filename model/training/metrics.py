"""Detection metrics of model outputs, shared by training (threshold choice, the
manifest's validation report) and evaluation.

    >>> report = summarise_detection({("isrc", "isrc_format"): (9, 1, 0)})
    >>> round(report["per_class"]["isrc_format"]["f1"], 3), report["detection_macro_f1"] == 0.9473684210526316
    (0.947, True)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from model.signature import SWAPPED_OUTPUT, probs_output
from transforms.fields import ALL_CLASSES, CLEAN, SCORED_FIELD_NAMES, SCORED_FIELDS, SWAP_CLASS


def _prf(tp: int, fp: int, fn: int) -> dict[str, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": tp + fn,
        "tp": tp,
        "fp": fp,
        "fn": fn,
    }


def detection_counts(
    predicted: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray]
) -> dict[tuple[str, str], tuple[int, int, int]]:
    """(field, class) -> (tp, fp, fn) for predicted class indices vs label indices.

    ``predicted``/``labels`` hold per field an int array of class indices and
    under ``"swapped"`` a bool array (the record-level swap, field ``"record"``).
    """
    counts: dict[tuple[str, str], tuple[int, int, int]] = {}
    for spec in SCORED_FIELDS:
        pred, true = np.asarray(predicted[spec.name]), np.asarray(labels[spec.name])
        for index, cls in enumerate(spec.classes):
            if cls == CLEAN:
                continue
            p, t = pred == index, true == index
            counts[(spec.name, cls)] = (
                int((p & t).sum()),
                int((p & ~t).sum()),
                int((~p & t).sum()),
            )
    p = np.asarray(predicted["swapped"]).astype(bool)
    t = np.asarray(labels["swapped"]).astype(bool)
    counts[("record", SWAP_CLASS)] = (int((p & t).sum()), int((p & ~t).sum()), int((~p & t).sum()))
    return counts


def summarise_detection(counts: Mapping[tuple[str, str], tuple[int, int, int]]) -> dict[str, Any]:
    """Per class (pooled over fields), per field/class, and the macro-F1 over error classes.

    A class that neither occurs nor is predicted has no F1 and is left out
    of the macro average.
    """
    per_class: dict[str, dict[str, float]] = {}
    for cls in ALL_CLASSES:
        cells = [v for (_, c), v in counts.items() if c == cls]
        tp, fp, fn = (sum(x) for x in zip(*cells, strict=True)) if cells else (0, 0, 0)
        if tp + fp + fn:
            per_class[cls] = _prf(tp, fp, fn)
    per_field_class = {f"{f}/{c}": _prf(*v) for (f, c), v in counts.items() if sum(v)}
    macro = float(np.mean([m["f1"] for m in per_class.values()])) if per_class else 0.0
    return {"detection_macro_f1": macro, "per_class": per_class, "per_field_class": per_field_class}


def predicted_from_probs(probs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Detection decisions of the model: argmax per field, swap at probability 0.5."""
    predicted = {s.name: probs[probs_output(s.name)].argmax(axis=1) for s in SCORED_FIELDS}
    predicted["swapped"] = np.asarray(probs[SWAPPED_OUTPUT]) >= 0.5
    return predicted


def detection_report(
    probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], apply_threshold: float
) -> dict[str, Any]:
    """Detection metrics of model outputs, plus the share of clean fields the
    policy would change at ``apply_threshold`` (the training-time estimate)."""
    report = summarise_detection(detection_counts(predicted_from_probs(probs), labels))
    fc, n_clean = false_correction_counts(probs, labels, [apply_threshold])
    report["false_correction_rate"] = float(fc[0]) / max(n_clean, 1)
    report["clean_fields"] = n_clean
    return report


def false_correction_counts(
    probs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray], grid: Sequence[float]
) -> tuple[np.ndarray, int]:
    """Per threshold, clean fields the policy would change; and the number of clean fields.

    A clean field is changed when its argmax is an error class with at least
    the threshold's confidence; a false swap changes the title and the artist.
    """
    grid_arr = np.asarray(grid)[:, None]
    counts = np.zeros(len(grid), dtype=np.int64)
    n_clean = 0
    for name in SCORED_FIELD_NAMES:
        p = probs[probs_output(name)]
        clean = labels[name] == 0
        flagged = p.argmax(axis=1) != 0
        conf = p.max(axis=1)
        n_clean += int(clean.sum())
        counts += ((conf[None, :] >= grid_arr) & (clean & flagged)[None, :]).sum(axis=1)
    not_swapped = labels["swapped"] < 0.5
    counts += 2 * ((probs[SWAPPED_OUTPUT][None, :] >= grid_arr) & not_swapped[None, :]).sum(axis=1)
    return counts, n_clean
