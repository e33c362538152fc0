"""Evaluate an exported detector against the rules-only baseline.

    python -m model.training.evaluate --model-dir model/export --json build/eval.json

(``metafix evaluate`` calls ``evaluate(model_dir, json_path)``.) Two data
sets, both from the test split's seed records, which the model never saw:

* ``test``: the test split exactly as training generated it;
* ``second_seed``: the same seeds corrupted with a generator seed that no
  training run uses, so the corruptions themselves are new.

On each, for the model and for the rules baseline (``transforms.rules.detect``
feeding the same decision policy, measured in the same run):

* detection precision/recall/F1 per error class and per field/class, and the
  macro-F1 over error classes;
* correction exact match: the policy's typed output equals
  ``Example.expected`` on the corrupted fields; for classes nothing can
  correct (``Example.expect_review``) the value must also be flagged;
* false corrections: clean, non-empty scored fields that the policy changed,
  overall and on the legitimate look-alikes (``Example.lookalike``).

Beside them, a **real-data section** (``model/training/realeval.py``) on real
records the model never trained on (``realdata.split_of``: by artist or
cluster): clean records changed / sent to review / swapped, real malformations
handled per class, and the review rate, on the real ``test`` split (thresholds
were chosen on the real ``validation`` split at training time), with the
profile the model ships (built from the training seeds and the real train split).

The JSON has ``detection_macro_f1``, ``correction_exact_match`` and
``false_correction_rate`` for the test split at the top level, ``baseline``
with the same keys, and the details under ``test`` / ``second_seed``. A
Markdown report with PNG plots goes into the model's version directory.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from model.profilestore import bundled_profile_dir, load_latest
from model.serving import Predictor
from model.training import realdata, realeval
from model.training import train as training
from model.training.metrics import (
    detection_counts,
    predicted_from_probs,
    summarise_detection,
)
from model.training.report import write_report
from transforms import rules
from transforms.fields import (
    ALL_CLASSES,
    CLEAN,
    ERROR_CLASS,
    SCORED_FIELD_NAMES,
    SCORED_FIELDS,
    SWAP_CLASS,
)
from transforms.policy import correct_track
from transforms.profile import ProfileData

# Generator seed offset of the second corruption seed: far from every
# offset train() uses (model.training.train.SPLIT_SEED_OFFSETS).
SECOND_SEED_OFFSET = 1_000
THROUGHPUT_BATCH = 512


# --------------------------------------------------------------------------- detection


def predicted_from_scores(scores: Sequence[Any]) -> dict[str, np.ndarray]:
    """Detection decisions from ``RecordScores`` (the rules baseline)."""
    predicted: dict[str, np.ndarray] = {}
    for spec in SCORED_FIELDS:
        index = {c: i for i, c in enumerate(spec.classes)}
        predicted[spec.name] = np.array(
            [index[s.fields.get(spec.name, (CLEAN, 0.0))[0]] for s in scores], dtype=np.int64
        )
    predicted["swapped"] = np.array([s.swapped >= 0.5 for s in scores], dtype=bool)
    return predicted


# --------------------------------------------------------------------------- correction


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


@dataclass
class _Tally:
    ok: int = 0
    total: int = 0

    def add(self, success: bool) -> None:
        self.ok += int(success)
        self.total += 1

    @property
    def rate(self) -> float:
        return self.ok / self.total if self.total else 0.0

    def as_dict(self) -> dict[str, float]:
        return {"rate": self.rate, "ok": self.ok, "total": self.total}


def _fixed(example: Any, result: Any, name: str, error_class: str) -> bool:
    """Whether the policy's output for a corrupted field is what it should be."""
    ok = result.track.get(name) == example.expected.get(name)
    if name in example.expect_review:  # nothing can correct it: kept and flagged
        ok = ok and name in result.review_fields
    extra = ERROR_CLASS[error_class].fills if error_class in ERROR_CLASS else None
    if extra is not None:  # what the title corrector took out must land in its field
        ok = ok and result.track.get(extra) == example.expected.get(extra)
    return ok


