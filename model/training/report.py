"""Markdown report and PNG plots of an evaluation (written by ``model.training.evaluate``).

Files, in the model's version directory:

* ``report.md``: headline numbers model vs rules baseline, per class, look-alikes;
* ``confusion_<set>.png``: per-field confusion matrices of the model;
* ``precision_recall.png``: per-class precision-recall curves of the model,
  with the baseline's single operating point;
* ``f1_per_class.png``: per-class F1, model vs baseline.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from model.signature import SWAPPED_OUTPUT, probs_output
from model.training.realeval import format_report
from transforms.fields import ALL_CLASSES, SCORED_FIELDS, SWAP_CLASS

REPORT_FILE = "report.md"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; no display on workers or CI
    import matplotlib.pyplot as plt

    return plt


def confusion_matrices(
    labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Per field: counts [true class, predicted class] of the model's argmax."""
    matrices = {}
    for spec in SCORED_FIELDS:
        n = len(spec.classes)
        pred = probs[probs_output(spec.name)].argmax(axis=1)
        matrices[spec.name] = np.bincount(labels[spec.name] * n + pred, minlength=n * n).reshape(
            n, n
        )
    return matrices


def plot_confusion(path: Path, matrices: Mapping[str, np.ndarray], title: str) -> None:
    plt = _pyplot()
    fig, axes = plt.subplots(2, 4, figsize=(22, 11))
    for ax, spec in zip(axes.ravel(), SCORED_FIELDS, strict=True):
        counts = matrices[spec.name]
        share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
        ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
        ticks = range(len(spec.classes))
        ax.set_xticks(ticks, spec.classes, rotation=60, ha="right", fontsize=7)
        ax.set_yticks(ticks, spec.classes, fontsize=7)
        ax.set_title(spec.name)
        ax.set_xlabel("predicted", fontsize=8)
        ax.set_ylabel("true", fontsize=8)
        for (i, j), value in np.ndenumerate(counts):
            if value:
                ax.text(
                    j,
                    i,
                    str(value),
                    ha="center",
                    va="center",
                    fontsize=6,
                    color="white" if share[i, j] > 0.5 else "black",
                )
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _class_scores(
    labels: Mapping[str, np.ndarray], probs: Mapping[str, np.ndarray], cls: str
) -> tuple[np.ndarray, np.ndarray]:
    """Scores and truth of one class, pooled over the fields that have it."""
    if cls == SWAP_CLASS:
        return np.asarray(probs[SWAPPED_OUTPUT]), labels["swapped"] > 0.5
    scores, truth = [], []
    for spec in SCORED_FIELDS:
        if cls in spec.classes:
            index = spec.classes.index(cls)
            scores.append(probs[probs_output(spec.name)][:, index])
            truth.append(labels[spec.name] == index)
    return np.concatenate(scores), np.concatenate(truth)


def precision_recall_curve(scores: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    order = np.argsort(-scores, kind="stable")
    hits = truth[order].astype(np.float64)
    tp = np.cumsum(hits)
    fp = np.cumsum(1.0 - hits)
    precision = tp / np.maximum(tp + fp, 1.0)
    recall = tp / max(hits.sum(), 1.0)
    return precision, recall


def plot_precision_recall(
    path: Path,
    labels: Mapping[str, np.ndarray],
    probs: Mapping[str, np.ndarray],
    baseline: Mapping[str, Mapping[str, float]],
) -> None:
    plt = _pyplot()
    cols = 5
    rows = -(-len(ALL_CLASSES) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 3.4 * rows))
    for ax in axes.ravel()[len(ALL_CLASSES) :]:
        ax.axis("off")
    for ax, cls in zip(axes.ravel(), ALL_CLASSES, strict=False):
        scores, truth = _class_scores(labels, probs, cls)
        if truth.any():
            precision, recall = precision_recall_curve(scores, truth)
            ax.plot(recall, precision, label="model")
        point = baseline.get(cls)
        if point is not None:
            ax.plot([point["recall"]], [point["precision"]], "o", color="C3", label="rules")
        ax.set_title(f"{cls} (n={int(truth.sum())})", fontsize=9)
        ax.set_xlim(0, 1.02)
        ax.set_ylim(0, 1.02)
        ax.set_xlabel("recall", fontsize=8)
        ax.set_ylabel("precision", fontsize=8)
        ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_f1(path: Path, model: Mapping[str, Any], baseline: Mapping[str, Any]) -> None:
    plt = _pyplot()
    classes = [c for c in ALL_CLASSES if c in model or c in baseline]
    x = np.arange(len(classes))
    fig, ax = plt.subplots(figsize=(14, 5))
    ax.bar(x - 0.2, [model.get(c, {}).get("f1", 0.0) for c in classes], 0.4, label="model")
    ax.bar(x + 0.2, [baseline.get(c, {}).get("f1", 0.0) for c in classes], 0.4, label="rules")
    ax.set_xticks(x, classes, rotation=45, ha="right", fontsize=8)
    ax.set_ylabel("F1 (test split)")
    ax.set_ylim(0, 1.05)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _pct(value: float) -> str:
    return f"{100 * value:.2f} %"


