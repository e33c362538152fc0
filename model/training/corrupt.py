"""Seeded, deterministic corruption of seed tracks into labelled examples.

``generate`` turns clean seeds (``model/training/data.py``) into what feeds deliver:
the raw wire strings of a CatalogUpdateEvent track, with per-field labels
(an error class of ``fields.SCORED_FIELDS`` or "clean"), the record-level
swapped flag, and the typed track the decision policy should produce.

    >>> from model.training.data import load_seeds, split_seeds
    >>> train, val, test = split_seeds(load_seeds("/work/shared/data/catalog"))
    >>> examples = generate(train, seed=7, copies=10)

Each example depends only on (``seed``, seed record, copy number) and on the
seeds passed in (the pools featured artists and look-alikes are drawn from),
so generating from one split never touches another split's seeds.

What gets generated
-------------------
A share ``corruption_rate`` of examples is corrupted: one field (75 %), two
(20 %) or three (5 %) get one error class each, or the whole record's text
is shouted (a common feed fault), or title and artist are swapped. Classes
are drawn uniformly and applied only where the result is recoverable, so
that ``expected`` is exactly what the class's corrector gives back: case
errors only on values that ``title_case`` maps back exactly, mojibake only on
non-ASCII text that ftfy repairs, and so on; corrupted text must also fit the
field's ``max_chars`` (the model sees no more). The invariant is tested in
``tests/model/test_corrupt.py``. Mojibake and HTML entities need non-ASCII
text or "&"/quotes, which few seeds have: when one of them is drawn, the
example is built from a seed of the same list that has such text.

The other examples are clean; ``lookalike_rate`` of them are legitimate
values that look like errors and must be left alone (``Example.lookalike``
names the kind): a curated stylised track ("HUMBLE.", "deadmau5", "bad
guy"), a real title that starts with a number or a bracket, a " - Live" or
" (Remix)" style suffix, or a title that starts with another artist's name
and " - ".

Expected values and review
--------------------------
``expected`` is the typed canonical track (the CorrectedRecord ``track``
layout). It is the seed's track except where the feed itself lost precision
(a duration sent as "3:55" can only be corrected to 235000 ms) and for the
classes nothing can correct: ``isrc_invalid`` and ``upc_check_digit`` keep
the value as delivered, an ambiguous numeric date ("03/04/2008") becomes
None, and an unknown genre is kept as delivered. Those fields are listed in
``Example.expect_review``: evaluation should score them as correct when the
output value equals ``expected`` AND the field is flagged for review, and
count a flag on any other field as a false alarm. ``labels`` still carries
the detected class (date_format for an ambiguous date), because that is what
the model must predict.
"""

from __future__ import annotations

import bisect
import datetime
import html.entities
import random
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from model.training.data import Seed
from transforms import correctors
from transforms.fields import (
    CLEAN,
    FIELD_SPECS,
    GENRE_SYNONYMS,
    GENRES,
    SCORED_FIELD_NAMES,
    SWAP_CLASS,
    TEXT_CLASSES,
    TEXT_FIELDS,
)


@dataclass(frozen=True)
class Example:
    """One generated track.

    ``raw``: the track as it arrives (CatalogUpdateEvent ``track``: every field
    a string or None, featured_artists a list of strings). ``labels``: scored
    field -> error class or "clean". ``swapped``: title and artist exchanged.
    ``expected``: the typed track correction should produce.
    ``expect_review``: fields that cannot be corrected and must be flagged.
    ``lookalike``: for clean examples built as a legitimate look-alike, its
    kind; None otherwise.
    """

    seed_id: str
    raw: dict[str, Any]
    labels: dict[str, str]
    swapped: bool
    expected: dict[str, Any]
    expect_review: frozenset[str] = frozenset()
    lookalike: str | None = None

    @property
    def error_classes(self) -> tuple[str, ...]:
        """The error classes present, record-level swap included."""
        found = tuple(c for c in self.labels.values() if c != CLEAN)
        return found + ((SWAP_CLASS,) if self.swapped else ())


