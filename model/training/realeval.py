"""Judging the policy on real records (``model/training/realdata.py``), and
choosing thresholds to budgets on the real validation split.

The scores come from the model; everything here is pure. Two kinds of records:

* **clean** (Spotify, and the unlabelled records of the sets whose truth is
  voted or read, ``CLEAN_TRUTH``): every value is right, so any change is a false
  correction. Counted per record: ``changed`` (a correction other than
  featured-artist extraction and the ISO-639 language rewrite, which only
  re-spell), ``featured_extraction`` (counted apart: "(feat. X)" leaving the
  title is expected), ``review`` (at least one flag), ``swaps_applied``; and
  per field and class.
* **malformed** (MusicBrainz, CDDB, Discogs): per label (``field.label``), a
  value is *handled* when the policy's typed output equals the truth
  (``fixed``) or the field is flagged with a class in ``RIGHT[label]``
  (``flagged``). A title also equals its truth when only the truth's featured
  credit has moved into ``featured_artists`` (re-spelled, as on clean records).
  Three labels are judged by what the policy promises, not by a value the
  record cannot carry: a placeholder is fixed when it becomes null
  (or the right value, when the title gave it back); a partial date or a year
  is fixed when it is typed at its precision ("1999-10-00" -> 1999-10, month);
  a "mojibake" label whose truth itself holds U+FFFD (the CDDB labeller's
  repair lost letters) is judged as ``unrecoverable_text``. CDDB records
  without a label are not known to be clean (its labels come from detectors,
  on titles only) and are reported apart as ``unlabelled``.

    >>> budgets_met({"clean_review": 0.04, "clean_changed": 0.004, "swaps_applied": 0,
    ...              "malformed_handled": 0.91})
    True
"""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from model.training.realdata import (
    ALBUM_IN_TITLE,
    CASE_VARIANT,
    OTHER_VARIANT,
    PARTIAL_DATE,
    PLACEHOLDER,
    UNRECOVERABLE_TEXT,
    VARIOUS_ARTIST_IN_TITLE,
    YEAR_ONLY,
    RealRecord,
)
from transforms import correctors, titleparse
from transforms.fields import LANGUAGE_CODE, SWAP_CLASS
from transforms.policy import CorrectionResult, RecordScores, Thresholds, correct_track
from transforms.profile import ProfileData, build_profile

FEATURED = "featured_in_title"
# Data sets whose records without a label are known to be clean.
CLEAN_TRUTH = frozenset(["spotify", "musicbrainz", "discogs"])
# Corrections that only re-spell a value the same way for everyone.
NOT_A_CHANGE = frozenset([FEATURED, LANGUAGE_CODE])

# Label -> the flag classes that count as "flagged with the right class".
RIGHT: dict[str, frozenset[str]] = {k: frozenset(v) for k, v in {
    "track_number_prefix": {"track_number_prefix"},
    "artist_in_title": {"artist_in_title"},
    CASE_VARIANT: {"all_caps", "all_lower"},
    "all_caps": {"all_caps"},
    "mojibake": {"mojibake"},
    "whitespace": {"whitespace"},
    "duration_format": {"duration_format", "invalid_value"},
    PLACEHOLDER: {"invalid_value", "placeholder"},
    YEAR_ONLY: {"date_format", "invalid_value"},
    PARTIAL_DATE: {"date_format", "invalid_value"},
    "upc_format": {"upc_format"},
    "upc_invalid": {"upc_format", "upc_check_digit", "invalid_value"},
    "isrc_format": {"isrc_format"},
    "language_code": {"language_code"},
    UNRECOVERABLE_TEXT: {"unrecoverable_text"},
    ALBUM_IN_TITLE: {"album_in_title"},
    VARIOUS_ARTIST_IN_TITLE: {"artist_in_title"},
    OTHER_VARIANT: set(),
    "album_year_suffix": {"album_year_suffix"},
}.items()}
# Labels no rule or class can derive (typos, other spellings): reported, not in the total.
UNDERIVABLE = frozenset([OTHER_VARIANT])

# The budgets (clean real records and real malformations).
BUDGETS = {"clean_review": 0.05, "clean_changed": 0.005, "swaps_applied": 0,
           "malformed_handled": 0.90}


