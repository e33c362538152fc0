"""Deterministic validators, and one corrector per error class.

The model only says which error class a field value has. The corrector for
that class then produces the canonical value, or says why it cannot, in which
case the value goes to a person. Every corrector here is a pure function that

* returns its input unchanged when there is nothing to fix,
* is idempotent: correcting a corrected value changes nothing, and
* never turns a value that passes its field's validator (``VALIDATORS``)
  into a different value.

The decision policy (``transforms/policy.py``) picks the corrector through
``correct(error_class, value, track)``::

    >>> correct("date_format", "March 17, 2008").value
    '2008-03-17'
    >>> correct("date_format", "03/04/2008").reason
    'ambiguous day and month: 03/04/2008'
    >>> correct("featured_in_title", "Empire State of Mind (feat. Alicia Keys)").featured_artists
    ('Alicia Keys',)

The small typing helpers for the fields the model does not score
(``parse_explicit``, ``parse_track_number``, ``normalize_language``) live here
too, so that every value-level rule is in one tested place.
"""

from __future__ import annotations

import datetime
import functools
import html
import re
import unicodedata
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import ftfy
import langcodes
from dateutil import parser as dateutil_parser
from stdnum import ean, isrc

from transforms.fields import GENRE_SYNONYMS, GENRES


@dataclass(frozen=True)
class Fix:
    """What a corrector made of one value.

    ``value`` is the canonical value, or None when the corrector cannot produce
    one; ``reason`` then says why, for the review flag. Title correctors also
    return what they took out of the title: featured artists, the explicit flag
    or the track number.
    """

    value: str | None
    reason: str | None = None
    featured_artists: tuple[str, ...] = ()
    explicit: bool | None = None
    track_number: int | None = None


def _cannot(reason: str) -> Fix:
    return Fix(value=None, reason=reason)


# ---------------------------------------------------------------------------
# Validators: a value that passes one of these is canonical for its field.

# A track is at least a second long: every plain integer below that is read
# as seconds, which is what feeds that send seconds mean (no track is < 1 s).
MIN_DURATION_MS = 1_000
MAX_DURATION_MS = 10 * 3600 * 1000

_ASCII_DIGITS = re.compile(r"[0-9]+")
_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_PLAIN_MS = re.compile(r"[1-9][0-9]*")


# Cached by value: stdnum's checks are pure and dominate a validator's cost, a
# record's code is checked by detection, corrector and typing alike, and codes
# repeat across a catalog's events. Bounded so a long-running worker stays small.
_VALIDATOR_CACHE_SIZE = 65536


@functools.lru_cache(maxsize=_VALIDATOR_CACHE_SIZE)
def is_valid_isrc(value: str) -> bool:
    """An ISRC in its 12-character compact form with a known country code."""
    return value == isrc.compact(value) and isrc.is_valid(value)


@functools.lru_cache(maxsize=_VALIDATOR_CACHE_SIZE)
def is_valid_upc(value: str) -> bool:
    """A 12-digit UPC-A or 13-digit EAN-13 with a correct check digit."""
    return (_ASCII_DIGITS.fullmatch(value) is not None and len(value) in (12, 13)
            and ean.is_valid(value))


# Cached as the codes are: a release date is shared by an album's tracks, and each record's
# date is checked by the date stage and again when the track is typed.
@functools.lru_cache(maxsize=_VALIDATOR_CACHE_SIZE)
def is_valid_iso_date(value: str) -> bool:
    """A calendar date written YYYY-MM-DD."""
    if _ISO_DATE.fullmatch(value) is None:
        return False
    try:
        datetime.date.fromisoformat(value)
    except ValueError:
        return False
    return True


def is_valid_duration_ms(value: str) -> bool:
    """A plain integer number of milliseconds of a plausible track length."""
    return (_PLAIN_MS.fullmatch(value) is not None
            and MIN_DURATION_MS <= int(value) <= MAX_DURATION_MS)


def is_valid_genre(value: str) -> bool:
    """A label of the controlled vocabulary, spelled exactly."""
    return value in GENRES


# Fields with a deterministic validator. Text fields have none: whether
# "MGMT" is shouted or a band's name is exactly what the model is for.
VALIDATORS: dict[str, Callable[[str], bool]] = {
    "isrc": is_valid_isrc,
    "upc": is_valid_upc,
    "release_date": is_valid_iso_date,
    "duration_ms": is_valid_duration_ms,
    "genre": is_valid_genre,
}