def to_event(example: Example, event_id: str, *, source: str | None = None,
             event_time: str | None = None, entity_id: str | None = None) -> dict[str, Any]:
    """A CatalogUpdateEvent (schemas/catalog_update_event.avsc) carrying the example."""
    return {
        "event_id": event_id,
        "event_time": event_time,
        "entity_id": entity_id if entity_id is not None else example.seed_id,
        "source": source,
        "track": {k: (list(v) if k == "featured_artists" else v) for k, v in example.raw.items()},
    }


# ---------------------------------------------------------------------------
# Working state of one example while it is built.

@dataclass
class _Draft:
    seed: Seed
    raw: dict[str, Any]
    expected: dict[str, Any]
    labels: dict[str, str] = field(default_factory=lambda: dict.fromkeys(SCORED_FIELD_NAMES, CLEAN))
    swapped: bool = False
    expect_review: set[str] = field(default_factory=set)
    lookalike: str | None = None

    def fits(self, name: str, value: str) -> bool:
        return len(value) <= FIELD_SPECS[name].max_chars

    def example(self) -> Example:
        return Example(seed_id=self.seed.seed_id, raw=self.raw, labels=self.labels,
                       swapped=self.swapped, expected=self.expected,
                       expect_review=frozenset(self.expect_review), lookalike=self.lookalike)


class _Context:
    """Per-call pools and caches (the corrector checks are the slow part)."""

    def __init__(self, seeds: Sequence[Seed]) -> None:
        self.featured_pool = sorted({
            s.track["artist"] for s in seeds
            if s.source != "curated" and _usable_featured_name(s.track["artist"])
        })
        self.artist_pool = sorted({s.track["artist"] for s in seeds})
        self.curated = [s for s in seeds if s.source == "curated"]
        self.numeric_titles = [s for s in seeds if s.source != "curated"
                               and s.track["title"][:1].isdigit()]
        self.bracket_titles = [s for s in seeds if s.source != "curated"
                               and s.track["title"][:1] in "(["]
        # Few seeds can carry these classes at all (non-ASCII text; "&", quotes
        # or accents): examples of them are drawn from these seeds instead.
        self.scarce: dict[str, list[Seed]] = {
            "mojibake": [s for s in seeds if _has_text(s, lambda v: not v.isascii())],
            "html_entity": [s for s in seeds if _has_text(s, _escapable)],
        }
        self.scarce_ids = {c: {s.seed_id for s in pool} for c, pool in self.scarce.items()}
        self._cache: dict[tuple[str, str], Any] = {}

    def cached(self, kind: str, value: str, compute: Callable[[str], Any]) -> Any:
        key = (kind, value)
        if key not in self._cache:
            self._cache[key] = compute(value)
        return self._cache[key]


def _has_text(seed: Seed, test: Callable[[str], bool]) -> bool:
    return any(seed.text[n] is not None and test(seed.text[n]) for n in TEXT_FIELDS)


def _escapable(value: str) -> bool:
    return any(c in _ENTITY_FORMS or (not c.isascii() and ord(c) in html.entities.codepoint2name)
               for c in value)


def _usable_featured_name(name: str) -> bool:
    # Names the corrector could not split back out unchanged are left out of
    # the pool: separators, brackets, feature words, shouting or lower case.
    lowered = f" {name.casefold()} "
    return (len(name) <= 24 and not any(c in name for c in "&,()[]/;+")
            and not any(w in lowered for w in (" and ", " feat", " ft.", " ft ", " x ", " with "))
            and not name.isupper() and not name.islower())


def _weighted(rng: random.Random, options: Sequence[Any], cumulative: Sequence[int]) -> Any:
    """rng.choices for one item, without rebuilding the weights on every call."""
    return options[bisect.bisect(cumulative, rng.random() * cumulative[-1])]


# ---------------------------------------------------------------------------
# Wire forms of clean values.

_EXPLICIT_FORMS = (("true", "false"), ("1", "0"), ("yes", "no"), ("True", "False"), ("Y", "N"))
_EXPLICIT_WEIGHTS = tuple(accumulate((10, 3, 2, 1, 1)))
_LANGUAGE_NAMES = {"en": "English", "pt": "Portuguese", "es": "Spanish", "de": "German",
                   "fr": "French", "it": "Italian", "sv": "Swedish", "ja": "Japanese"}