def budgets_met(headline: Mapping[str, float]) -> bool:
    return (headline["clean_review"] <= BUDGETS["clean_review"]
            and headline["clean_changed"] <= BUDGETS["clean_changed"]
            and headline["swaps_applied"] <= BUDGETS["swaps_applied"]
            and headline["malformed_handled"] >= BUDGETS["malformed_handled"])


def _as_of_precision(day: datetime.date, precision: str | None) -> str:
    if precision == correctors.YEAR:
        return f"{day.year:04d}"
    if precision == correctors.MONTH:
        return f"{day.year:04d}-{day.month:02d}"
    return day.isoformat()


def output_equals_truth(name: str, result: CorrectionResult, truth: Any) -> bool:
    """Whether the policy's typed output of ``name`` is the known right value."""
    out = result.track.get(name)
    if truth is None:
        return out is None
    if out is None:
        return False
    if name == "duration_ms":
        return isinstance(out, int) and abs(out - int(truth)) <= 1000
    if name == "release_date":
        return _as_of_precision(out, result.release_date_precision) == str(truth)
    if name == "language":
        return out == correctors.normalize_language(str(truth))
    if name == "title" and out != truth:
        return _credit_moved(str(truth), out, result.track.get("featured_artists") or ())
    return out == truth


def _credit_moved(truth: str, out: Any, featured: Sequence[str]) -> bool:
    """The truth's title with its featured credit moved into ``featured_artists``: the
    same title re-spelled, as a clean record's featured extraction is not a change and a
    language's truth is compared as its code.

    >>> _credit_moved("It's Over (feat. Malaya) (DS mix)", "It's Over (DS mix)", ["Malaya"])
    True
    >>> _credit_moved("It's Over (feat. Malaya) (DS mix)", "It's Over (DS mix)", [])
    False
    """
    credited = titleparse.parse_title(truth)
    return (credited.title == out and bool(credited.featured_artists)
            and all(step.error_class == titleparse.FEATURED_IN_TITLE for step in credited.steps)
            and set(credited.featured_artists) <= set(featured))


def dataset_name(record: RealRecord) -> str:
    if record.dataset == "musicbrainz":
        return "musicbrainz(support>=2)" if record.support >= 2 else "musicbrainz(singleton)"
    return record.dataset


@dataclass
class RealReport:
    """Counts of one evaluation; ``summary()`` turns them into shares."""

    clean: dict[str, Counter]
    malformed: dict[str, Counter]

    def headline(self) -> dict[str, float]:
        judged = {k: c for k, c in self.clean.items() if not k.endswith("(unlabelled)")}
        records = sum(c["records"] for c in judged.values())
        n = sum(m[f"{k}:n"] for m in self.malformed.values() for k in _labels(m) if _counted(k))
        handled = sum(m[f"{k}:handled"] for m in self.malformed.values() for k in _labels(m)
                      if _counted(k))
        mal_records = sum(m["records"] for m in self.malformed.values())
        return {
            "clean_records": records,
            "clean_changed": _share(sum(c["changed"] for c in judged.values()), records),
            "clean_featured_extraction": _share(
                sum(c["featured_extraction"] for c in judged.values()), records),
            "clean_review": _share(sum(c["review"] for c in judged.values()), records),
            "swaps_applied": sum(c["swaps_applied"] for c in judged.values()),
            "malformed_values": n,
            "malformed_handled": _share(handled, n),
            "malformed_review": _share(sum(m["review"] for m in self.malformed.values()),
                                       mal_records),
        }

    def summary(self) -> dict[str, Any]:
        clean = {}
        for name, c in sorted(self.clean.items()):
            n = c["records"]
            clean[name] = {
                "records": n,
                "changed": _share(c["changed"], n),
                "featured_extraction": _share(c["featured_extraction"], n),
                "review": _share(c["review"], n),
                "swaps_applied": c["swaps_applied"],
                "per_class": {k: _share(v, n) for k, v in sorted(c.items()) if ":" in k},
            }
        malformed = {}
        for name, m in sorted(self.malformed.items()):
            labels = {}
            for k in _labels(m):
                n = m[f"{k}:n"]
                labels[k] = {"n": n, "handled": _share(m[f"{k}:handled"], n),
                             "fixed": _share(m[f"{k}:fixed"], n),
                             "flagged": _share(m[f"{k}:flagged"], n)}
            malformed[name] = {"records": m["records"], "review": _share(m["review"], m["records"]),
                               "labels": labels}
        headline = self.headline()
        return {"headline": headline, "budgets": BUDGETS, "budgets_met": budgets_met(headline),
                "clean": clean, "malformed": malformed}