# ---------------------------------------------------------------------------
# Text classes.

def fix_mojibake(value: str) -> Fix:
    """Undo UTF-8 read as cp1252/latin-1, once or twice ("CafÃ©" -> "Café").

    Only ftfy's encoding repair runs: its other fixes (quote uncurling, HTML,
    width, ligatures) would change values that are not mojibake. It repeats
    until nothing changes so that the corrector is idempotent.
    """
    fixed = value
    for _ in range(4):
        again = ftfy.fix_encoding(fixed)
        if again == fixed:
            break
        fixed = again
    return Fix(fixed)


def unescape_html(value: str) -> Fix:
    """Decode HTML entities ("&amp;", "&#39;"), also when escaped twice."""
    fixed = value
    while True:  # each pass that changes anything makes the text shorter
        again = html.unescape(fixed)
        if again == fixed:
            return Fix(fixed)
        fixed = again


# Control characters that stand for a gap between words become a space; the
# rest (NUL, ESC, zero-width and bidi marks, BOM, soft hyphen...) go.
_SPACE_CONTROLS = frozenset("\t\n\r\x0b\x0c")


def strip_control_chars(value: str) -> Fix:
    """Remove control and format characters (Unicode Cc and Cf)."""
    if value.isprintable():
        # No Cc or Cf character is printable: nearly every value stops here (the cost budget).
        return Fix(value)
    kept = []
    for ch in value:
        if ch in _SPACE_CONTROLS:
            kept.append(" ")
        elif unicodedata.category(ch) not in ("Cc", "Cf"):
            kept.append(ch)
    return Fix("".join(kept))


def normalize_whitespace(value: str) -> Fix:
    """Strip the ends and collapse runs of any Unicode space (NBSP too) to one."""
    return Fix(" ".join(value.split()))


# Style-guide title case. Small words stay lower case inside a title; the
# first and last word, and the first word inside or after brackets, after ":"
# or after a dash, are capitalised.
_SMALL_WORDS = frozenset(
    "a an and as at but by for in nor of on or the to v. via vs vs. 'n' n'".split()
)
_FEATURE_WORDS = frozenset(["feat.", "feat", "ft.", "ft", "featuring"])
# Upper-case words that are not ordinary words in any catalog language we see.
_ACRONYMS = frozenset(
    "aka atm bbc cd cia dj dmc dna dvd ep fbi fm hiv kgb lp mc mtv nasa nyc "
    "r&b tv ufo uk usa ussr vip".split()
)
_ROMAN = re.compile(r"(x{0,3})(ix|iv|v?i{0,3})")
_DOTTED_INITIALS = re.compile(r"(?:[^\W\d_]\.)+[^\W\d_]?")
_WORD_SPLIT = re.compile(r"(\s+)")
_PART_SPLIT = re.compile(r"([-/])")
_OPENERS = "([{\"'“‘¿¡"
_CLOSERS = ")]}\"'”’.,!?;:"


def _is_roman(word: str) -> bool:
    """I to XXXIX: the numerals titles use ("Part II", "Vol. XII")."""
    return word != "" and _ROMAN.fullmatch(word) is not None


def _upper_char(ch: str) -> str:
    # Keep characters whose upper case is not one character that lowers back
    # to itself ("ß" -> "SS", "ı" -> "I"): the function then depends only on
    # the lower-cased input, which is what makes it idempotent.
    up = ch.upper()
    return up if len(up) == 1 and up.lower() == ch else ch


def _capitalise(word: str) -> str:
    """Upper-case the first letter of a lower-case word, unless a digit comes first."""
    for i, ch in enumerate(word):
        if ch.isalpha():
            return word[:i] + _upper_char(ch) + word[i + 1:]
        if ch.isdigit():  # "2nd", "80s", "24k": the letters stay lower case
            return word
    return word


def _case_part(part: str, *, small_ok: bool) -> str:
    """Case one hyphen- or slash-separated part of a lower-cased word."""
    core = part.strip(_OPENERS + _CLOSERS)
    if small_ok and (part in _SMALL_WORDS or core in _SMALL_WORDS):
        return part
    if core in _ACRONYMS or _is_roman(core) or _DOTTED_INITIALS.fullmatch(core):
        return part.replace(core, "".join(_upper_char(c) for c in core), 1)
    if core.startswith(("mc", "o'")) and len(core) > 3 and core[2].isalpha():
        # McCartney, O'Brien
        head = part.index(core[0])
        return (part[:head] + _upper_char(core[0]) + core[1] + _upper_char(core[2])
                + part[head + 3:])
    return _capitalise(part)


