"""The decision policy: from per-field error scores to a corrected, typed track.

Streaming, replay and evaluation all call ``correct_track``; the scores come
from the model (``model/serving.py``) or from the rules baseline
(``transforms/rules.py``), the catalog knowledge from the profile
(``transforms/profile.py``). One record goes through these stages, in order,
each change one correction entry (one audit entry downstream):

1. **Placeholders**: "--", "null", "unk." in any field become null (``placeholder``).
2. **Broken text** (title, artist, album; ``transforms/textdamage.py``), before
   any score: reliable ftfy repair -> ``mojibake`` (confidence 1.0); lost
   characters -> flagged ``unrecoverable_text`` with the raw value, and no other
   fix touches that value. A form the profile knows as official is left alone
   ("k?d" is an artist). The model's own mojibake class is not used: it scored
   the text before the repair.
3. **Missing artist or album in the title**: an empty or "Various" artist and
   a title "Artist - Song" give the artist back when the profile knows that
   artist, and are flagged ``artist_in_title`` otherwise; a placeholder album
   and a title "Song - Album" are flagged ``album_in_title``.
4. **Swap**: only with profile evidence (the title is a known artist whose
   known titles include the delivered artist) and the model's swap score at or
   above review. Without evidence nothing happens, not even a flag.
5. **Title** (``transforms/titleparse.py``): track number, artist, album and
   trailing explicit/featured tags are taken off in that order, each its own
   entry; the conflict rules are ``titleparse.resolve_explicit`` ("[Explicit]"
   beats ``explicit: false``; "(Clean)" against ``true`` is flagged) and
   ``titleparse.merge_featured`` (a credit already in ``featured_artists``
   adds nothing). A title class the model sees at/above apply and the parser
   cannot take out is flagged.
6. **Album year suffix** (``album_year_suffix``): "Album (2003)" loses its
   "(2003)" when the profile knows the record's source appends the year to
   its albums by habit, and the suffix can be the record's release year (it
   names none, or that one). From any other source nothing happens, not even
   a flag: "1989 (Taylor's Version)" and "Live (1979)" are real albums.
7. **Case** (``all_caps``/``all_lower``): never on a form the profile knows as
   official; on an unknown value only when the whole record is in that case
   (``in_case_as_a_whole``: title, artist and album, three different texts) or
   the source's own casing habit is that case (> ``SOURCE_CASING_SHARE``);
   otherwise neither applied nor flagged, because stylisation is per value.
8. **Dates**: a partial date ("2012", "2019-06", "1999-03-00") is typed to its
   first day with ``release_date_precision`` "year"/"month", not flagged; an
   ambiguous numeric date ("5/4/2024") is read with the source's date order
   when the profile is confident, and flagged otherwise.
9. **Durations**: a decimal below 20 ("3.663") is read as minutes when the
   source's own decimals are minutes, and flagged otherwise, never read as
   seconds.
10. **Model classes** for every other field: ``confidence >= thresholds.apply``
   -> the class's corrector rewrites the value; ``review <= confidence <
   apply`` -> kept and flagged; below -> kept.

Whatever the scores say, a value that passes its field's deterministic
validator is never rewritten; a class its corrector cannot fix is flagged with
the corrector's reason; a value that cannot be typed becomes None and is
flagged with the raw value. Corrections and flags come out ordered by
``fields.TRACK_FIELDS``, and within a field in the order they were made.

    >>> scores = RecordScores(fields={"release_date": ("date_format", 0.97)}, swapped=0.01)
    >>> result = correct_track({"title": "Song", "release_date": "17-Mar-08"}, scores,
    ...                        thresholds=Thresholds(), model_version="m1")
    >>> result.track["release_date"], result.release_date_precision
    (datetime.date(2008, 3, 17), 'day')
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms import correctors, titleparse
from transforms.fields import (
    CLEAN,
    ERROR_CLASS,
    FIELD_SPECS,
    INVALID_VALUE,
    LANGUAGE_CODE,
    SCORED_FIELD_NAMES,
    SWAP_CLASS,
    TEXT_FIELDS,
    TRACK_FIELDS,
)
from transforms.profile import (
    DECIMAL_MINUTES_BELOW,
    MINUTES,
    ProfileData,
    album_year_suffix,
    decimal_duration,
    suffix_names_release_year,
)
from transforms.textdamage import MOJIBAKE, UNRECOVERABLE_TEXT, assess_text, may_be_damaged

PLACEHOLDER = "placeholder"
ALBUM_IN_TITLE = titleparse.ALBUM_IN_TITLE
ALBUM_YEAR_SUFFIX = "album_year_suffix"
CASE_CLASSES = frozenset(["all_caps", "all_lower"])
# The classes parse_title decides; the model's score for them is a second opinion.
TITLE_PARSE_CLASSES = frozenset([titleparse.TRACK_NUMBER_PREFIX, titleparse.ARTIST_IN_TITLE,
                                 titleparse.EXPLICIT_IN_TITLE, titleparse.FEATURED_IN_TITLE])
# Texts that stand for "no value". "unknown" and "none" are left out: they are
# also real titles and names.
PLACEHOLDER_TEXTS = frozenset(["--", "---", "-", "null", "unk.", "unk", "n/a"])
# Artists that say "several, see the title" on compilations.
VARIOUS_ARTISTS = frozenset(["various", "various artists", "various artist", "va", "v.a.",
                             "v/a", "varios", "varios artistas"])
# A source shouts (or whispers) by habit when more than this share of its text
# values are in that case: then a value in that case is the feed's, not the artist's.
SOURCE_CASING_SHARE = 0.5


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
    release_date_precision: str | None = None  # "day", "month", "year"; None without a date

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

    def __init__(self, raw: Mapping[str, Any], model_version: str,
                 profile: ProfileData | None, source: str | None) -> None:
        self.values: dict[str, Any] = {name: raw.get(name) for name in TRACK_FIELDS}
        self.values["featured_artists"] = [str(a) for a in raw.get("featured_artists") or []]
        # The artist before any field correction (after a swap), so that
        # artist_in_title also matches a title prefix spelled like the raw artist.
        self.artist_as_delivered: str | None = self.values["artist"]
        # The texts the case gate judges "in that case as a whole" on (set before the
        # case stage: once one value is re-cased, the others must not lose the evidence).
        self.case_texts: list[str] = []
        self.model_version = model_version
        self.profile = profile
        self.source = source
        self.corrections: list[dict[str, Any]] = []
        self.review: list[dict[str, Any]] = []
        # Fields a stage has settled: no later stage nor model class touches them.
        self.settled: set[str] = set()
        self.partial_date: tuple[datetime.date, str] | None = None

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


def _apply_placeholders(record: _Record) -> None:
    for name in ERROR_CLASS[PLACEHOLDER].fields:
        value = record.values[name]
        # The length test first: almost no value is that short (the cost budget).
        if isinstance(value, str) and len(value) <= 8 and value.strip().casefold() in PLACEHOLDER_TEXTS:
            record.correct(name, None, PLACEHOLDER, 1.0)


def _apply_text_damage(record: _Record, field_scores: dict[str, tuple[str, float]]) -> None:
    profile = record.profile
    for name in TEXT_FIELDS:
        value = record.values[name]
        scored = field_scores.get(name)
        if scored is not None and scored[0] == MOJIBAKE:
            field_scores.pop(name)  # the pre-pass below decides mojibake
        if not isinstance(value, str) or not may_be_damaged(value):
            continue  # not even the cache is asked (the cost budget)
        found = assess_text(value)
        if found.error_class is None or (profile is not None and profile.is_official_form(value)):
            continue
        if found.error_class == MOJIBAKE:
            record.correct(name, found.repaired, MOJIBAKE, 1.0)
            # The model scored the broken text; its class says nothing about the repair.
            field_scores.pop(name, None)
        elif found.error_class == UNRECOVERABLE_TEXT:
            record.flag(name, value, UNRECOVERABLE_TEXT, 1.0, found.reason)
            record.settled.add(name)


def _split_artist_title(title: str) -> tuple[str, str] | None:
    for sep in (" - ", " – ", " — "):
        head, found, tail = title.partition(sep)
        if found and head.strip() and tail.strip():
            return head.strip(), tail.strip()
    return None


def _apply_missing_artist(record: _Record) -> None:
    title, artist = record.values["title"], record.values["artist"]
    if _blank(title) or "title" in record.settled or "artist" in record.settled:
        return
    if not (_blank(artist) or artist.strip().casefold() in VARIOUS_ARTISTS):
        return
    parts = _split_artist_title(title)
    if parts is None:
        return
    head, tail = parts
    if record.profile is not None and record.profile.is_known_artist(head):
        record.correct("artist", head, titleparse.ARTIST_IN_TITLE, 1.0)
        record.correct("title", tail, titleparse.ARTIST_IN_TITLE, 1.0)
        record.artist_as_delivered = head
    else:
        record.flag("title", title, titleparse.ARTIST_IN_TITLE, 1.0,
                    f"no artist, and the title may start with one the profile does not know: {head!r}")


def _flag_missing_album(record: _Record) -> None:
    """An album left empty and a title "Song - Something": the album may sit in the title."""
    title = record.values["title"]
    if (not _blank(record.values["album"]) or _blank(title) or "title" in record.settled
            or record.flagged("title") or not any(c["field"] == "album" for c in record.corrections)):
        return
    parts = _split_artist_title(title)
    if parts is not None:
        record.flag("title", title, ALBUM_IN_TITLE, 1.0,
                    f"the album was a placeholder, and the title may end with it: {parts[1]!r}")


def _apply_swap(record: _Record, scores: RecordScores, thresholds: Thresholds,
                field_scores: dict[str, tuple[str, float]]) -> None:
    title, artist = record.values["title"], record.values["artist"]
    confidence = scores.swapped
    if (confidence < thresholds.review or _blank(title) or _blank(artist) or record.profile is None
            or record.settled & {"title", "artist"}
            or not record.profile.swap_evidence(title, artist)):
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


def _typed_explicit(value: Any) -> bool | None:
    if isinstance(value, bool) or value is None:
        return value
    return correctors.parse_explicit(str(value))


def _parse_title(record: _Record, title: str) -> titleparse.TitleParse:
    profile = record.profile
    is_known = profile.is_known_artist if profile is not None else None
    if not titleparse.may_start_with_artist(title):
        # No artist can be taken off: one parse, whichever artist (the cost budget).
        return titleparse.parse_title(title, record.values["artist"], is_known,
                                      album=record.values["album"])
    # The title parse runs before the artist's own fixes: "JAY-Z - Song" must also
    # match an artist delivered as "JAY-Z\u200b" or before a swap.
    artists = [record.values["artist"], record.artist_as_delivered]
    if isinstance(record.values["artist"], str):
        artists.append(" ".join(str(correctors.strip_control_chars(record.values["artist"]).value).split()))
    for artist in dict.fromkeys(artists):
        parsed = titleparse.parse_title(title, artist, is_known, album=record.values["album"])
        if any(step.error_class == titleparse.ARTIST_IN_TITLE for step in parsed.steps):
            break
    return parsed


def _apply_title(record: _Record, scored: tuple[str, float], thresholds: Thresholds) -> None:
    """Every title malformation parse_title finds, one entry each (stage 5)."""
    title = record.values["title"]
    if _blank(title) or "title" in record.settled:
        return
    error_class, confidence = scored
    # Most titles can hold no part at all, whatever the artist: no parse (the cost budget).
    parsed = _parse_title(record, title) if titleparse.may_have_parts(title) else None
    if parsed is not None and parsed.reason:
        record.flag("title", title, titleparse.EXPLICIT_IN_TITLE, 1.0, parsed.reason)
        return
    if parsed is None or not parsed.steps:
        if error_class in TITLE_PARSE_CLASSES and confidence >= thresholds.apply:
            record.flag("title", title, error_class, confidence,
                        "the model sees this class, but no rule can take it out safely")
        return
    for step in parsed.steps:
        record.correct("title", step.after, step.error_class, 1.0)
    merged = titleparse.merge_featured(record.values["featured_artists"], parsed.featured_artists)
    if list(merged) != record.values["featured_artists"]:
        record.correct("featured_artists", list(merged), titleparse.FEATURED_IN_TITLE, 1.0)
    decision = titleparse.resolve_explicit(parsed.explicit, _typed_explicit(record.values["explicit"]))
    if decision.changed:
        record.correct("explicit", decision.value, titleparse.EXPLICIT_IN_TITLE, 1.0)
    elif decision.flag:
        record.flag("explicit", record.values["explicit"], titleparse.EXPLICIT_IN_TITLE, 1.0,
                    decision.rule)
    _fill_from_title(record, "track_number", parsed.track_number,
                     titleparse.TRACK_NUMBER_PREFIX, 1.0, correctors.parse_track_number)


def _apply_album_year_suffix(record: _Record) -> None:
    """Stage 6: take the habitual "(YYYY)" off the album."""
    album, profile = record.values["album"], record.profile
    if (not isinstance(album, str) or "album" in record.settled or profile is None
            or record.source is None):
        return
    suffix = album_year_suffix(album)
    if (suffix is None or not profile.appends_album_year(record.source)
            or not suffix_names_release_year(suffix[1], record.values["release_date"])):
        return
    record.correct("album", suffix[0], ALBUM_YEAR_SUFFIX, 1.0)


def in_case_as_a_whole(texts: Sequence[str], error_class: str) -> bool:
    """A record's title, artist and album all in the case of ``error_class``, and
    three different texts: the delivery shouts (or whispers) as a whole.

    A title and its artist alone are not enough, nor a single whose album repeats its
    title: on the real Spotify tracks, clean by definition, records such as "GUD
    VIBRATIONS" by NGHTMRE on "GUD VIBRATIONS" are the artist's stylisation, and they
    were most of the clean values the case classes changed.

    >>> in_case_as_a_whole(["GUD VIBRATIONS", "NGHTMRE", "GUD VIBRATIONS"], "all_caps")
    False
    >>> in_case_as_a_whole(["VICTIM OF A SYSTEM", "RAT BOY", "GOVERNMENT VACATION"], "all_caps")
    True
    """
    in_case = str.isupper if error_class == "all_caps" else str.islower
    return (len({" ".join(v.casefold().split()) for v in texts}) >= 3
            and all(in_case(v) for v in texts))


def _case_allowed(record: _Record, name: str, error_class: str) -> bool:
    """Stage 7: may a case class touch this value at all?"""
    value = record.values[name]
    profile = record.profile
    if profile is not None and profile.is_official_form(value):
        return False
    if in_case_as_a_whole(record.case_texts, error_class):
        return True
    if profile is None or record.source is None:
        return False
    share = profile.casing_shares(record.source)["upper" if error_class == "all_caps" else "lower"]
    return share > SOURCE_CASING_SHARE


def _apply_date(record: _Record) -> bool:
    """Stage 8; True when the date is settled here and the model is not asked."""
    value = record.values["release_date"]
    if not isinstance(value, str) or _blank(value):
        return False
    if correctors.is_valid_iso_date(value):
        # Most dates; a valid day is never partial (those end in "-00" or lack the day).
        return False
    partial = correctors.parse_partial_date(value)
    if partial is not None:
        record.partial_date = partial
        return True
    day, reason = correctors.parse_date(value)
    if day is not None or not reason.startswith(correctors.AMBIGUOUS_DATE):
        return False
    if record.profile is not None and record.source is not None:
        resolved = record.profile.resolve_date(value, record.source)
        if resolved.date is not None:
            record.correct("release_date", resolved.date.isoformat(), "date_format", 1.0)
            return True
        reason = resolved.reason
    record.flag("release_date", value, "date_format", 1.0, reason)
    return True


def _apply_decimal_duration(record: _Record) -> bool:
    """Stage 9; True when the duration is settled here and the model is not asked."""
    value = record.values["duration_ms"]
    # A decimal has its ".": most durations are plain milliseconds (the cost budget).
    number = decimal_duration(value) if isinstance(value, str) and "." in value else None
    if number is None or number >= DECIMAL_MINUTES_BELOW:
        return False
    unit = (record.profile.duration_unit(record.source)
            if record.profile is not None and record.source is not None else None)
    if unit == MINUTES:
        ms = round(number * 60_000)
        if correctors.is_valid_duration_ms(str(ms)):
            record.correct("duration_ms", str(ms), "duration_format", 1.0)
            return True
    if unit is None:
        record.flag("duration_ms", value, "duration_format", 1.0,
                    f"a decimal below {DECIMAL_MINUTES_BELOW}: minutes or seconds cannot be "
                    f"told, and the source's unit is not known: {value}")
        return True
    return False


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
            record.flag("language", language, LANGUAGE_CODE, 1.0,
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
        "release_date": (record.partial_date[0] if record.partial_date is not None else
                         _type_field(record, "release_date", _parse_iso_date, "an ISO date")),
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
_SCORING_ORDER = SCORED_FIELD_NAMES


def correct_track(raw_track: Mapping[str, Any], scores: RecordScores, *,
                  thresholds: Thresholds, model_version: str,
                  profile: ProfileData | None = None, source: str | None = None) -> CorrectionResult:
    """Decide, correct and type one track (stages in the module docstring).

    ``profile`` and ``source`` (the event's source) bring the catalog knowledge;
    without a profile no swap is made and case classes apply only to records
    that are in that case as a whole. Pure and deterministic.
    """
    record = _Record(raw_track, model_version, profile, source)
    field_scores = {name: tuple(s) for name, s in scores.fields.items()}
    _apply_placeholders(record)
    _apply_text_damage(record, field_scores)
    _apply_missing_artist(record)
    _flag_missing_album(record)
    _apply_swap(record, scores, thresholds, field_scores)
    _apply_title(record, field_scores.get("title", (CLEAN, 0.0)), thresholds)
    _apply_album_year_suffix(record)
    # After the title parse: "06 - SONG (feat. X)" shouts once its tags are off.
    # Only a case class reads them (the cost budget: most records have none).
    if any(scored[0] in CASE_CLASSES for scored in field_scores.values()):
        record.case_texts = [v for v in (record.values[n] for n in TEXT_FIELDS)
                             if isinstance(v, str) and v.strip()]
    if _apply_date(record):
        record.settled.add("release_date")
    if _apply_decimal_duration(record):
        record.settled.add("duration_ms")
    for name in _SCORING_ORDER:
        scored = field_scores.get(name)
        if scored is None or scored[0] == CLEAN:
            continue  # most fields of most records (the cost budget)
        if scored[0] not in FIELD_SPECS[name].classes:
            raise ValueError(f"{scored[0]!r} is not an error class of field {name!r}")
        if name == "title" and scored[0] in TITLE_PARSE_CLASSES:
            continue  # decided by the title parse (stage 5)
        if name in record.settled:
            continue
        if scored[0] in CASE_CLASSES and not _blank(record.values[name]) \
                and not _case_allowed(record, name, scored[0]):
            continue
        _apply_field(record, name, scored, thresholds)
    track = _typed_track(record)
    precision = None
    if record.partial_date is not None:
        precision = record.partial_date[1]
    elif track["release_date"] is not None:
        precision = correctors.DAY
    return CorrectionResult(
        track=track,
        corrections=sorted(record.corrections, key=lambda c: _FIELD_ORDER[c["field"]]),
        review=sorted(record.review, key=lambda f: _FIELD_ORDER[f["field"]]),
        release_date_precision=precision,
    )
