"""The catalog profile: what a catalog team knows about its artists and suppliers.

A record seen alone cannot tell "KAROL G" (how the artist writes it) from
"KAROL G" (a feed that shouts), nor "5/4/2024" in May from April. The profile
holds the knowledge that can:

* **artists**: the forms each artist's name is delivered in, with counts
  ("KAROL G": 57). A form seen often enough and making up enough of the
  artist's deliveries is *official*, and the policy never "corrects" it;
* **titles**: per artist (name key), the keys of the titles delivered under
  it: a swap needs them as evidence ("Rush" / "Troye Sivan" is only exchanged
  when "Troye Sivan" is a known artist with a known title "Rush");
* **sources**: per source, the unambiguous numeric dates it sent, split into
  day-first ("26/4/2024") and month-first ("4/26/2024"), how many of its
  text values are all upper case, all lower case or mixed, and how many of its
  decimal durations are below 20 ("3.663": minutes) or not ("215.5": seconds),
  and how many of its album values end in a year suffix "Album (2003)" (one
  that names the record's own release year, when the record has one).

It is built from records (``build_profile``; partial profiles ``merge``, so a
Beam ``CombineGlobally`` can build it), serialised as sorted, compact JSON,
and named by the hash of that JSON, so one profile always has one version::

    >>> p = build_profile([("feed-a", {"artist": "KAROL G", "release_date": "4/26/2024"}),
    ...                    ("feed-a", {"artist": "KAROL G", "release_date": "1/13/2024"}),
    ...                    ("feed-a", {"artist": "KAROL G", "release_date": "12/31/2023"})])
    >>> p.is_official_form("KAROL G"), p.is_official_form("Karol G")
    (True, False)
    >>> p.date_order("feed-a")
    'mdy'
    >>> p.resolve_date("5/4/2024", "feed-a").date
    datetime.date(2024, 5, 4)
    >>> ProfileData.from_json(p.to_json()) == p
    True
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import json
import re
import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

FORMAT = 3  # bump when the JSON layout changes

DAY_FIRST = "dmy"
MONTH_FIRST = "mdy"

# A source's date order is trusted from this many unambiguous dates on, when
# at least this share of them agree.
MIN_DATE_EVIDENCE = 3
MIN_DATE_AGREEMENT = 0.95
# A name form is official when seen at least this often and it is at least
# this share of the artist's deliveries (a one-off shouted copy among many
# mixed-case ones is not).
MIN_FORM_COUNT = 1
MIN_FORM_SHARE = 0.2

# A source's decimal durations are minutes from this many on, when at least this
# share of them are below DECIMAL_MINUTES_BELOW (no song of 20 s is common, and
# no song of 20 min is).
MIN_UNIT_EVIDENCE = 3
MIN_UNIT_AGREEMENT = 0.95
DECIMAL_MINUTES_BELOW = 20
_DECIMAL = re.compile(r"([0-9]{1,4})\.([0-9]{1,3})")
MINUTES = "minutes"
SECONDS = "seconds"

# A source appends "(YYYY)" to its albums by habit from this many album values
# on, when at least this share of them carry it ("1989 (Taylor's Version)" or
# "Live (1979)" are real album names; a feed that suffixes most of its albums
# is not naming them so).
MIN_SUFFIX_EVIDENCE = 20
MIN_SUFFIX_SHARE = 0.5
_ALBUM_YEAR_SUFFIX = re.compile(r"(?P<rest>.*?\S)\s*\((?P<year>(?:19|20)[0-9]{2})\)\s*")
_YEAR = re.compile(r"(?<![0-9])(?:19|20)[0-9]{2}(?![0-9])")

_NUMERIC_DATE = re.compile(r"([0-9]{1,2})[/.\-]([0-9]{1,2})[/.\-]([0-9]{4}|[0-9]{2})")
TWO_DIGIT_YEAR_PIVOT = 30  # as transforms.correctors: 00-29 -> 2000s, 30-99 -> 1900s


# Artist names recur across a catalog: a profile pass keys each delivery's names, and
# the policy asks about the same names again (build_profile over 200k events: 3.7 to
# 3.3 µs a record).
@functools.lru_cache(maxsize=1 << 16)
def name_key(name: str) -> str:
    """The key forms of one name share: NFKC, case folded, spaces collapsed.

    >>> name_key(" KAROL  G ") == name_key("Karol G")
    True
    """
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def casing_of(value: str) -> str:
    """"upper", "lower", "mixed", or "none" when it has no cased letter."""
    if value.isupper():
        return "upper"
    if value.islower():
        return "lower"
    return "mixed" if any(ch.isalpha() and ch.lower() != ch.upper() for ch in value) else "none"


def _year(text: str) -> int:
    year = int(text)
    if len(text) == 2:
        year += 2000 if year < TWO_DIGIT_YEAR_PIVOT else 1900
    return year


def decimal_duration(value: str) -> float | None:
    """The number in a plain decimal duration ("3.663", "215.5"), else None.

    >>> decimal_duration("3.663"), decimal_duration("3:40"), decimal_duration("215000")
    (3.663, None, None)
    """
    return float(value.strip()) if _DECIMAL.fullmatch(value.strip()) else None


def date_order_evidence(value: str) -> str | None:
    """The order an unambiguous numeric date proves, None if it proves none.

    >>> date_order_evidence("4/26/2024"), date_order_evidence("26.4.2024"), date_order_evidence("5/4/2024")
    ('mdy', 'dmy', None)
    """
    m = _NUMERIC_DATE.fullmatch(value.strip())
    if m is None:
        return None
    a, b = int(m.group(1)), int(m.group(2))
    if 1 <= a <= 12 < b <= 31:
        return MONTH_FIRST
    if 1 <= b <= 12 < a <= 31:
        return DAY_FIRST
    return None


def album_year_suffix(album: str) -> tuple[str, int] | None:
    """The album without a trailing "(YYYY)", and that year; None without one.

    >>> album_year_suffix("Elephunk (2003)"), album_year_suffix("1989 (Taylor's Version)")
    (('Elephunk', 2003), None)
    """
    m = _ALBUM_YEAR_SUFFIX.fullmatch(album)
    return (m.group("rest"), int(m.group("year"))) if m else None


def release_year(value: Any) -> int | None:
    """The one year a delivered release date names ("2003", "5/4/2003",
    2003-05-04), None when it names none or several.

    >>> release_year("2003-05-04"), release_year("5/4/03"), release_year(None)
    (2003, None, None)
    """
    if isinstance(value, datetime.date):
        return value.year
    if not isinstance(value, str):
        return None
    years = _YEAR.findall(value)
    return int(years[0]) if len(years) == 1 else None


def suffix_names_release_year(suffix_year: int, release_date: Any) -> bool:
    """Whether a "(YYYY)" suffix can be the record's release year: the record
    names no year, or names that one."""
    year = release_year(release_date)
    return year is None or year == suffix_year


@dataclass(frozen=True)
class SourceStats:
    """What one source's own records show."""

    day_first: int = 0
    month_first: int = 0
    upper: int = 0
    lower: int = 0
    mixed: int = 0
    decimal_small: int = 0  # decimal durations below DECIMAL_MINUTES_BELOW
    decimal_large: int = 0
    albums: int = 0  # album values with text
    album_year_suffix: int = 0  # of those, ending in "(YYYY)" (its release year, if it has one)

    def as_tuple(self) -> tuple[int, ...]:
        """The counts in field order."""
        return tuple(getattr(self, f.name) for f in fields(self))