def title_case(value: str) -> str:
    """Title-case ``value`` the way a catalog style guide writes it.

    >>> title_case("DON'T STOP ME NOW (LIVE AT THE RAINBOW)")
    "Don't Stop Me Now (Live at the Rainbow)"
    >>> title_case("symphony no. ii in the dark feat. dj khaled")
    'Symphony No. II in the Dark feat. DJ Khaled'
    """
    tokens = _WORD_SPLIT.split(value.lower())
    word_positions = [i for i, t in enumerate(tokens) if t and not t.isspace()]
    out = list(tokens)
    force_next = True  # the first word is capitalised
    for n, i in enumerate(word_positions):
        word = tokens[i]
        is_last = n == len(word_positions) - 1
        force = force_next or is_last or word[0] in "([{"
        # A subtitle, or the title after a leading "(I Can't Get No)", starts anew.
        force_next = word.endswith((":", ")", "]")) or word in ("-", "–", "—")
        if word in _FEATURE_WORDS or word.lstrip("([") in _FEATURE_WORDS:
            continue  # "feat." is written lower case, its brackets kept
        parts = _PART_SPLIT.split(word)
        cased = []
        for k, part in enumerate(parts):
            if part in ("-", "/"):
                cased.append(part)
                continue
            cased.append(_case_part(part, small_ok=not (force and k == 0)))
        out[i] = "".join(cased)
    return "".join(out)


def fix_case(value: str) -> Fix:
    """Corrector for all_caps and all_lower: style-guide title case."""
    return Fix(title_case(value))


# ---------------------------------------------------------------------------
# Title-only classes.

_FEAT = r"(?:feat\.?|ft\.?|featuring)"
_FEAT_BRACKETED = re.compile(rf"\s*[\(\[]\s*{_FEAT}\s+(?P<names>[^\)\]]+?)\s*[\)\]]",
                             re.IGNORECASE)
_FEAT_TRAILING = re.compile(rf"\s+{_FEAT}\s+(?P<names>.+?)\s*$", re.IGNORECASE)
_NAME_SEPARATORS = re.compile(r"\s*(?:,|&|\band\b)\s*", re.IGNORECASE)


def _split_names(names: str) -> list[str]:
    return [n for n in _NAME_SEPARATORS.split(names) if n]


def strip_featured(title: str) -> Fix:
    """Take "(feat. X)", "[ft. X & Y]", " featuring X" out of a title.

    The names are split on ",", "&" and "and" and returned as featured artists.
    """
    names: list[str] = []

    def take(match: re.Match[str]) -> str:
        names.extend(_split_names(match.group("names")))
        return ""

    rest = _FEAT_BRACKETED.sub(take, title)
    rest = _FEAT_TRAILING.sub(take, rest)
    if not names:
        return Fix(title)
    if not rest.strip():
        return _cannot("the title is only a featured-artist credit")
    return Fix(rest, featured_artists=tuple(names))


_EXPLICIT_MARKER = re.compile(
    r"\s*[\(\[]\s*(?P<kind>explicit|clean|edited)(?:\s+(?:album\s+)?version)?\s*[\)\]]",
    re.IGNORECASE,
)


def strip_explicit_marker(title: str) -> Fix:
    """Take "[Explicit]", "(Clean Version)", "(Edited)" out of a title.

    The marker becomes the explicit flag: True for explicit, False for a clean
    or edited version.
    """
    kinds = {m.group("kind").lower() for m in _EXPLICIT_MARKER.finditer(title)}
    if not kinds:
        return Fix(title)
    if "explicit" in kinds and len(kinds) > 1:
        return _cannot("the title says both explicit and clean")
    rest = _EXPLICIT_MARKER.sub("", title)
    if not rest.strip():
        return _cannot("the title is only an explicit/clean marker")
    return Fix(rest, explicit="explicit" in kinds)


# "01 - Song", "1 - Song", "1. Song", "01. Song" and "01 Song". A number that
# is not zero-padded and followed by a plain space ("7 Years", "99
# Luftballons") is left alone: as a title it is far more often real.
_TRACK_PREFIX = re.compile(
    r"(?P<n>[0-9]{1,3})(?:\s+[-–]\s*|\s*[-–]\s+|\.\s+)(?P<rest>\S.*)"
    r"|(?P<padded>0[0-9])\s+(?P<padded_rest>\S.*)",
    re.DOTALL,
)


