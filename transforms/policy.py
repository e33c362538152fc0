"""The decision policy: from per-field error scores to a corrected, typed track.

Streaming, replay and evaluation all call ``correct_track``; the scores come
from the model (``model/serving.py``) or from the rules baseline
(``transforms/rules.py``). For each scored field the predicted class and its
probability decide:

* ``confidence >= thresholds.apply``: the class's corrector rewrites the value,
  and a correction entry records the change;
* ``thresholds.review <= confidence < apply``: the value is kept as delivered
  and flagged for a person;
* below ``review``: the value is kept.

On top of that, and whatever the scores say:

* a value that passes its field's deterministic validator is never rewritten
  (and not flagged);
* a class its corrector cannot fix (invalid ISRC, wrong UPC check digit,
  ambiguous date, unknown genre) is flagged, with the corrector's reason;
* every typed field is typed (date, integers, booleans). A value that cannot
  be typed becomes None in the track and is flagged with the raw value, and a
  value that fails its validator and was not corrected is flagged, so nothing
  is lost silently.

Only the detected class is applied: no "always safe" clean-up runs on the
side, so every change in the output is explained by one correction entry.
Corrections and flags come out ordered by ``fields.TRACK_FIELDS``.

    >>> scores = RecordScores(fields={"release_date": ("date_format", 0.97)}, swapped=0.01)
    >>> result = correct_track({"title": "Song", "release_date": "17-Mar-08"}, scores,
    ...                        thresholds=Thresholds(), model_version="m1")
    >>> result.track["release_date"]
    datetime.date(2008, 3, 17)
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from transforms import correctors
from transforms.fields import (
    CLEAN,
    FIELD_SPECS,
    INVALID_VALUE,
    LANGUAGE_CODE,
    SCORED_FIELD_NAMES,
    SWAP_CLASS,
    TRACK_FIELDS,
)


@dataclass(frozen=True)
class RecordScores:
    """What the model (or the rules) say about one track.

    ``fields`` maps a scored field name to its argmax error class and that
    class's probability; a field left out counts as clean. ``swapped`` is the
    probability that title and artist are exchanged.
    """

    fields: Mapping[str, tuple[str, float]]
    swapped: float = 0.0


@dataclass(frozen=True)
class Thresholds:
    apply: float = 0.9  # at/above: correct
    review: float = 0.5  # between review and apply: flag for a person; below: leave alone

    def __post_init__(self) -> None:
        if not 0.0 <= self.review <= self.apply <= 1.0:
            raise ValueError(f"need 0 <= review <= apply <= 1, got {self}")


@dataclass(frozen=True)
class CorrectionResult:
    """The typed canonical track (the CorrectedRecord ``track`` record), the
    changes made (``Correction`` records) and the flags (``ReviewFlag`` records).
    """

    track: dict[str, Any]
    corrections: list[dict[str, Any]] = field(default_factory=list)
    review: list[dict[str, Any]] = field(default_factory=list)

    @property
    def review_fields(self) -> frozenset[str]:
        return frozenset(flag["field"] for flag in self.review)


LOW_CONFIDENCE = "confidence below the apply threshold"


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _as_text(value: Any) -> str | None:
    """The string form a Correction or ReviewFlag carries."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return json.dumps(list(value), ensure_ascii=False)
    return str(value)


class _Record:
    """Working state of one track while the policy runs."""

    def __init__(self, raw: Mapping[str, Any], model_version: str) -> None:
        self.values: dict[str, Any] = {name: raw.get(name) for name in TRACK_FIELDS}
        self.values["featured_artists"] = [str(a) for a in raw.get("featured_artists") or []]
        # The artist before any field correction (after a swap), so that
        # artist_in_title also matches a title prefix spelled like the raw artist.
        self.artist_as_delivered: str | None = self.values["artist"]
        self.model_version = model_version
        self.corrections: list[dict[str, Any]] = []
        self.review: list[dict[str, Any]] = []

    def correct(self, name: str, after: Any, error_class: str, confidence: float) -> None:
        before = self.values[name]
        self.values[name] = after
        self.corrections.append({
            "field": name,
            "before": _as_text(before),
            "after": _as_text(after),
            "error_class": error_class,
            "confidence": float(confidence),
            "model_version": self.model_version,
        })

    def flag(self, name: str, value: Any, error_class: str, confidence: float,
             reason: str) -> None:
        self.review.append({
            "field": name,
            "value": _as_text(value),
            "error_class": error_class,
            "confidence": float(confidence),
            "reason": reason,
        })

    def flagged(self, name: str) -> bool:
        return any(flag["field"] == name for flag in self.review)


def _apply_swap(record: _Record, scores: RecordScores, thresholds: Thresholds,
                field_scores: dict[str, tuple[str, float]]) -> None:
    title, artist = record.values["title"], record.values["artist"]
    confidence = scores.swapped
    if confidence < thresholds.review or _blank(title) or _blank(artist):
        return
    if confidence < thresholds.apply:
        record.flag("title", title, SWAP_CLASS, confidence, LOW_CONFIDENCE)
        record.flag("artist", artist, SWAP_CLASS, confidence, LOW_CONFIDENCE)
        return
    new_title, new_artist = correctors.swap_title_artist(title, artist)
    record.correct("title", new_title, SWAP_CLASS, confidence)
    record.correct("artist", new_artist, SWAP_CLASS, confidence)
    record.artist_as_delivered = new_artist
    # The scores were computed on the fields as delivered: they follow the values.
    moved_to_artist = field_scores.pop("title", (CLEAN, 0.0))
    moved_to_title = field_scores.pop("artist", (CLEAN, 0.0))
    field_scores["title"] = moved_to_title
    if moved_to_artist[0] in FIELD_SPECS["artist"].classes:
        field_scores["artist"] = moved_to_artist
    elif moved_to_artist[1] >= thresholds.review:
        record.flag("artist", new_artist, moved_to_artist[0], moved_to_artist[1],
                    "title class detected on a value that the swap moved to artist")


