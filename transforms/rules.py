"""Rules-only baseline: the regex and heuristic detectors a team without a
model would write, one per error class.

They are deliberately plain, and so they fire on legitimate look-alikes: a
stylised "HUMBLE." or "MGMT" is all_caps, "deadmau5" or "bad guy" is
all_lower, "Symphony No. 5 - I. Allegro" by an orchestra is fine but
"Olodum - Alegria Geral" by Olodum is artist_in_title. A swapped title and
artist cannot be seen by a rule at all, so ``swapped`` is always 0.

``detect`` returns the same ``RecordScores`` the model produces, with
confidence 1.0 on a hit, so the decision policy and the evaluation treat the
baseline and the model alike::

    >>> detect({"title": "HUMBLE.", "artist": "Kendrick Lamar"}).fields["title"]
    ('all_caps', 1.0)
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from typing import Any

from transforms.correctors import is_valid_upc
from transforms.fields import CLEAN, GENRES, SCORED_FIELDS
from transforms.policy import RecordScores

Rule = Callable[[str, Mapping[str, Any]], bool]

_MOJIBAKE = re.compile(r"Ã.|Â|â€")
_HTML_ENTITY = re.compile(r"&(?:#[0-9]+|#x[0-9a-f]+|[a-z]+);", re.IGNORECASE)
_FEATURED = re.compile(r"\b(?:feat\.?|ft\.?|featuring)(?:\s|$)", re.IGNORECASE)
_EXPLICIT = re.compile(r"[\(\[]\s*(?:explicit|clean)", re.IGNORECASE)
_TRACK_PREFIX = re.compile(r"^\d{1,2}\s*[-.]\s+")
_ISRC = re.compile(r"[A-Z]{2}[A-Z0-9]{3}\d{7}")
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_INTEGER = re.compile(r"\d+")


def _has_control(value: str, _: Mapping[str, Any]) -> bool:
    return any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value)


def _bad_spacing(value: str, _: Mapping[str, Any]) -> bool:
    return value != value.strip() or "  " in value or "\xa0" in value


def _all_caps(value: str, _: Mapping[str, Any]) -> bool:
    return value.isupper()  # True only if there is at least one cased letter


def _all_lower(value: str, _: Mapping[str, Any]) -> bool:
    return value.islower()


def _artist_in_title(value: str, track: Mapping[str, Any]) -> bool:
    artist = track.get("artist")
    return bool(artist) and value.lower().startswith(str(artist).lower() + " - ")


def _isrc_format(value: str, _: Mapping[str, Any]) -> bool:
    return _ISRC.fullmatch(value) is None and _ISRC.fullmatch(
        value.replace("-", "").replace(" ", "").upper()) is not None


def _isrc_invalid(value: str, _: Mapping[str, Any]) -> bool:
    return _ISRC.fullmatch(value.replace("-", "").replace(" ", "").upper()) is None


def _upc_format(value: str, _: Mapping[str, Any]) -> bool:
    digits = value.replace("-", "").replace(" ", "")
    return digits != value or len(digits) == 11


def _upc_check_digit(value: str, _: Mapping[str, Any]) -> bool:
    return not is_valid_upc(value)


def _matches(pattern: re.Pattern[str]) -> Rule:
    return lambda value, _: pattern.search(value) is not None


# Per field, in the order they are tried: the first hit is the class.
_TEXT_RULES: tuple[tuple[str, Rule], ...] = (
    ("control_chars", _has_control),
    ("mojibake", _matches(_MOJIBAKE)),
    ("html_entity", _matches(_HTML_ENTITY)),
    ("whitespace", _bad_spacing),
)
_CASE_RULES: tuple[tuple[str, Rule], ...] = (
    ("all_caps", _all_caps),
    ("all_lower", _all_lower),
)
RULES: dict[str, tuple[tuple[str, Rule], ...]] = {
    "title": _TEXT_RULES + (
        ("featured_in_title", _matches(_FEATURED)),
        ("explicit_in_title", _matches(_EXPLICIT)),
        ("track_number_prefix", _matches(_TRACK_PREFIX)),
        ("artist_in_title", _artist_in_title),
    ) + _CASE_RULES,
    "artist": _TEXT_RULES + _CASE_RULES,
    "album": _TEXT_RULES + _CASE_RULES,
    "isrc": (("isrc_format", _isrc_format), ("isrc_invalid", _isrc_invalid)),
    "upc": (("upc_format", _upc_format), ("upc_check_digit", _upc_check_digit)),
    "release_date": (("date_format", lambda v, _: _ISO_DATE.fullmatch(v) is None),),
    "duration_ms": (("duration_format", lambda v, _: _INTEGER.fullmatch(v) is None),),
    "genre": (("genre_noncanonical", lambda v, _: v not in GENRES),),
}


def detect_field(name: str, value: str | None, track: Mapping[str, Any]) -> str:
    """The error class the rules see in one field value ("clean" if none)."""
    if value is None or value == "":
        return CLEAN
    for error_class, rule in RULES[name]:
        if rule(value, track):
            return error_class
    return CLEAN


def detect(track: Mapping[str, Any]) -> RecordScores:
    """Score a raw track with the rules: confidence 1.0 on every verdict."""
    return RecordScores(
        fields={spec.name: (detect_field(spec.name, track.get(spec.name), track), 1.0)
                for spec in SCORED_FIELDS},
        swapped=0.0,
    )