def _match_track_prefix(title: str) -> tuple[int, str] | None:
    m = _TRACK_PREFIX.fullmatch(title)
    if m is None:
        return None
    if m.group("n") is not None:
        return int(m.group("n")), m.group("rest")
    return int(m.group("padded")), m.group("padded_rest")


def strip_track_number(title: str) -> Fix:
    """Take a leading track number ("01 - ", "1. ", "01 ") out of a title."""
    found = _match_track_prefix(title)
    if found is None:
        return Fix(title)
    number, rest = found
    if _match_track_prefix(rest) is not None:
        return _cannot("the title starts with more than one number prefix")
    return Fix(rest, track_number=number if number > 0 else None)


_TITLE_SEPARATORS = (" - ", " – ", " — ")


def _strip_prefix(title: str, prefix: str) -> str | None:
    head = title[:len(prefix)]
    return title[len(prefix):] if head.casefold() == prefix.casefold() else None


def strip_artist_prefix(title: str, *artists: str | None) -> Fix:
    """Turn "Artist - Song" into "Song" when Artist is the track's artist.

    The artist is compared without regard to case; several spellings of the
    artist may be given (as delivered and as corrected).
    """
    names = [a.strip() for a in artists if a and a.strip()]
    if not names:
        return _cannot("no artist to compare the title with")
    for name in names:
        for sep in _TITLE_SEPARATORS:
            rest = _strip_prefix(title, name + sep)
            if rest is None:
                continue
            if not rest.strip():
                return _cannot("the title is only the artist's name")
            if any(_strip_prefix(rest, n + s) is not None
                   for n in names for s in _TITLE_SEPARATORS):
                return _cannot("the title repeats the artist prefix")
            return Fix(rest)
    return Fix(title)


def swap_title_artist(title: str | None, artist: str | None) -> tuple[str | None, str | None]:
    """Record-level corrector: the title and artist were exchanged.

    Unlike the field correctors this one is its own inverse, not idempotent:
    the policy applies it at most once per record.
    """
    return artist, title


# ---------------------------------------------------------------------------
# Identifier classes.

def compact_isrc(value: str) -> Fix:
    """"US-S1Z-99-00001", "us s1z 99 00001" -> "USS1Z9900001".

    Only a format problem if the compact form is a valid ISRC; anything else
    needs a person.
    """
    compact = isrc.compact(value)
    if is_valid_isrc(compact):
        return Fix(compact)
    return _cannot("not a valid ISRC even without separators")


def keep_valid_isrc(value: str) -> Fix:
    """isrc_invalid: a wrong ISRC cannot be derived, it must be looked up."""
    if is_valid_isrc(value):
        return Fix(value)
    return _cannot("invalid ISRC (length, characters or country code)")


def compact_upc(value: str) -> Fix:
    """Strip spaces and hyphens; restore a dropped leading zero.

    An 11-digit code becomes a UPC-A only if "0" + code has a correct check
    digit, so that a random 11-digit number is not turned into a code.
    """
    digits = ean.compact(value)
    if _ASCII_DIGITS.fullmatch(digits) is None:
        return _cannot("not a UPC: characters other than digits")
    if is_valid_upc(digits):
        return Fix(digits)
    if len(digits) == 11 and is_valid_upc("0" + digits):
        return Fix("0" + digits)
    return _cannot("not a valid UPC even without separators")


def keep_valid_upc(value: str) -> Fix:
    """upc_check_digit: the wrong digit could be any of them; a person decides."""
    if is_valid_upc(value):
        return Fix(value)
    return _cannot("UPC check digit does not match")


# ---------------------------------------------------------------------------
# Dates and durations.

# Two-digit years: 00-29 are 2000-2029, 30-99 are 1930-1999. A fixed pivot
# (not "within 50 years of today", as dateutil does) keeps the corrector
# deterministic from one year to the next.
TWO_DIGIT_YEAR_PIVOT = 30