_LANGUAGE_REGIONS = {"en": "en-US", "pt": "pt-BR", "es": "es-ES", "de": "de-DE", "fr": "fr-FR",
                     "it": "it-IT", "sv": "sv-SE", "ja": "ja-JP"}
_OPTIONAL_FIELDS = ("album", "isrc", "upc", "release_date", "duration_ms", "genre",
                    "explicit", "track_number", "language")
_MISSING_RATE = 0.03
_FEATURED_RATE = 0.08


def _base(seed: Seed, rng: random.Random, ctx: _Context) -> _Draft:
    """The seed as a clean delivery, with the usual variety of wire forms."""
    raw = dict(seed.text)
    raw["featured_artists"] = list(seed.text["featured_artists"])
    expected = dict(seed.track)
    expected["featured_artists"] = list(seed.track["featured_artists"])
    yes, no = _weighted(rng, _EXPLICIT_FORMS, _EXPLICIT_WEIGHTS)
    raw["explicit"] = yes if seed.track["explicit"] else no
    number = seed.track["track_number"]
    roll = rng.random()
    if roll < 0.25:
        raw["track_number"] = f"{number:02d}"
    elif roll < 0.40:
        raw["track_number"] = f"{number}/{seed.track_total}"
    raw["language"] = _language_form(seed.track["language"], rng)
    for name in _OPTIONAL_FIELDS:
        if rng.random() < _MISSING_RATE:
            raw[name] = None
            expected[name] = None
    if rng.random() < _FEATURED_RATE and ctx.featured_pool:
        names = _featured_names(seed, rng, ctx)
        raw["featured_artists"] = list(names)
        expected["featured_artists"] = list(names)
    return _Draft(seed=seed, raw=raw, expected=expected)


def _language_form(code: str, rng: random.Random) -> str:
    """ISO 639-1 mostly, sometimes upper case, a language name or a region tag."""
    roll = rng.random()
    if roll < 0.7:
        return code
    if roll < 0.8:
        return code.upper()
    if roll < 0.9:
        return _LANGUAGE_NAMES.get(code, code)
    return _LANGUAGE_REGIONS.get(code, code)


def _featured_names(seed: Seed, rng: random.Random, ctx: _Context) -> list[str]:
    count = 1 if rng.random() < 0.75 else 2
    names: list[str] = []
    while len(names) < count:
        name = rng.choice(ctx.featured_pool)
        if name.casefold() != seed.track["artist"].casefold() and name not in names:
            names.append(name)
    return names


# ---------------------------------------------------------------------------
# Legitimate look-alikes (labelled clean).

_VERSION_SUFFIXES = (" - Live", " - Remastered 2011", " - Radio Edit", " - Acoustic",
                     " - Single Version", " - Mono", " - Remastered", " (Live)", " (Remix)",
                     " (Acoustic)", " [Live]", " (Radio Edit)", " (Demo)", " (Remastered)",
                     " (Instrumental)")
LOOKALIKE_KINDS = ("stylised", "numeric_title", "bracket_title", "version_suffix",
                   "other_artist_prefix")
_LOOKALIKE_WEIGHTS = tuple(accumulate((40, 15, 10, 25, 10)))


def _lookalike(seed: Seed, rng: random.Random, ctx: _Context) -> _Draft:
    kind = _weighted(rng, LOOKALIKE_KINDS, _LOOKALIKE_WEIGHTS)
    pools = {"stylised": ctx.curated, "numeric_title": ctx.numeric_titles,
             "bracket_title": ctx.bracket_titles}
    if kind in pools:
        if not pools[kind]:
            return _base(seed, rng, ctx)
        draft = _base(rng.choice(pools[kind]), rng, ctx)
        draft.lookalike = kind
        return draft
    draft = _base(seed, rng, ctx)
    title = draft.raw["title"]
    if kind == "version_suffix":
        new_title = title + rng.choice(_VERSION_SUFFIXES)
    else:
        other = rng.choice(ctx.artist_pool)
        if other.casefold() == seed.track["artist"].casefold():
            return draft
        new_title = f"{other} - {title}"
    if draft.fits("title", new_title):
        draft.raw["title"] = draft.expected["title"] = new_title
        draft.lookalike = kind
    return draft