@dataclass(frozen=True)
class DateResolution:
    """A date read with the source's convention, or why it was not."""

    date: datetime.date | None
    reason: str
    used_convention: bool = False


@dataclass(frozen=True)
class ProfileData:
    """The profile. ``artists``: name key -> {form: count}; ``titles``: artist
    name key -> title keys; ``sources``: source -> ``SourceStats``. Treat as
    read-only; build with ``build_profile``."""

    artists: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    sources: Mapping[str, SourceStats] = field(default_factory=dict)
    titles: Mapping[str, frozenset[str]] = field(default_factory=dict)

    # ------------------------------------------------------------------ queries

    def forms(self, name: str) -> list[tuple[str, int]]:
        """The forms of ``name``'s artist seen, most frequent first.

        >>> build_profile([("s", {"artist": "benny blanco"})] * 2).forms("Benny Blanco")
        [('benny blanco', 2)]
        """
        counts = self.artists.get(name_key(name), {})
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))

    def is_known_artist(self, name: str) -> bool:
        """Whether any form of ``name`` has been seen."""
        return name_key(name) in self.artists

    def is_official_form(self, name: str, *, min_count: int = MIN_FORM_COUNT,
                         min_share: float = MIN_FORM_SHARE) -> bool:
        """Whether ``name``, exactly as written, is one of its artist's official forms."""
        counts = self.artists.get(name_key(name))
        if not counts or name not in counts:
            return False
        total = sum(counts.values())
        return counts[name] >= min_count and counts[name] / total >= min_share

    def official_form(self, name: str) -> str | None:
        """The most frequent form of ``name``'s artist, if it is official."""
        forms = self.forms(name)
        if not forms or not self.is_official_form(forms[0][0]):
            return None
        return forms[0][0]

    def has_title(self, artist: str, title: str) -> bool:
        """Whether ``title`` has been delivered under ``artist`` (keys compared)."""
        return name_key(title) in self.titles.get(name_key(artist), ())

    def swap_evidence(self, title: str, artist: str) -> bool:
        """Whether the profile supports exchanging title and artist: the delivered
        title is a known artist, and the delivered artist is one of that artist's
        known titles, not a title of its own under the delivered artist.

        "Title is a known artist" alone is weak ("Queen" by Perfume Genius is a
        song): the pair must have been seen the other way round.

        >>> p = build_profile([("s", {"artist": "Troye Sivan", "title": "Rush"})])
        >>> p.swap_evidence("Troye Sivan", "Rush"), p.swap_evidence("Rush", "Troye Sivan")
        (True, False)
        """
        return self.has_title(title, artist) and not self.has_title(artist, title)

    def date_order(self, source: str, *, min_evidence: int = MIN_DATE_EVIDENCE,
                   min_agreement: float = MIN_DATE_AGREEMENT) -> str | None:
        """"dmy" or "mdy" when the source's unambiguous dates say so with confidence."""
        stats = self.sources.get(source)
        if stats is None:
            return None
        total = stats.day_first + stats.month_first
        if total < min_evidence:
            return None
        if stats.month_first / total >= min_agreement:
            return MONTH_FIRST
        if stats.day_first / total >= min_agreement:
            return DAY_FIRST
        return None

    def resolve_date(self, value: str, source: str) -> DateResolution:
        """Read an ambiguous numeric date ("5/4/2024") with the source's order.

        Only day/month ambiguity is resolved here; any other form is left to
        the date corrector. Without a confident order the date is not guessed.
        """
        m = _NUMERIC_DATE.fullmatch(value.strip())
        if m is None:
            return DateResolution(None, f"not a numeric day/month date: {value}")
        a, b, year = int(m.group(1)), int(m.group(2)), _year(m.group(3))
        order = self.date_order(source)
        if order is None:
            return DateResolution(None, f"ambiguous day and month, and source {source!r} "
                                        f"has no confident date order: {value}")
        month, day = (a, b) if order == MONTH_FIRST else (b, a)
        try:
            return DateResolution(datetime.date(year, month, day),
                                  f"read as {order} by source {source!r}'s convention", True)
        except ValueError:
            return DateResolution(None, f"not a calendar date as {order}: {value}")

    def duration_unit(self, source: str, *, min_evidence: int = MIN_UNIT_EVIDENCE,
                      min_agreement: float = MIN_UNIT_AGREEMENT) -> str | None:
        """"minutes" or "seconds" for the source's decimal durations, when its own
        decimals say so with confidence; None otherwise."""
        stats = self.sources.get(source)
        if stats is None:
            return None
        total = stats.decimal_small + stats.decimal_large
        if total < min_evidence:
            return None
        if stats.decimal_small / total >= min_agreement:
            return MINUTES
        if stats.decimal_large / total >= min_agreement:
            return SECONDS
        return None

    def appends_album_year(self, source: str, *, min_evidence: int = MIN_SUFFIX_EVIDENCE,
                           min_share: float = MIN_SUFFIX_SHARE) -> bool:
        """Whether the source, by its own records, appends "(YYYY)" to its albums."""
        stats = self.sources.get(source)
        if stats is None or stats.albums < min_evidence:
            return False
        return stats.album_year_suffix / stats.albums >= min_share

    def casing_shares(self, source: str) -> dict[str, float]:
        """Share of the source's text values in upper, lower and mixed case."""
        stats = self.sources.get(source, SourceStats())
        total = stats.upper + stats.lower + stats.mixed
        if total == 0:
            return {"upper": 0.0, "lower": 0.0, "mixed": 0.0}
        return {"upper": stats.upper / total, "lower": stats.lower / total,
                "mixed": stats.mixed / total}

    # ------------------------------------------------------------------ combine

    def merge(self, other: ProfileData) -> ProfileData:
        """The profile of both record sets (associative and commutative)."""
        builder = ProfileBuilder()
        builder.add(self)
        builder.add(other)
        return builder.build()

    # ------------------------------------------------------------------ serialise

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "artists": {k: dict(sorted(v.items())) for k, v in sorted(self.artists.items())},
            "sources": {k: {"day_first": s.day_first, "month_first": s.month_first,
                            "upper": s.upper, "lower": s.lower, "mixed": s.mixed,
                            "decimal_small": s.decimal_small, "decimal_large": s.decimal_large,
                            "albums": s.albums, "album_year_suffix": s.album_year_suffix}
                        for k, s in sorted(self.sources.items())},
            "titles": {k: sorted(v) for k, v in sorted(self.titles.items())},
        }

    def to_json(self) -> str:
        """Sorted, compact, ASCII-escaped JSON: equal profiles give equal bytes."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"),
                          ensure_ascii=True)

    @functools.cached_property
    def version(self) -> str:
        """"p-" and the first 16 hex digits of the JSON's SHA-256.

        Computed once per profile: serialising a catalog's profile takes a second or more,
        and every output record names the version.
        """
        return "p-" + hashlib.sha256(self.to_json().encode("ascii")).hexdigest()[:16]

    @classmethod
    def from_json(cls, text: str) -> ProfileData:
        data = json.loads(text)
        if data.get("format") != FORMAT:
            raise ValueError(f"profile format {data.get('format')!r}, expected {FORMAT}")
        return cls(
            artists={k: {f: int(c) for f, c in v.items()} for k, v in data["artists"].items()},
            sources={k: SourceStats(**{n: int(c) for n, c in v.items()})
                     for k, v in data["sources"].items()},
            titles={k: frozenset(v) for k, v in data["titles"].items()},
        )


# Where each of ``SourceStats``' counts sits in the list ``ProfileBuilder`` keeps per source.
_STAT = {f.name: i for i, f in enumerate(fields(SourceStats))}


class ProfileBuilder:
    """Adds profiles up in place: merging into an accumulator costs the size of what is added.

    ``ProfileData.merge`` copies both sides; folding a million one-record profiles into a
    growing profile that way costs the square of the catalog's size.
    """

    def __init__(self) -> None:
        self.artists: dict[str, dict[str, int]] = {}
        self.sources: dict[str, list[int]] = {}
        self.titles: dict[str, set[str]] = {}

    def add_record(self, source: str, track: Mapping[str, Any]) -> ProfileBuilder:
        """Adds what one record shows (its artist forms, date evidence, casing, album
        suffix, duration unit and title), with no one-record profile in between: a
        replay's profile pass does this for every event."""
        artist = track.get("artist")
        for name in [artist, *(track.get("featured_artists") or ())]:
            if isinstance(name, str) and name.strip():
                form = " ".join(name.split())
                bucket = self.artists.setdefault(name_key(form), {})
                bucket[form] = bucket.get(form, 0) + 1
        totals = self.sources.get(source)
        if totals is None:
            totals = self.sources[source] = [0] * len(_STAT)
        date = track.get("release_date")
        if isinstance(date, str):
            order = date_order_evidence(date)
            if order is not None:
                totals[_STAT["day_first" if order == DAY_FIRST else "month_first"]] += 1
        title, album = track.get("title"), track.get("album")
        for value in (title, album):
            if isinstance(value, str) and (casing := casing_of(value)) != "none":
                totals[_STAT[casing]] += 1
        if isinstance(album, str) and album.strip():
            totals[_STAT["albums"]] += 1
            suffix = album_year_suffix(album)
            if suffix is not None and suffix_names_release_year(suffix[1], date):
                totals[_STAT["album_year_suffix"]] += 1
        duration = track.get("duration_ms")
        if isinstance(duration, str) and (number := decimal_duration(duration)) is not None:
            totals[_STAT["decimal_small" if number < DECIMAL_MINUTES_BELOW else "decimal_large"]] += 1
        if isinstance(artist, str) and artist.strip() and isinstance(title, str) and title.strip():
            self.titles.setdefault(name_key(artist), set()).add(name_key(title))
        return self

    def add(self, profile: ProfileData) -> ProfileBuilder:
        for key, forms in profile.artists.items():
            bucket = self.artists.setdefault(key, {})
            for form, count in forms.items():
                bucket[form] = bucket.get(form, 0) + count
        for key, keys in profile.titles.items():
            self.titles.setdefault(key, set()).update(keys)
        for source, stats in profile.sources.items():
            counts = stats.as_tuple()
            totals = self.sources.setdefault(source, [0] * len(counts))
            for i, n in enumerate(counts):
                totals[i] += n
        return self

    def build(self) -> ProfileData:
        return ProfileData(artists={k: dict(v) for k, v in self.artists.items()},
                           sources={k: SourceStats(*v) for k, v in self.sources.items()},
                           titles={k: frozenset(v) for k, v in self.titles.items()})


def build_profile(records: Iterable[tuple[str, Mapping[str, Any]]]) -> ProfileData:
    """The profile of ``(source, raw track)`` pairs (one pass, counts added in place)."""
    builder = ProfileBuilder()
    for source, track in records:
        builder.add_record(source, track)
    return builder.build()