def correction_report(
    examples: Sequence[Any], scores: Sequence[Any], thresholds: Any, model_version: str,
    profile: ProfileData | None = None,
) -> dict[str, Any]:
    """Run the decision policy with ``scores`` (and the model's ``profile``) and
    compare it with the expected tracks. A case class on one value of a record
    that does not shout as a whole is left alone by design (stylisation), so it
    counts as not corrected here: the synthetic exact match is a lower bound."""
    exact = _Tally()
    exact_by_class: dict[str, _Tally] = defaultdict(_Tally)
    false_corr = _Tally()
    false_by_field: dict[str, _Tally] = defaultdict(_Tally)
    lookalike = _Tally()
    lookalike_by_kind: dict[str, _Tally] = defaultdict(_Tally)
    false_alarms = _Tally()
    for ex, score in zip(examples, scores, strict=True):
        result = correct_track(ex.raw, score, thresholds=thresholds, model_version=model_version,
                               profile=profile)
        changed = {c["field"] for c in result.corrections}
        flagged = result.review_fields
        track, expected = result.track, ex.expected
        for name in SCORED_FIELD_NAMES:
            label = ex.labels.get(name, CLEAN)
            swapped_field = ex.swapped and name in ("title", "artist")
            if label != CLEAN:
                success = _fixed(ex, result, name, label)
                exact.add(success)
                exact_by_class[label].add(success)
            elif not swapped_field and not _blank(ex.raw.get(name)):
                was_changed = name in changed
                false_corr.add(was_changed)
                false_by_field[name].add(was_changed)
                false_alarms.add(name in flagged)
                if ex.lookalike is not None:
                    lookalike.add(was_changed)
                    lookalike_by_kind[ex.lookalike].add(was_changed)
        if ex.swapped:
            success = all(track.get(n) == expected.get(n) for n in ("title", "artist"))
            exact.add(success)
            exact_by_class[SWAP_CLASS].add(success)
    return {
        "correction_exact_match": exact.rate,
        "false_correction_rate": false_corr.rate,
        "corrupted_fields": exact.total,
        "clean_fields": false_corr.total,
        "false_corrections": false_corr.ok,
        "exact_match_per_class": {
            c: exact_by_class[c].as_dict() for c in ALL_CLASSES if c in exact_by_class
        },
        "false_corrections_per_field": {f: t.as_dict() for f, t in false_by_field.items()},
        "lookalike_false_correction_rate": lookalike.rate,
        "lookalike_false_corrections": lookalike.as_dict(),
        "lookalike_false_corrections_per_kind": {
            k: t.as_dict() for k, t in sorted(lookalike_by_kind.items())
        },
        "clean_fields_flagged_rate": false_alarms.rate,
    }


# --------------------------------------------------------------------------- running


def predict_in_batches(
    predictor: Any, tracks: Sequence[Mapping[str, Any]], batch_size: int = 1024
) -> dict[str, np.ndarray]:
    parts = [
        predictor.predict_probs(tracks[i : i + batch_size])
        for i in range(0, len(tracks), batch_size)
    ]
    return {key: np.concatenate([p[key] for p in parts]) for key in parts[0]}


def measure_throughput(
    fn: Callable[[Sequence[Mapping[str, Any]]], Any],
    tracks: Sequence[Mapping[str, Any]],
    batch_size: int = THROUGHPUT_BATCH,
    seconds: float = 3.0,
) -> float:
    """Records/s of ``fn`` on batches of ``batch_size``: the best of several timed rounds,
    since a shared machine only ever makes a round slower."""
    batches = [
        tracks[i : i + batch_size] for i in range(0, len(tracks) - batch_size + 1, batch_size)
    ]
    if not batches:
        batches = [list(tracks)]
    fn(batches[0])  # warm up (first call traces and allocates)
    best = 0.0
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        for batch in batches:
            start = time.perf_counter()
            fn(batch)
            best = max(best, len(batch) / (time.perf_counter() - start))
    return best


def _headline(detection: Mapping[str, Any], correction: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "detection_macro_f1": detection["detection_macro_f1"],
        "correction_exact_match": correction["correction_exact_match"],
        "false_correction_rate": correction["false_correction_rate"],
        "lookalike_false_correction_rate": correction["lookalike_false_correction_rate"],
    }


def evaluate_examples(
    predictor: Any, examples: Sequence[Any], labels: Mapping[str, np.ndarray],
    profile: ProfileData | None = None,
) -> dict[str, Any]:
    """Model and baseline numbers on one data set; raw model outputs under ``_probs``."""
    tracks = [ex.raw for ex in examples]
    probs = predict_in_batches(predictor, tracks)
    model_scores = predictor.scores_from_probs(probs)
    baseline_scores = [rules.detect(t) for t in tracks]

    model_detection = summarise_detection(detection_counts(predicted_from_probs(probs), labels))
    baseline_detection = summarise_detection(
        detection_counts(predicted_from_scores(baseline_scores), labels)
    )
    model_correction = correction_report(
        examples, model_scores, predictor.thresholds, predictor.version, profile
    )
    baseline_correction = correction_report(
        examples, baseline_scores, predictor.thresholds, "rules-baseline", profile
    )
    return {
        "records": len(examples),
        "model": {
            **_headline(model_detection, model_correction),
            "detection": model_detection,
            "correction": model_correction,
        },
        "baseline": {
            **_headline(baseline_detection, baseline_correction),
            "detection": baseline_detection,
            "correction": baseline_correction,
        },
        "_probs": probs,
        "_baseline_predicted": predicted_from_scores(baseline_scores),
    }