# ---------------------------------------------------------------------------
# Corruptions: each takes the clean raw value and returns the corrupted raw
# value, or None where the class does not apply recoverably.

def _mojibake_variant(value: str, variant: int) -> str | None:
    try:
        if variant == 0:
            return value.encode("utf-8").decode("cp1252")
        if variant == 1:
            return value.encode("utf-8").decode("latin-1")
        once = value.encode("utf-8").decode("cp1252")
        return once.encode("utf-8").decode("cp1252")
    except UnicodeError:
        return None


def _mojibake(value: str, rng: random.Random, ctx: _Context) -> str | None:
    if value.isascii():
        return None
    variant = rng.choice((0, 0, 1, 2))
    broken = _mojibake_variant(value, variant)
    if broken is None or broken == value:
        return None
    if ctx.cached("mojibake", broken, lambda v: correctors.fix_mojibake(v).value) != value:
        return None
    return broken


_ENTITY_FORMS: dict[str, tuple[str, ...]] = {
    "&": ("&amp;", "&amp;", "&#38;"),
    "'": ("&#39;", "&apos;", "&#x27;"),
    '"': ("&quot;", "&#34;"),
}


def _html_entity(value: str, rng: random.Random, ctx: _Context) -> str | None:
    present = [c for c in _ENTITY_FORMS if c in value]
    accented = [c for c in value if not c.isascii() and ord(c) in html.entities.codepoint2name]
    choices = present + (["accent"] if accented else [])
    if not choices:
        return None
    pick = rng.choice(choices)
    if pick == "accent":
        char = rng.choice(accented)
        entity = rng.choice((f"&{html.entities.codepoint2name[ord(char)]};", f"&#{ord(char)};"))
        broken = value.replace(char, entity)
    else:
        broken = value.replace(pick, rng.choice(_ENTITY_FORMS[pick]))
    if correctors.unescape_html(broken).value != value:
        return None
    return broken


_CONTROL_CHARS = ("\x00", "\x01", "\x08", "\x1b", "\x7f", "\u200b", "\u200e", "\ufeff",
                  "\u00ad", "\u2060")


def _control_chars(value: str, rng: random.Random, ctx: _Context) -> str | None:
    broken = value
    for _ in range(1 if rng.random() < 0.7 else 2):
        where = rng.choice((0, len(broken), rng.randrange(len(broken) + 1)))
        broken = broken[:where] + rng.choice(_CONTROL_CHARS) + broken[where:]
    if correctors.strip_control_chars(broken).value != value:
        return None
    return broken


def _whitespace(value: str, rng: random.Random, ctx: _Context) -> str | None:
    if correctors.normalize_whitespace(value).value != value:
        return None
    spaces = [i for i, c in enumerate(value) if c == " "]
    forms = ["lead", "trail", "both", "trail_nbsp"] + (["double", "nbsp"] if spaces else [])
    form = rng.choice(forms)
    if form == "lead":
        return " " + value
    if form == "trail":
        return value + rng.choice((" ", "  "))
    if form == "both":
        return f" {value} "
    if form == "trail_nbsp":
        return value + "\xa0"
    i = rng.choice(spaces)
    return value[:i] + ("  " if form == "double" else "\xa0") + value[i + 1:]


def _case(transform: Callable[[str], str]) -> Callable[[str, random.Random, _Context], str | None]:
    def corrupt(value: str, rng: random.Random, ctx: _Context) -> str | None:
        broken = transform(value)
        if broken == value:
            return None
        if ctx.cached("title_case", broken, correctors.title_case) != value:
            return None
        return broken
    return corrupt


_all_caps = _case(str.upper)
_all_lower = _case(str.lower)