_DATE_YMD = re.compile(r"([0-9]{4})[-/.]([0-9]{1,2})[-/.]([0-9]{1,2})")
_DATE_COMPACT = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})")
_DATE_NUMERIC = re.compile(r"([0-9]{1,2})[-/.]([0-9]{1,2})[-/.]([0-9]{4}|[0-9]{2})")
_DATE_DAY_MONTH = re.compile(
    r"([0-9]{1,2})(?:st|nd|rd|th)?[-\s.]+([^\W\d_]+)\.?[-\s.,]+([0-9]{4}|[0-9]{2})",
    re.IGNORECASE,
)
_DATE_MONTH_DAY = re.compile(
    r"([^\W\d_]+)\.?[-\s]+([0-9]{1,2})(?:st|nd|rd|th)?,?[-\s]+([0-9]{4}|[0-9]{2})",
    re.IGNORECASE,
)
_DATE_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}.*")
_MONTH_NAMES = dateutil_parser.parserinfo()


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < TWO_DIGIT_YEAR_PIVOT else 1900
    return year


def _date(year: int, month: int, day: int, text: str) -> tuple[datetime.date | None, str]:
    try:
        return datetime.date(year, month, day), ""
    except ValueError:
        return None, f"not a calendar date: {text}"


AMBIGUOUS_DATE = "ambiguous day and month"

# Release-date precisions (the CorrectedRecord's ``release_date_precision``).
DAY, MONTH, YEAR = "day", "month", "year"
_PARTIAL_YEAR = re.compile(r"([0-9]{4})(?:-00(?:-00)?)?")
_PARTIAL_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})(?:-00)?")
_ABBREVIATED_YEAR = re.compile(r"['’]([0-9]{2})")


def parse_partial_date(value: str) -> tuple[datetime.date, str] | None:
    """A date known to the year or the month: its first day and its precision.

    Catalogs hold such dates on purpose ("2012", "2019-06", "1999-03-00" with
    an unknown day, "'75"); they are a precision, not an error, so they are
    typed, not flagged. A bare two-digit number is not read as a year.

    >>> parse_partial_date("2019-06"), parse_partial_date("'75")
    ((datetime.date(2019, 6, 1), 'month'), (datetime.date(1975, 1, 1), 'year'))
    >>> parse_partial_date("1999-03-00"), parse_partial_date("75"), parse_partial_date("2019-13")
    ((datetime.date(1999, 3, 1), 'month'), None, None)
    """
    text = value.strip()
    if m := _PARTIAL_YEAR.fullmatch(text) or _ABBREVIATED_YEAR.fullmatch(text):
        year = _year(m.group(1))
        return (datetime.date(year, 1, 1), YEAR) if year >= 1000 else None
    if (m := _PARTIAL_MONTH.fullmatch(text)) and 1 <= int(m.group(2)) <= 12 and int(m.group(1)) >= 1000:
        return datetime.date(int(m.group(1)), int(m.group(2)), 1), MONTH
    return None


def parse_date(value: str) -> tuple[datetime.date | None, str]:
    """Read a release date in the forms feeds use; (date, "") or (None, reason).

    Numeric day/month orders are only read when they cannot be mixed up: a
    part above 12 is the day, equal parts are the same either way. "03/04/2008"
    could be March or April and is not guessed.
    """
    text = value.strip()
    if m := _DATE_YMD.fullmatch(text) or _DATE_COMPACT.fullmatch(text):
        return _date(int(m.group(1)), int(m.group(2)), int(m.group(3)), text)
    if _DATE_TIMESTAMP.fullmatch(text):
        try:
            return dateutil_parser.isoparse(text).date(), ""
        except ValueError:
            return None, f"not a calendar date: {text}"
    if m := _DATE_NUMERIC.fullmatch(text):
        a, b, year = int(m.group(1)), int(m.group(2)), _year(m.group(3))
        if a > 12 >= b:
            return _date(year, b, a, text)
        if b > 12 >= a:
            return _date(year, a, b, text)
        if a == b:
            return _date(year, a, a, text)
        if a <= 12 and b <= 12:
            return None, f"{AMBIGUOUS_DATE}: {text}"
        return None, f"not a calendar date: {text}"
    for pattern, day_group, month_group in ((_DATE_DAY_MONTH, 1, 2), (_DATE_MONTH_DAY, 2, 1)):
        if m := pattern.fullmatch(text):
            month = _MONTH_NAMES.month(m.group(month_group))
            if month is None:
                return None, f"unknown month name: {m.group(month_group)}"
            return _date(_year(m.group(3)), month, int(m.group(day_group)), text)
    return None, f"not a recognised date form: {text}"