def _merge_featured(record: _Record, names: tuple[str, ...], error_class: str,
                    confidence: float) -> None:
    current = record.values["featured_artists"]
    known = {n.casefold() for n in current}
    added = [n for n in names if n.casefold() not in known]
    if added:
        record.correct("featured_artists", current + added, error_class, confidence)


def _fill_from_title(record: _Record, name: str, found: Any, error_class: str,
                     confidence: float, parse: Any) -> None:
    """Set explicit / track_number from the title, unless the field disagrees."""
    if found is None:
        return
    delivered = record.values[name]
    typed = None if _blank(delivered) else parse(delivered)
    if typed is None:
        record.correct(name, found, error_class, confidence)
    elif typed != found:
        record.flag(name, delivered, error_class, confidence,
                    f"the title says {_as_text(found)}, the field says {delivered}")


def _apply_field(record: _Record, name: str, scored: tuple[str, float],
                 thresholds: Thresholds) -> None:
    error_class, confidence = scored
    value = record.values[name]
    if error_class == CLEAN or confidence < thresholds.review or _blank(value):
        return
    if error_class not in FIELD_SPECS[name].classes:
        raise ValueError(f"{error_class!r} is not an error class of field {name!r}")
    validator = correctors.VALIDATORS.get(name)
    if validator is not None and validator(value):
        return  # a valid value is never rewritten, whatever the model says
    if confidence < thresholds.apply:
        record.flag(name, value, error_class, confidence, LOW_CONFIDENCE)
        return
    fix = correctors.correct(error_class, value, record.values,
                             artists=(record.artist_as_delivered,))
    if fix.value is None:
        record.flag(name, value, error_class, confidence, fix.reason or "cannot correct")
        return
    if validator is not None and not validator(fix.value):
        record.flag(name, value, error_class, confidence,
                    f"the correction {fix.value!r} is not a valid value")
        return
    if fix.value != value:
        record.correct(name, fix.value, error_class, confidence)
    if fix.featured_artists:
        _merge_featured(record, fix.featured_artists, error_class, confidence)
    _fill_from_title(record, "explicit", fix.explicit, error_class, confidence,
                     correctors.parse_explicit)
    _fill_from_title(record, "track_number", fix.track_number, error_class, confidence,
                     correctors.parse_track_number)


def _type_field(record: _Record, name: str, parse: Any, what: str) -> Any:
    """Typed value of a field; None plus a flag when the text cannot be typed."""
    value = record.values[name]
    if isinstance(value, bool | int) or value is None:
        return value
    if _blank(value):
        return None
    typed = parse(value)
    if typed is None and not record.flagged(name):
        record.flag(name, value, INVALID_VALUE, 1.0, f"not {what}: {value}")
    return typed


def _parse_iso_date(value: str) -> datetime.date | None:
    return datetime.date.fromisoformat(value) if correctors.is_valid_iso_date(value) else None


def _parse_duration(value: str) -> int | None:
    return int(value) if correctors.is_valid_duration_ms(value) else None


def _typed_track(record: _Record) -> dict[str, Any]:
    values = record.values
    for name in ("isrc", "upc", "genre"):
        value = values[name]
        if _blank(value):
            values[name] = None
        elif not correctors.VALIDATORS[name](value) and not record.flagged(name):
            record.flag(name, value, INVALID_VALUE, 1.0, f"not a valid {name}: {value}")
    language = values["language"]
    if not _blank(language):
        code = correctors.normalize_language(language)
        if code is None:
            record.flag("language", language, INVALID_VALUE, 1.0,
                        f"not a recognised language tag: {language}")
        elif code != language:
            record.correct("language", code, LANGUAGE_CODE, 1.0)
    return {
        "title": values["title"],
        "artist": values["artist"],
        "featured_artists": list(values["featured_artists"]),
        "album": values["album"],
        "isrc": values["isrc"],
        "upc": values["upc"],
        "release_date": _type_field(record, "release_date", _parse_iso_date, "an ISO date"),
        "duration_ms": _type_field(record, "duration_ms", _parse_duration,
                                   "a duration in milliseconds"),
        "genre": values["genre"],
        "explicit": _type_field(record, "explicit", correctors.parse_explicit,
                                "an explicit flag"),
        "track_number": _type_field(record, "track_number", correctors.parse_track_number,
                                    "a track number"),
        "language": None if _blank(language) else values["language"],
    }


_FIELD_ORDER = {name: i for i, name in enumerate(TRACK_FIELDS)}
# Title last: artist_in_title compares against the corrected artist, and the
# title's correctors fill fields that are typed afterwards.
_SCORING_ORDER = tuple(n for n in SCORED_FIELD_NAMES if n != "title") + ("title",)


def correct_track(raw_track: Mapping[str, Any], scores: RecordScores, *,
                  thresholds: Thresholds, model_version: str) -> CorrectionResult:
    """Decide, correct and type one track. Pure and deterministic."""
    record = _Record(raw_track, model_version)
    field_scores = {name: tuple(s) for name, s in scores.fields.items()}
    _apply_swap(record, scores, thresholds, field_scores)
    for name in _SCORING_ORDER:
        _apply_field(record, name, field_scores.get(name, (CLEAN, 0.0)), thresholds)
    track = _typed_track(record)
    return CorrectionResult(
        track=track,
        corrections=sorted(record.corrections, key=lambda c: _FIELD_ORDER[c["field"]]),
        review=sorted(record.review, key=lambda f: _FIELD_ORDER[f["field"]]),
    )