_TEXT_CORRUPTIONS: dict[str, Callable[[str, random.Random, _Context], str | None]] = {
    "mojibake": _mojibake,
    "html_entity": _html_entity,
    "control_chars": _control_chars,
    "whitespace": _whitespace,
    "all_caps": _all_caps,
    "all_lower": _all_lower,
}

_FEATURED_FORMS = (" (feat. {})", " (feat. {})", " (ft. {})", " [feat. {}]", " featuring {}",
                   " feat. {}", " (featuring {})", " ft. {}")
_EXPLICIT_MARKERS = {
    True: (" [Explicit]", " (Explicit)", " (Explicit Version)", " [Explicit Version]"),
    False: (" (Clean)", " [Clean]", " (Clean Version)", " [Clean Version]", " (Edited)"),
}


def _join_names(names: Sequence[str], rng: random.Random) -> str:
    if len(names) == 1:
        return names[0]
    return rng.choice((" & ", ", ", " and ")).join(names)


def _featured_in_title(draft: _Draft, rng: random.Random, ctx: _Context) -> bool:
    names = draft.expected["featured_artists"]
    if not names:
        if not ctx.featured_pool:
            return False
        names = _featured_names(draft.seed, rng, ctx)
    title = draft.raw["title"]
    broken = title + rng.choice(_FEATURED_FORMS).format(_join_names(names, rng))
    fix = correctors.strip_featured(broken)
    if not draft.fits("title", broken) or fix.value != title or list(fix.featured_artists) != names:
        return False
    draft.raw["title"] = broken
    draft.raw["featured_artists"] = []
    draft.expected["featured_artists"] = list(names)
    return True


def _explicit_in_title(draft: _Draft, rng: random.Random, ctx: _Context) -> bool:
    explicit = draft.expected["explicit"]
    if explicit is None:
        return False
    title = draft.raw["title"]
    broken = title + rng.choice(_EXPLICIT_MARKERS[explicit])
    fix = correctors.strip_explicit_marker(broken)
    if not draft.fits("title", broken) or fix.value != title or fix.explicit != explicit:
        return False
    draft.raw["title"] = broken
    if rng.random() < 0.7:  # the flag only survives in the title
        draft.raw["explicit"] = None
    return True


_TRACK_PREFIXES = ("{:02d} - ", "{:02d} - ", "{} - ", "{}. ", "{:02d}. ", "{:02d} ")


def _track_number_prefix(draft: _Draft, rng: random.Random, ctx: _Context) -> bool:
    number = draft.expected["track_number"]
    if number is None or number > 99:
        return False
    title = draft.raw["title"]
    broken = rng.choice(_TRACK_PREFIXES).format(number) + title
    fix = correctors.strip_track_number(broken)
    if not draft.fits("title", broken) or fix.value != title or fix.track_number != number:
        return False
    draft.raw["title"] = broken
    if rng.random() < 0.5:  # the number only survives in the title
        draft.raw["track_number"] = None
    return True


def _artist_in_title(draft: _Draft, rng: random.Random, ctx: _Context) -> bool:
    title, artist = draft.raw["title"], draft.raw["artist"]
    broken = artist + rng.choice((" - ", " - ", " – ")) + title
    if not draft.fits("title", broken) or correctors.strip_artist_prefix(broken, artist).value != title:
        return False
    draft.raw["title"] = broken
    return True


_TITLE_CORRUPTIONS: dict[str, Callable[[_Draft, random.Random, _Context], bool]] = {
    "featured_in_title": _featured_in_title,
    "explicit_in_title": _explicit_in_title,
    "track_number_prefix": _track_number_prefix,
    "artist_in_title": _artist_in_title,
}


def _isrc_format(value: str, rng: random.Random) -> str:
    parts = (value[:2], value[2:5], value[5:7], value[7:])
    form = rng.choice(("hyphens", "spaces", "lower", "lower_hyphens", "prefix_space"))
    if form == "hyphens":
        return "-".join(parts)
    if form == "spaces":
        return " ".join(parts)
    if form == "lower":
        return value.lower()
    if form == "lower_hyphens":
        return "-".join(parts).lower()
    return f" {value} "