def _share(k: float, n: float) -> float:
    return k / n if n else 0.0


def _labels(counts: Counter) -> list[str]:
    return sorted({k.rsplit(":", 1)[0] for k in counts if k.endswith(":n")})


def _counted(key: str) -> bool:
    return key.rsplit(".", 1)[-1] not in UNDERIVABLE


Policy = Callable[[RealRecord, RecordScores], CorrectionResult]


def policy_for(thresholds: Thresholds, model_version: str,
               profile: ProfileData | None) -> Policy:
    def run(record: RealRecord, scores: RecordScores) -> CorrectionResult:
        return correct_track(record.track, scores, thresholds=thresholds,
                             model_version=model_version, profile=profile, source=record.source)
    return run


def evaluate_real(records: Sequence[RealRecord], scores: Sequence[RecordScores],
                  policy: Policy) -> RealReport:
    """Run the policy on every record and count (see the module docstring)."""
    clean: dict[str, Counter] = defaultdict(Counter)
    malformed: dict[str, Counter] = defaultdict(Counter)
    for record, score in zip(records, scores, strict=True):
        result = policy(record, score)
        name = dataset_name(record)
        if record.clean:
            c = clean[name if record.dataset in CLEAN_TRUTH else f"{name}(unlabelled)"]
            c["records"] += 1
            changes = [x for x in result.corrections if x["error_class"] not in NOT_A_CHANGE]
            c["changed"] += bool(changes)
            c["featured_extraction"] += any(x["error_class"] == FEATURED for x in result.corrections)
            c["review"] += bool(result.review)
            c["swaps_applied"] += any(x["error_class"] == SWAP_CLASS for x in result.corrections)
            for x in changes:
                c[f"changed:{x['field']}.{x['error_class']}"] += 1
            for x in result.review:
                c[f"review:{x['field']}.{x['error_class']}"] += 1
            continue
        m = malformed[name]
        m["records"] += 1
        m["review"] += bool(result.review)
        for name_, labels in record.labels.items():
            flags = {x["error_class"] for x in result.review if x["field"] == name_}
            for label in labels:
                key = f"{name_}.{label}"
                truth = record.truth.get(name_)
                fixed = name_ in record.truth and output_equals_truth(name_, result, truth)
                if label == PLACEHOLDER:
                    fixed = fixed or (result.track.get(name_) is None and any(
                        x["field"] == name_ and x["error_class"] == PLACEHOLDER
                        for x in result.corrections))
                elif label in (YEAR_ONLY, PARTIAL_DATE):
                    fixed = (result.release_date_precision in (correctors.YEAR, correctors.MONTH)
                             and (truth is None or fixed))
                elif label == "mojibake" and isinstance(truth, str) and "\ufffd" in truth:
                    label = UNRECOVERABLE_TEXT
                flagged = not fixed and bool(flags & RIGHT.get(label, frozenset()))
                m[f"{key}:n"] += 1
                m[f"{key}:fixed"] += fixed
                m[f"{key}:flagged"] += flagged
                m[f"{key}:handled"] += fixed or flagged
    return RealReport(dict(clean), dict(malformed))