def fix_date(value: str) -> Fix:
    """date_format: any supported form -> ISO 8601 (YYYY-MM-DD)."""
    day, reason = parse_date(value)
    return Fix(day.isoformat()) if day is not None else _cannot(reason)


_CLOCK = re.compile(r"([0-9]+):([0-9]{2})(?::([0-9]{2}))?(?:\.([0-9]{1,3}))?")
_SECONDS = re.compile(r"([0-9]+)\.([0-9]{1,3})")
_MINUTES_SECONDS = re.compile(r"([0-9]+)\s*m(?:in)?\s*([0-9]{1,2})\s*s(?:ec)?", re.IGNORECASE)
_ISO_DURATION = re.compile(
    r"P?T(?:([0-9]+)H)?(?:([0-9]+)M)?(?:([0-9]+)(?:\.([0-9]{1,3}))?S)?", re.IGNORECASE
)


def _ms(fraction: str | None) -> int:
    return int(fraction.ljust(3, "0")) if fraction else 0


def parse_duration_ms(value: str) -> int | None:
    """Read a duration as milliseconds: "235000", "235", "235.5", "3:55",
    "1:02:03", "3:55.120", "PT3M55S", "3m 55sec". A plain integer below 1000 is
    seconds. A decimal is read as seconds: whether "3.66" is minutes is the
    source's convention, which the policy asks the profile about first.
    """
    text = value.strip()
    ms: int | None = None
    if _ASCII_DIGITS.fullmatch(text):
        number = int(text)
        ms = number if number >= MIN_DURATION_MS else number * 1000
    elif m := _SECONDS.fullmatch(text):
        ms = int(m.group(1)) * 1000 + _ms(m.group(2))
    elif m := _CLOCK.fullmatch(text):
        first, second, third = int(m.group(1)), int(m.group(2)), m.group(3)
        if third is None:
            hours, minutes, seconds = 0, first, second
        else:
            hours, minutes, seconds = first, second, int(third)
            if minutes > 59:
                return None
        if seconds > 59:
            return None
        ms = ((hours * 60 + minutes) * 60 + seconds) * 1000 + _ms(m.group(4))
    elif m := _MINUTES_SECONDS.fullmatch(text):
        ms = (int(m.group(1)) * 60 + int(m.group(2))) * 1000
    elif (m := _ISO_DURATION.fullmatch(text)) and any(m.groups()):
        hours, minutes, seconds = (int(g) if g else 0 for g in m.groups()[:3])
        ms = ((hours * 60 + minutes) * 60 + seconds) * 1000 + _ms(m.group(4))
    if ms is None or not MIN_DURATION_MS <= ms <= MAX_DURATION_MS:
        return None
    return ms


def fix_duration(value: str) -> Fix:
    """duration_format: any supported form -> integer milliseconds."""
    ms = parse_duration_ms(value)
    return Fix(str(ms)) if ms is not None else _cannot(f"not a recognised duration: {value}")


# ---------------------------------------------------------------------------
# Genres.

def genre_key(value: str) -> str:
    """Lookup key for a genre: case, accents, spacing and punctuation ignored,
    "&" read as "and" ("Hip-Hop" / "hip hop" / "HipHop" -> "hiphop")."""
    text = unicodedata.normalize("NFKD", value).casefold().replace("&", " and ")
    return "".join(ch for ch in text if ch.isalnum())


_GENRE_BY_KEY: dict[str, str] = {genre_key(g): g for g in GENRES}
_GENRE_BY_KEY.update({genre_key(s): g for s, g in GENRE_SYNONYMS.items()})


def canonical_genre(value: str) -> str | None:
    """The controlled-vocabulary label a genre spelling stands for, if known."""
    return _GENRE_BY_KEY.get(genre_key(value))


def fix_genre(value: str) -> Fix:
    """genre_noncanonical: map a spelling onto fields.GENRES; unknown -> review."""
    genre = canonical_genre(value)
    return Fix(genre) if genre is not None else _cannot(f"genre not in the vocabulary: {value}")


# ---------------------------------------------------------------------------
# Dispatch.