def _isrc_invalid(value: str, rng: random.Random) -> str:
    form = rng.choice(("short", "long", "digit_country", "letter_in_number"))
    if form == "short":
        i = rng.randrange(7, 12)
        return value[:i] + value[i + 1:]
    if form == "long":
        return value + str(rng.randrange(10))
    if form == "digit_country":
        return value[0] + str(rng.randrange(10)) + value[2:]
    i = rng.randrange(7, 12)
    return value[:i] + rng.choice("OIS") + value[i + 1:]


def _upc_format(value: str, rng: random.Random) -> str:
    forms = ["spaces", "hyphens", "grouped"] + (["drop_zero"] * 2 if value.startswith("0") else [])
    form = rng.choice(forms)
    if form == "spaces":
        return f"{value[0]} {value[1:6]} {value[6:11]} {value[11]}"
    if form == "hyphens":
        return f"{value[0]}-{value[1:6]}-{value[6:11]}-{value[11]}"
    if form == "grouped":
        return f"{value[:6]} {value[6:]}"
    return value[1:]


def _upc_check_digit(value: str, rng: random.Random) -> str:
    wrong = rng.choice([d for d in "0123456789" if d != value[-1]])
    return value[:-1] + wrong


_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December")


def _date_forms(day: datetime.date) -> list[str]:
    month_name = _MONTHS[day.month - 1]
    d, m, y = day.day, day.month, day.year
    return [
        f"{d:02d}-{month_name[:3]}-{y % 100:02d}",
        f"{month_name} {d}, {y}",
        f"{month_name[:3]} {d}, {y}",
        f"{d} {month_name} {y}",
        f"{y}.{m:02d}.{d:02d}",
        f"{y}/{m:02d}/{d:02d}",
        f"{y}{m:02d}{d:02d}",
        f"{y}-{m:02d}-{d:02d}T00:00:00Z",
        f"{m}/{d}/{y}",  # US order
        f"{d:02d}/{m:02d}/{y}",  # European order
        f"{d:02d}.{m:02d}.{y}",
        f"{m}/{d}/{y % 100:02d}",
    ]


def _date_format(draft: _Draft, rng: random.Random) -> bool:
    day = draft.expected["release_date"]
    broken = rng.choice(_date_forms(day))
    parsed, reason = correctors.parse_date(broken)
    if parsed is None and reason.startswith("ambiguous"):
        draft.expected["release_date"] = None  # not guessed: the policy must flag it
        draft.expect_review.add("release_date")
    elif parsed != day:
        return False
    draft.raw["release_date"] = broken
    return True