def evaluate(
    model_dir: str | Path,
    json_path: str | Path,
    *,
    data_dir: str | Path | None = None,
    report: bool = True,
    second_seed_offset: int = SECOND_SEED_OFFSET,
    throughput_seconds: float = 3.0,
    real_dir: str | Path | None = realdata.DEFAULT_REAL_DIR,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` (export root or version dir); write ``json_path``.

    Returns the JSON document. With ``report`` also writes ``report.md`` and
    PNG plots into the model's version directory.
    """
    started = time.monotonic()
    predictor = Predictor.load(model_dir)
    cfg = training.config_from_manifest(predictor.manifest)
    data_dir = Path(data_dir) if data_dir is not None else training.DEFAULT_DATA_DIR
    _, _, test_seeds = training.split_seed_records(cfg, data_dir)
    fingerprint_ok = training.data_fingerprint(cfg, data_dir) == predictor.manifest.get(
        "data_fingerprint"
    )

    sets = {
        "test": training.generate_split(
            test_seeds,
            cfg,
            cfg.generator_seed + training.SPLIT_SEED_OFFSETS["test"],
            copies=cfg.eval_copies,
            corruption_rate=cfg.eval_corruption_rate,
        ),
        "second_seed": training.generate_split(
            test_seeds,
            cfg,
            cfg.generator_seed + second_seed_offset,
            copies=cfg.eval_copies,
            corruption_rate=cfg.eval_corruption_rate,
        ),
    }
    profile_dir = bundled_profile_dir(predictor.version_dir)
    profile = load_latest(profile_dir) if profile_dir is not None else None
    results = {
        name: evaluate_examples(predictor, split.examples, split.labels, profile)
        for name, split in sets.items()
    }

    test_tracks = [ex.raw for ex in sets["test"].examples]
    throughput = {
        "batch_size": THROUGHPUT_BATCH,
        "model_records_per_s": measure_throughput(
            predictor.predict, test_tracks, seconds=throughput_seconds
        ),
        "baseline_records_per_s": measure_throughput(
            lambda batch: [rules.detect(t) for t in batch], test_tracks, seconds=throughput_seconds
        ),
    }
    real = evaluate_real_split(predictor, real_dir) if real_dir is not None else None
    test = results["test"]
    document: dict[str, Any] = {
        "model_version": predictor.version,
        "model_dir": str(predictor.version_dir),
        "thresholds": {"apply": predictor.thresholds.apply, "review": predictor.thresholds.review},
        "training_data_matches": fingerprint_ok,
        **{k: test["model"][k] for k in _headline_keys()},
        "baseline": {k: test["baseline"][k] for k in _headline_keys()},
        "throughput": throughput,
        "per_class": test["model"]["detection"]["per_class"],
        "per_field": test["model"]["detection"]["per_field_class"],
    }
    for name, result in results.items():
        document[name] = {k: v for k, v in result.items() if not k.startswith("_")}
    if real is not None:
        document["real"] = real
    document["seconds"] = round(time.monotonic() - started, 1)
    json_path = Path(json_path)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(
        json.dumps(document, indent=2, sort_keys=True, default=_json_default) + "\n"
    )
    if report:
        write_report(
            predictor.version_dir,
            document,
            {
                name: (sets[name].labels, result["_probs"], result["_baseline_predicted"])
                for name, result in results.items()
            },
        )
    return document


def evaluate_real_split(predictor: Predictor, real_dir: str | Path, split: str = "test"
                        ) -> dict[str, Any]:
    """The real-data section: ``split``'s judged records through the model, its
    shipped thresholds and its bundled profile; and under ``as_replayed`` the same records
    corrected with the profile a replay of the split builds from it (``replay_profile``)."""
    profile_dir = bundled_profile_dir(predictor.version_dir)
    profile = load_latest(profile_dir) if profile_dir is not None else None
    split_records = realdata.split_records(realdata.load_all(real_dir))[split]
    records = realeval.judged(split_records)
    scores = realeval.score(predictor.predict, records)
    report = realeval.evaluate_real(
        records, scores, realeval.policy_for(predictor.thresholds, predictor.version, profile))
    replayed = realeval.evaluate_real(records, scores, realeval.policy_for(
        predictor.thresholds, predictor.version, realeval.replay_profile(split_records)))
    return {"split": split, "profile_version": profile.version if profile is not None else None,
            **report.summary(), "as_replayed": replayed.summary()}


def _headline_keys() -> tuple[str, ...]:
    return (
        "detection_macro_f1",
        "correction_exact_match",
        "false_correction_rate",
        "lookalike_false_correction_rate",
    )


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, Counter):
        return dict(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="metafix evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model-dir", type=Path, default=Path(__file__).resolve().parents[1] / "export"
    )
    parser.add_argument("--json", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--no-report", action="store_true")
    parser.add_argument("--real-dir", type=Path, default=realdata.DEFAULT_REAL_DIR,
                        help="real records (../shared/data/real); the real-data section needs them")
    args = parser.parse_args(argv)
    document = evaluate(
        args.model_dir, args.json, data_dir=args.data_dir, report=not args.no_report,
        real_dir=args.real_dir if args.real_dir.is_dir() else None,
    )
    summary = {k: document[k] for k in _headline_keys()}
    print(
        json.dumps(
            {
                "model": summary,
                "baseline": document["baseline"],
                "throughput": document["throughput"],
            },
            indent=2,
        )
    )
    if "real" in document:
        print(realeval.format_report(document["real"], "real records, test split"))
        print(realeval.format_report(document["real"]["as_replayed"],
                                     "real records, test split, as a replay of it corrects them (its own profile)"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