_VALUE_CORRECTORS: dict[str, Callable[[str], Fix]] = {
    "mojibake": fix_mojibake,
    "html_entity": unescape_html,
    "control_chars": strip_control_chars,
    "whitespace": normalize_whitespace,
    "all_caps": fix_case,
    "all_lower": fix_case,
    "featured_in_title": strip_featured,
    "explicit_in_title": strip_explicit_marker,
    "track_number_prefix": strip_track_number,
    "isrc_format": compact_isrc,
    "isrc_invalid": keep_valid_isrc,
    "upc_format": compact_upc,
    "upc_check_digit": keep_valid_upc,
    "date_format": fix_date,
    "duration_format": fix_duration,
    "genre_noncanonical": fix_genre,
}
# Every class correct() has a corrector for.
FIELD_CLASSES = frozenset(_VALUE_CORRECTORS) | {"artist_in_title"}


def correct(error_class: str, value: str, track: Mapping[str, Any] | None = None,
            *, artists: tuple[str | None, ...] = ()) -> Fix:
    """Run the corrector for ``error_class`` on ``value``.

    ``artist_in_title`` compares the title with the artist: ``track["artist"]``
    and any further spellings passed as ``artists``.
    """
    if error_class == "artist_in_title":
        artist = (track or {}).get("artist")
        return strip_artist_prefix(value, artist, *artists)
    corrector = _VALUE_CORRECTORS.get(error_class)
    if corrector is None:
        raise ValueError(f"no corrector for error class {error_class!r}")
    return corrector(value)


# ---------------------------------------------------------------------------
# Typing of the fields the model does not score.

_TRUE = frozenset(["true", "t", "1", "yes", "y", "explicit", "e"])
_FALSE = frozenset(["false", "f", "0", "no", "n", "clean", "not explicit", "notexplicit", "c"])
_TRACK_NUMBER = re.compile(r"0*([0-9]{1,4})(?:\s*(?:/|of)\s*[0-9]{1,4})?", re.IGNORECASE)

# Abbreviations feeds send that are neither a language tag nor a language name
# ("Jap." is not ISO 639; "Ger." and "Fre." are, as ISO 639-2/B codes).
_LANGUAGE_ALIASES = {"jap": "ja"}


def parse_explicit(value: str) -> bool | None:
    """"true"/"1"/"yes"/"explicit" -> True, "false"/"0"/"no"/"clean" -> False."""
    text = value.strip().casefold()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    return None


# Cached too: a catalog's track numbers are a few hundred distinct values.
@functools.lru_cache(maxsize=_VALIDATOR_CACHE_SIZE)
def parse_track_number(value: str) -> int | None:
    """"3", "03", "3/12", "3 of 12" -> 3; None when it is not a track number."""
    m = _TRACK_NUMBER.fullmatch(value.strip())
    if m is None or int(m.group(1)) == 0:
        return None
    return int(m.group(1))


@functools.lru_cache(maxsize=4096)
def normalize_language(value: str) -> str | None:
    """The language subtag of a valid BCP 47 tag, in its shortest standard form.

    "EN", "en-US", "pt_BR", "eng", "Eng.", "ger", "English", "Deutsch" -> "en"/"pt"/"de";
    codes without a two-letter form stay three letters ("yue", "fil"); names are
    looked up in any language (langcodes). None for what is not a language: "xx",
    "Englsh", "Elvish". A trailing dot marks an abbreviation of a major language's
    English name: "Eng." and "Cze." map, "E." and "Cro." do not.
    """
    text = value.strip().strip("[]").strip()
    code = _language_subtag(text)
    if code is None and text.endswith(".") and len(text) > 2:
        code = _language_subtag(text[:-1])
        # An abbreviation names a major language by the start of its English name: "Cze."
        # is Czech, but "Cro." is not Crow, nor "nEg." Negidal (ISO 639-3 has 7,000 codes).
        if code is not None and not (len(code) == 2 and _english_name(code).startswith(text[:-1].casefold())):
            return None
    return code


@functools.lru_cache(maxsize=512)
def _english_name(code: str) -> str:
    return langcodes.Language.get(code).display_name("en").casefold()


def _language_subtag(text: str) -> str | None:
    alias = _LANGUAGE_ALIASES.get(text.casefold())
    if alias is not None:
        return alias
    try:
        language = langcodes.Language.get(langcodes.standardize_tag(text))
    except (langcodes.LanguageTagError, ValueError):
        language = None
    if language is not None and language.is_valid() and language.language:
        return language.language
    if not text.replace(" ", "").isalpha() or len(text) <= 3:
        # A short word is a code or nothing: langcodes would read "EN" as a name ("Enets").
        return None
    try:
        return langcodes.find(text).language
    except LookupError:
        return None