def _duration_format(draft: _Draft, rng: random.Random) -> bool:
    ms = draft.expected["duration_ms"]
    # Forms in whole seconds lose the milliseconds: the feed rounded, and the
    # expected value is what it sent. The forms with a fraction keep them.
    seconds = round(ms / 1000)
    minutes, rest = divmod(seconds, 60)
    exact_minutes, exact_rest = divmod(ms // 1000, 60)
    fraction = f"{ms % 1000:03d}"
    forms = [
        (f"{minutes}:{rest:02d}", seconds * 1000),
        (f"{minutes:02d}:{rest:02d}", seconds * 1000),
        (f"{minutes // 60}:{minutes % 60:02d}:{rest:02d}", seconds * 1000),
        (f"PT{minutes}M{rest}S", seconds * 1000),
        (f"{ms // 1000}.{fraction}", ms),
        (f"{exact_minutes}:{exact_rest:02d}.{fraction}", ms),
        (f"PT{exact_minutes}M{exact_rest}.{fraction}S", ms),
    ]
    if seconds < correctors.MIN_DURATION_MS:
        forms.append((str(seconds), seconds * 1000))
    broken, expected = rng.choice(forms)
    parsed = correctors.parse_duration_ms(broken)
    if parsed != expected:
        return False
    draft.raw["duration_ms"] = broken
    draft.expected["duration_ms"] = parsed
    return True


# Real genre labels outside the controlled vocabulary: the corrector cannot
# map them, so they must reach a person.
UNMAPPED_GENRES = ("Shoegaze", "Krautrock", "Vaporwave", "Grime", "Zydeco", "Sci Fi & Fantasy",
                   "Spoken Word", "Christmas", "Fitness & Workout", "Anime")


def _genre_variants(genre: str) -> list[str]:
    synonyms = [s for s, g in GENRE_SYNONYMS.items() if g == genre]
    spellings = {genre.lower(), genre.upper(), genre.replace(" ", "-"), genre.replace(" ", ""),
                 genre.replace(" and ", " & "), genre.replace(" and ", " And ")}
    return sorted(v for v in set(synonyms) | spellings
                  if v != genre and correctors.canonical_genre(v) == genre)


def _genre_noncanonical(draft: _Draft, rng: random.Random) -> bool:
    genre = draft.expected["genre"]
    if rng.random() < 0.12:
        broken = rng.choice(UNMAPPED_GENRES)
        draft.expected["genre"] = broken  # kept as delivered, flagged
        draft.expect_review.add("genre")
    else:
        variants = _GENRE_VARIANTS.get(genre)
        if not variants:
            return False
        broken = rng.choice(variants)
    draft.raw["genre"] = broken
    return True


def _format_error(name: str, corrupt: Callable[[str, random.Random], str],
                  fix: Callable[[str], correctors.Fix]) -> Callable[[_Draft, random.Random], bool]:
    """A separator/case problem in an identifier: its corrector must undo it."""
    def apply(draft: _Draft, rng: random.Random) -> bool:
        value = draft.raw[name]
        broken = corrupt(value, rng)
        if fix(broken).value != value:
            return False
        draft.raw[name] = broken
        return True
    return apply


def _invalid_error(name: str, corrupt: Callable[[str, random.Random], str],
                   format_fix: Callable[[str], correctors.Fix]) -> Callable[[_Draft, random.Random], bool]:
    """An identifier nobody can repair: kept as delivered, must be flagged."""
    def apply(draft: _Draft, rng: random.Random) -> bool:
        broken = corrupt(draft.raw[name], rng)
        if correctors.VALIDATORS[name](broken) or format_fix(broken).value is not None:
            return False  # valid after all, or only a format problem
        draft.raw[name] = draft.expected[name] = broken
        draft.expect_review.add(name)
        return True
    return apply


_GENRE_VARIANTS: dict[str, list[str]] = {g: _genre_variants(g) for g in GENRES}

_FIELD_CORRUPTIONS: dict[str, Callable[[_Draft, random.Random], bool]] = {
    "isrc_format": _format_error("isrc", _isrc_format, correctors.compact_isrc),
    "isrc_invalid": _invalid_error("isrc", _isrc_invalid, correctors.compact_isrc),
    "upc_format": _format_error("upc", _upc_format, correctors.compact_upc),
    "upc_check_digit": _invalid_error("upc", _upc_check_digit, correctors.compact_upc),
    "date_format": _date_format,
    "duration_format": _duration_format,
    "genre_noncanonical": _genre_noncanonical,
}

# Every (field, class) the generator draws from.
_FIELD_OF_CLASS: dict[str, tuple[str, ...]] = {}
for _spec in FIELD_SPECS.values():
    for _cls in _spec.classes:
        if _cls != CLEAN:
            _FIELD_OF_CLASS.setdefault(_cls, ())
            _FIELD_OF_CLASS[_cls] += (_spec.name,)
CORRUPTION_CLASSES: tuple[str, ...] = tuple(_FIELD_OF_CLASS)


def _corrupt_field(draft: _Draft, name: str, error_class: str, rng: random.Random,
                   ctx: _Context) -> bool:
    """Apply one class to one field of the draft; False if it does not apply."""
    value = draft.raw[name]
    if value is None or draft.labels[name] != CLEAN:
        return False
    if error_class in TEXT_CLASSES:
        broken = _TEXT_CORRUPTIONS[error_class](value, rng, ctx)
        if broken is None or not draft.fits(name, broken):
            return False
        draft.raw[name] = broken
    elif error_class in _TITLE_CORRUPTIONS:
        if not _TITLE_CORRUPTIONS[error_class](draft, rng, ctx):
            return False
    elif not _FIELD_CORRUPTIONS[error_class](draft, rng):
        return False
    draft.labels[name] = error_class
    return True


def _compatible(draft: _Draft, name: str, error_class: str) -> bool:
    """Pairs of corruptions a corrector could not undo one after the other."""
    if draft.swapped and name in ("title", "artist"):
        return False
    if error_class == "artist_in_title" and draft.labels["artist"] != CLEAN:
        return False
    if name == "artist" and draft.labels["title"] == "artist_in_title":
        return False
    return True


_FIELD_COUNTS = (1, 2, 3)
_FIELD_COUNT_WEIGHTS = tuple(accumulate((75, 20, 5)))
_SHOUT_RATE = 0.05
_SWAP_RATE = 0.06
_MAX_TRIES = 12


def _corrupted(seed: Seed, rng: random.Random, ctx: _Context) -> _Draft:
    plan = rng.random()
    first_class = rng.choice(CORRUPTION_CLASSES)
    pool = ctx.scarce.get(first_class)
    if pool and seed.seed_id not in ctx.scarce_ids[first_class]:
        seed = rng.choice(pool)
    draft = _base(seed, rng, ctx)
    if plan < _SHOUT_RATE and _shout(draft, rng, ctx):
        return draft
    wanted = _weighted(rng, _FIELD_COUNTS, _FIELD_COUNT_WEIGHTS)
    if _SHOUT_RATE <= plan < _SHOUT_RATE + _SWAP_RATE and _swap(draft):
        wanted -= 1
    done = 0
    for attempt in range(_MAX_TRIES):
        if done >= wanted:
            break
        error_class = first_class if attempt == 0 else rng.choice(CORRUPTION_CLASSES)
        names = _FIELD_OF_CLASS[error_class]
        for name in rng.sample(names, len(names)):
            if (_compatible(draft, name, error_class)
                    and _corrupt_field(draft, name, error_class, rng, ctx)):
                done += 1
                break
    return draft


def _shout(draft: _Draft, rng: random.Random, ctx: _Context) -> bool:
    """The whole record in upper case, as some feeds send it."""
    shouted = {}
    for name in TEXT_FIELDS:
        value = draft.raw[name]
        if value is not None:
            broken = _all_caps(value, rng, ctx)
            if broken is not None and draft.fits(name, broken):
                shouted[name] = broken
    if len(shouted) < 2:
        return False
    for name, broken in shouted.items():
        draft.raw[name] = broken
        draft.labels[name] = "all_caps"
    return True


def _swap(draft: _Draft) -> bool:
    title, artist = draft.raw["title"], draft.raw["artist"]
    if not title or not artist or title.casefold() == artist.casefold():
        return False
    if not draft.fits("title", artist) or not draft.fits("artist", title):
        return False
    draft.raw["title"], draft.raw["artist"] = artist, title
    draft.swapped = True
    return True


def _rng(seed: int, seed_id: str, copy: int) -> random.Random:
    key = zlib.crc32(seed_id.encode("utf-8"))
    return random.Random((seed * 1_000_003 + copy) * 4_294_967_311 + key)


def generate(seeds: Sequence[Seed], *, seed: int, copies: int = 1,
             corruption_rate: float = 0.5, lookalike_rate: float = 0.15) -> list[Example]:
    """``copies`` examples per seed, deterministic for a given ``seed``.

    ``corruption_rate``: share of examples with at least one error.
    ``lookalike_rate``: share of the clean examples built as legitimate
    look-alikes.
    """
    ctx = _Context(seeds)
    examples = []
    for s in seeds:
        for copy in range(copies):
            rng = _rng(seed, s.seed_id, copy)
            if rng.random() < corruption_rate:
                draft = _corrupted(s, rng, ctx)
            elif rng.random() < lookalike_rate:
                draft = _lookalike(s, rng, ctx)
            else:
                draft = _base(s, rng, ctx)
            examples.append(draft.example())
    return examples