def _markdown(document: Mapping[str, Any], images: list[str]) -> str:
    lines = [
        f"# Evaluation of model {document['model_version']}",
        "",
        f"Thresholds: apply {document['thresholds']['apply']}, review {document['thresholds']['review']}. "
        f"Throughput at batch {document['throughput']['batch_size']}: "
        f"model {document['throughput']['model_records_per_s']:,.0f} records/s, "
        f"rules {document['throughput']['baseline_records_per_s']:,.0f} records/s.",
        "",
        "| data set | scorer | detection macro-F1 | correction exact match | false corrections (clean fields) | false corrections (look-alikes) |",
        "|---|---|---|---|---|---|",
    ]
    for name in ("test", "second_seed"):
        for who in ("model", "baseline"):
            r = document[name][who]
            lines.append(
                f"| {name} | {who} | {r['detection_macro_f1']:.4f} | {_pct(r['correction_exact_match'])} "
                f"| {_pct(r['false_correction_rate'])} | {_pct(r['lookalike_false_correction_rate'])} |"
            )
    lines += [
        "",
        "## Per error class (test split)",
        "",
        "| class | model P | model R | model F1 | rules F1 | support | model exact match | rules exact match |",
        "|---|---|---|---|---|---|---|---|",
    ]
    test = document["test"]
    model_pc = test["model"]["detection"]["per_class"]
    base_pc = test["baseline"]["detection"]["per_class"]
    model_em = test["model"]["correction"]["exact_match_per_class"]
    base_em = test["baseline"]["correction"]["exact_match_per_class"]
    for cls in ALL_CLASSES:
        m = model_pc.get(cls)
        if m is None:
            continue
        b = base_pc.get(cls, {"f1": 0.0})
        lines.append(
            f"| {cls} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} | {b['f1']:.3f} "
            f"| {m['support']} | {_pct(model_em.get(cls, {}).get('rate', 0.0))} "
            f"| {_pct(base_em.get(cls, {}).get('rate', 0.0))} |"
        )
    lines += [
        "",
        "## False corrections on legitimate look-alikes (test split)",
        "",
        "| kind | model | rules |",
        "|---|---|---|",
    ]
    model_kinds = test["model"]["correction"]["lookalike_false_corrections_per_kind"]
    base_kinds = test["baseline"]["correction"]["lookalike_false_corrections_per_kind"]
    for kind, tally in model_kinds.items():
        base = base_kinds.get(kind, {"ok": 0, "total": 0})
        lines.append(f"| {kind} | {tally['ok']}/{tally['total']} | {base['ok']}/{base['total']} |")
    lines += ["", "## Plots", ""] + [f"![{image}]({image})" for image in images] + [""]
    return "\n".join(lines)


def write_report(
    version_dir: Path,
    document: Mapping[str, Any],
    data: Mapping[str, tuple[Mapping[str, np.ndarray], Mapping[str, np.ndarray], Any]],
) -> Path:
    """Write report.md and the PNGs into ``version_dir``; return the report path."""
    version_dir = Path(version_dir)
    images = []
    for name, (labels, probs, _) in data.items():
        image = f"confusion_{name}.png"
        plot_confusion(
            version_dir / image,
            confusion_matrices(labels, probs),
            f"{name}: model confusion per field",
        )
        images.append(image)
    labels, probs, _ = data["test"]
    plot_precision_recall(
        version_dir / "precision_recall.png",
        labels,
        probs,
        document["test"]["baseline"]["detection"]["per_class"],
    )
    plot_f1(
        version_dir / "f1_per_class.png",
        document["test"]["model"]["detection"]["per_class"],
        document["test"]["baseline"]["detection"]["per_class"],
    )
    images += ["precision_recall.png", "f1_per_class.png"]
    path = version_dir / REPORT_FILE
    text = _markdown(document, images)
    if "real" in document:
        # The real-data section (model/training/realeval.py) beside the synthetic plots.
        text += "\n```\n" + format_report(document["real"], "Real records (test split)") + "\n```\n"
        text += ("\n```\n" + format_report(document["real"]["as_replayed"],
                                           "Real records (test split), as a replay of it corrects them")
                 + "\n```\n")
    path.write_text(text, encoding="utf-8")
    return path