def choose_thresholds(records: Sequence[RealRecord], scores: Sequence[RecordScores],
                      model_version: str, profile: ProfileData | None,
                      grid: Iterable[tuple[float, float]]) -> tuple[Thresholds, dict[str, float]]:
    """The (apply, review) pair of ``grid`` that meets the budgets on ``records``
    (the validation split) with the most malformations handled, ties to the
    fewest clean records sent to review; if none meets them, the pair closest
    to meeting them (fewest clean changes and reviews first)."""
    best: tuple[tuple, Thresholds, dict[str, float]] | None = None
    for apply, review in grid:
        thresholds = Thresholds(apply=apply, review=review)
        head = evaluate_real(records, scores, policy_for(thresholds, model_version, profile)).headline()
        met = budgets_met(head)
        rank = ((0, -head["malformed_handled"], head["clean_review"]) if met else
                (1, head["swaps_applied"], max(head["clean_changed"] - BUDGETS["clean_changed"], 0),
                 max(head["clean_review"] - BUDGETS["clean_review"], 0), -head["malformed_handled"]))
        if best is None or rank < best[0]:
            best = (rank, thresholds, head)
    if best is None:
        raise ValueError("empty threshold grid")
    return best[1], best[2]


def format_report(summary: Mapping[str, Any], title: str) -> str:
    """The real-data section as text (``metafix evaluate`` prints it)."""
    head = summary["headline"]
    lines = [f"## {title}",
             f"clean real records: n={head['clean_records']} changed={head['clean_changed']:.2%} "
             f"(budget <= {BUDGETS['clean_changed']:.1%}) "
             f"featured extraction={head['clean_featured_extraction']:.2%} "
             f"review={head['clean_review']:.2%} (budget <= {BUDGETS['clean_review']:.0%}) "
             f"swaps applied={head['swaps_applied']} (budget 0)",
             f"real malformations: n={head['malformed_values']} "
             f"handled={head['malformed_handled']:.1%} (budget >= {BUDGETS['malformed_handled']:.0%}); "
             f"review rate of malformed records={head['malformed_review']:.1%}",
             f"budgets met: {summary['budgets_met']}"]
    for name, c in summary["clean"].items():
        lines.append(f"  clean {name}: n={c['records']} changed={c['changed']:.2%} "
                     f"review={c['review']:.2%} swaps={c['swaps_applied']}")
        top = sorted(c["per_class"].items(), key=lambda kv: -kv[1])[:8]
        lines += [f"      {k:44s} {v:.2%}" for k, v in top]
    for name, m in summary["malformed"].items():
        lines.append(f"  malformed {name}: records={m['records']} review={m['review']:.1%}")
        lines += [f"      {k:44s} n={v['n']:6d} handled={v['handled']:6.1%} fixed={v['fixed']:6.1%} "
                  f"flagged={v['flagged']:6.1%}" for k, v in m["labels"].items()]
    return "\n".join(lines)


# ---------------------------------------------------------------------------- with a model
# Threshold grid searched on the real validation split: (apply, review), review <= apply.
APPLY_GRID = (0.9, 0.95, 0.98, 0.99, 0.995, 0.999)
REVIEW_GRID = (0.5, 0.7, 0.9, 0.95, 0.99)
THRESHOLD_GRID = tuple((a, r) for a in APPLY_GRID for r in REVIEW_GRID if r <= a)


def judged(records: Iterable[RealRecord]) -> list[RealRecord]:
    """The records the budgets are judged on: all but CDDB's unlabelled ones."""
    return [r for r in records if not r.clean or r.dataset in CLEAN_TRUTH]


def replay_profile(records: Iterable[RealRecord]) -> ProfileData:
    """The profile a replay of ``records`` corrects them with.

    ``metafix replay`` without ``--profile`` builds its profile from its input, all of it,
    malformed records included. That is the same as building it from these records.
    Unlike the reference profile, it knows the split's own artists. The split is by
    artist, so the reference profile never does.
    """
    return build_profile((r.source, r.track) for r in records)


def reference_profile(seeds: Iterable[Any], real_train: Iterable[RealRecord]) -> ProfileData:
    """The profile a model ships with: the training seeds and the real train split,
    never the validation or test records it is judged on."""
    from_seeds = ((s.source, s.text) for s in seeds)
    return build_profile(list(from_seeds) + [(r.source, r.track) for r in real_train])


def score(predict: Callable[[list[dict]], list[RecordScores]], records: Sequence[RealRecord],
          batch: int = 2048) -> list[RecordScores]:
    out: list[RecordScores] = []
    for i in range(0, len(records), batch):
        out.extend(predict([r.track for r in records[i:i + batch]]))
    return out
