"""Several malformations in one title, taken apart in one documented order.

A delivered title can carry a track number, the artist, a featured-artist
credit and an explicit tag at once: "06 - SONG TITLE (feat. X)",
"I Know [feat. Wiz Khalifa] [Explicit]". ``parse_title`` peels them off in
this order, each peel one ``Step`` (one audit entry downstream):

1. ``track_number_prefix``: a leading "06 - ", "6. ", "006-";
2. ``artist_in_title``: a leading "Artist - " when Artist is the track's artist;
3. ``album_in_title``: a trailing " (Album)" or " [Album]" when Album is the
   track's album (" - Album" is left: "Song - Title Track" is a real title form);
4. trailing tags, from the end inwards, until none is left:
   ``explicit_in_title`` ("[Explicit]", "(Clean Version)") and
   ``featured_in_title`` ("(feat. X)", "[ft. X & Y]", " feat. X").

Casing is not touched here: whether "SONG TITLE" is shouted or stylised is the
profile's and the model's question, asked on the title that is left.

    >>> p = parse_title("I Know [feat. Wiz Khalifa] [Explicit]")
    >>> p.title, p.featured_artists, p.explicit
    ('I Know', ('Wiz Khalifa',), True)
    >>> [s.error_class for s in p.steps]
    ['explicit_in_title', 'featured_in_title']

Featured names are split on ",", "&", "and", "x" between names is not a
separator (it is part of names such as "Lil Nas X"), and a leading "with",
"feat." or "&" on a name goes::

    >>> split_featured("Don Toliver & with Future")
    ('Don Toliver', 'Future')

Conflicting evidence has fixed rules (``resolve_explicit``, ``merge_featured``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

TRACK_NUMBER_PREFIX = "track_number_prefix"
ARTIST_IN_TITLE = "artist_in_title"
ALBUM_IN_TITLE = "album_in_title"
EXPLICIT_IN_TITLE = "explicit_in_title"
FEATURED_IN_TITLE = "featured_in_title"

_FEAT_WORD = r"(?:feat\.?|ft\.?|featuring)"
_TRACK_PREFIX = re.compile(
    r"^(?P<n>[0-9]{1,3})(?:\s+[-–]\s*|[-–]\s+|[-–.](?=[^\W\d_])|\.\s+|\s+(?=[^\W\d_]))(?P<rest>\S.*)$"
)
_EXPLICIT_TAG = re.compile(
    r"\s*[\(\[]\s*(?P<kind>explicit|clean|edited)(?:\s+(?:album\s+)?version)?\s*[\)\]]\s*$",
    re.IGNORECASE,
)
_FEAT_BRACKETED = re.compile(rf"\s*[\(\[]\s*{_FEAT_WORD}\s+(?P<names>[^\(\)\[\]]+?)\s*[\)\]]\s*$",
                             re.IGNORECASE)
# Unbracketed, only "feat."/"ft." with their dot or "featuring", followed by a name:
# a bare "Feat" is also a word of names ("Little Feat - La Ley De La Vida").
_FEAT_TRAILING = re.compile(r"\s+[-–]?\s*(?:feat\.|ft\.|featuring)\s+(?P<names>[^\W_][^\(\)\[\]]*?)\s*$",
                            re.IGNORECASE)
# A bracketed credit with a version after it, to the end: "Say My Name (feat. Zyra) - RAC
# Mix", "All Eyez (feat. Jeremih) [Bonus Track]". The credit goes, the version stays.
_FEAT_BEFORE_VERSION = re.compile(
    rf"\s*[\(\[]\s*{_FEAT_WORD}\s+(?P<names>[^\(\)\[\]]+?)\s*[\)\]]"
    r"(?P<tail>(?:\s+[-–—]\s+[^\s\(\)\[\]][^\(\)\[\]]*|\s*[\(\[][^\(\)\[\]]+[\)\]])+)$",
    re.IGNORECASE)
_NAME_SEPARATOR = re.compile(r"\s*(?:,|&|\band\b|\+)\s*", re.IGNORECASE)
_NAME_LEAD = re.compile(rf"^(?:(?:with|{_FEAT_WORD}|&|and)\s+)+", re.IGNORECASE)
_SEPARATORS = (" - ", " – ", " — ")
# Each pass of the tag loop: the bracketed tags need the title to end in a
# bracket (``\s`` and ``str.isspace`` are the same set), the trailing credit
# needs its word.
_CLOSING = (")", "]")
_FEAT_TRAILING_WORD = re.compile(r"feat\.|ft\.|featuring", re.IGNORECASE)
_SPACED_SEPARATOR = re.compile(r"\s+[-–.]|\.\s")
# What a streaming service writes after "Song - ": a version ("Short Mix", "2015
# Remaster", "Tom Wilson Remix") or a credit. Left after "Eve - ", it says the head is a
# self-titled song's name, not the artist put before the title.
_VERSION_ONLY = re.compile(
    r"^(?:[^\W_][\w'.&!]*\s+){0,4}(?:re-?mix(?:es)?|mix|edit|version|remaster(?:ed)?|live|"
    r"acoustic|instrumental|demo|mono|stereo)(?:\s+\d{4})?$|^(?:feat\.|ft\.|featuring)\s",
    re.IGNORECASE)
# A tag or credit taken off the end can leave the separator that stood before it: "Go
# Getta - (Explicit)".
_DANGLING_SEPARATOR = re.compile(r"\s+[-–—]$")


@dataclass(frozen=True)
class Step:
    """One malformation taken out of the title: the title before and after."""

    error_class: str
    before: str
    after: str


@dataclass(frozen=True)
class TitleParse:
    """What ``parse_title`` found. ``title`` is what is left; ``steps`` is the
    order the fixes were made in. ``reason`` is set when the title cannot be
    taken apart safely (it would become empty, or the tags contradict)."""

    title: str
    featured_artists: tuple[str, ...] = ()
    explicit: bool | None = None
    track_number: int | None = None
    steps: tuple[Step, ...] = ()
    reason: str = ""


def split_featured(names: str, is_known: Callable[[str], bool] | None = None
                   ) -> tuple[str, ...]:
    """Featured-artist names out of a credit ("A, B & C", "A & with B").

    A part that ``is_known`` recognises as one artist (a profile lookup) is
    kept whole even if it holds a separator: "Tyler, The Creator".

    >>> split_featured("Tyler, The Creator & Kali Uchis", lambda n: n == "Tyler, The Creator")
    ('Tyler, The Creator', 'Kali Uchis')
    """
    text = _NAME_LEAD.sub("", names.strip())
    if is_known is not None and is_known(text):
        return (text,)
    parts = [p for p in _NAME_SEPARATOR.split(text)]
    out: list[str] = []
    i = 0
    while i < len(parts):
        # The longest run of parts that is one known name, joined as written.
        taken = 1
        if is_known is not None:
            for j in range(len(parts), i + 1, -1):
                joined = _joined(text, parts[i:j])
                if joined is not None and is_known(joined):
                    out.append(joined)
                    taken = j - i
                    break
            else:
                taken = 0
        if taken == 0 or is_known is None:
            taken = 1
            name = _NAME_LEAD.sub("", parts[i]).strip()
            if name:
                out.append(name)
        i += taken
    return tuple(dict.fromkeys(out))


def _joined(text: str, parts: list[str]) -> str | None:
    """The stretch of ``text`` from ``parts[0]`` to ``parts[-1]`` as written."""
    start = text.find(parts[0])
    end = text.find(parts[-1], start + len(parts[0]))
    if start < 0 or end < 0:
        return None
    return text[start:end + len(parts[-1])]


def _strip_artist(title: str, artist: str | None) -> str | None:
    if not artist or not artist.strip():
        return None
    for sep in _SEPARATORS:
        head = artist.strip() + sep
        if title[:len(head)].casefold() == head.casefold():
            return title[len(head):]
    return None


def _album_starts_with_number(number: str, album: str | None) -> bool:
    """The album's name begins with this number: a single and its remixes ("911 (Tom
    Wilson Remix)"), where the title's number is the song's name, not its position.

    >>> _album_starts_with_number("47", "47 (Remix)"), _album_starts_with_number("4", "47 (Remix)")
    (True, False)
    """
    lead = (album or "").strip()
    return lead.startswith(number) and not lead[len(number):len(number) + 1].isalnum()


def _head_is_the_song(title: str, rest: str, album: str | None) -> bool:
    """After "Head - ", only a version or a credit follows ("Captain Jack - Short Mix",
    "Eve - feat. Miss Kitty"), or the release carries the same name: then the head is
    a self-titled song's name, not an artist put before the title.

    >>> _head_is_the_song("Bad Company - 2015 Remaster", "2015 Remaster", "Bad Company")
    True
    >>> _head_is_the_song("Bad Company - Can't Get Enough", "Can't Get Enough", "Bad Company")
    False
    """
    return (_VERSION_ONLY.match(rest.strip()) is not None
            or (album is not None and title.casefold() == album.strip().casefold()))


def _strip_album(title: str, album: str | None) -> str | None:
    # Both suffixes end in a bracket, and no character casefolds into one.
    if not album or title[-1:] not in _CLOSING or not album.strip():
        return None
    name = album.strip().casefold()
    folded = title.casefold()
    if folded == name:
        return None
    for suffix in (f" ({name})", f" [{name}]"):
        if folded.endswith(suffix) and len(title) > len(suffix):
            return title[:len(title) - len(suffix)]
    return None


def may_have_parts(title: str) -> bool:
    """False when no step of ``parse_title`` can match ``title``, whatever the
    artist and album: then it finds nothing.

    >>> may_have_parts("Song - Radio Edit"), may_have_parts("Song-Title (Live) Again")
    (True, False)
    """
    # What every step needs at least one of: a leading ASCII digit (the track
    # number), an artist separator, a closing bracket ending the title (album,
    # bracketed tags: the title's own end or, once a prefix is off, a stripped
    # stretch up to it), "feat."/"ft."/"featuring" (the trailing credit; it holds
    # a "." or an "ng" in some case, and only n/N, g/G match those letters).
    return ("0" <= title[:1] <= "9"
            or " - " in title or " – " in title or " — " in title
            or title.rstrip()[-1:] in _CLOSING
            or (("." in title or "ng" in title.lower())
                and _FEAT_TRAILING_WORD.search(title) is not None))


def may_start_with_artist(title: str) -> bool:
    """False when ``title`` holds none of the artist separators: then no artist
    is taken off it, and ``parse_title`` finds the same whatever the artist.

    >>> may_start_with_artist("Adele - Hello"), may_start_with_artist("Hello (Live)")
    (True, False)
    """
    return any(sep in title for sep in _SEPARATORS)


def parse_title(title: str, artist: str | None = None,
                is_known: Callable[[str], bool] | None = None,
                album: str | None = None) -> TitleParse:
    """Take every malformation out of ``title`` in the documented order.

    >>> p = parse_title("06 - SONG TITLE (feat. X)")
    >>> p.title, p.track_number, p.featured_artists
    ('SONG TITLE', 6, ('X',))
    >>> parse_title("99 Luftballons").steps
    ()
    """
    if not may_have_parts(title):
        # Nothing any step matches can be there (the cost budget: most titles stop here).
        return TitleParse(title=title)
    steps: list[Step] = []
    rest = title
    track_number = None
    m = _TRACK_PREFIX.match(rest)
    # "99 Luftballons", "7 Years", "4-Ever", "0 To 100": a bare number glued to a word or
    # followed by a space is a real title; only a zero-padded number ("06"), or one set
    # apart by a spaced separator ("6 - ", "6. "), is a prefix, unless the album starts
    # with the same number ("911 - Tom Wilson Remix" on "911 (Tom Wilson Remix)").
    if m is not None and (len(m.group("n")) > 1 and m.group("n").startswith("0")
                          or _SPACED_SEPARATOR.match(rest, len(m.group("n"))) is not None) \
            and not _album_starts_with_number(m.group("n"), album):
        after = m.group("rest").strip()
        steps.append(Step(TRACK_NUMBER_PREFIX, rest, after))
        track_number = int(m.group("n")) or None
        rest = after
    stripped = _strip_artist(rest, artist)
    if stripped is not None and stripped.strip() and not _head_is_the_song(rest, stripped, album):
        steps.append(Step(ARTIST_IN_TITLE, rest, stripped.strip()))
        rest = stripped.strip()
    without_album = _strip_album(rest, album)
    if without_album is not None and without_album.strip():
        steps.append(Step(ALBUM_IN_TITLE, rest, without_album.strip()))
        rest = without_album.strip()
    featured: list[str] = []
    kinds: set[str] = set()
    while True:
        closes = rest.rstrip()[-1:] in _CLOSING
        if closes and (m := _EXPLICIT_TAG.search(rest)) is not None and m.start() > 0:
            kinds.add(m.group("kind").lower())
            after = _DANGLING_SEPARATOR.sub("", rest[:m.start()].rstrip())
            steps.append(Step(EXPLICIT_IN_TITLE, rest, after))
            rest = after
            continue
        credited = _FEAT_TRAILING_WORD.search(rest) is not None
        m = ((_FEAT_BRACKETED.search(rest) if closes else None)
             or (_FEAT_TRAILING.search(rest) if credited else None)
             or (_FEAT_BEFORE_VERSION.search(rest) if credited else None))
        if m is not None and m.start() > 0:
            featured.extend(split_featured(m.group("names"), is_known))
            # A credit before a version leaves the version ("tail") where it was.
            tail = (m.groupdict().get("tail") or "").rstrip()
            after = _DANGLING_SEPARATOR.sub("", rest[:m.start()].rstrip()) + tail
            steps.append(Step(FEATURED_IN_TITLE, rest, after))
            rest = after
            continue
        break
    reason = ""
    if "explicit" in kinds and len(kinds) > 1:
        reason = "the title says both explicit and clean"
    explicit = None if not kinds or reason else "explicit" in kinds
    return TitleParse(title=rest, featured_artists=tuple(dict.fromkeys(featured)),
                      explicit=explicit, track_number=track_number, steps=tuple(steps),
                      reason=reason)


@dataclass(frozen=True)
class ExplicitDecision:
    """The explicit flag to write, and whether a person must look (``flag``)."""

    value: bool | None
    changed: bool
    flag: bool
    rule: str


def resolve_explicit(tag: bool | None, delivered: bool | None) -> ExplicitDecision:
    """The documented rule when the title's tag and the explicit field disagree.

    * An "[Explicit]" tag wins over ``explicit: false``: labels add the tag
      because the track is explicit, and a false flag is the common slip. The
      flag becomes true (an audit entry records it).
    * A "[Clean]"/"(Edited)" tag against ``explicit: true`` is flagged: a clean
      edit and an explicit original are different recordings, and which one
      this is cannot be told from the record.
    * No tag, or agreement: the delivered value stands (filled from the tag
      when the field is empty).

    >>> resolve_explicit(True, False)
    ExplicitDecision(value=True, changed=True, flag=False, rule='explicit tag wins over explicit=false')
    >>> resolve_explicit(False, True).flag
    True
    """
    if tag is None:
        return ExplicitDecision(delivered, False, False, "no tag")
    if delivered is None:
        return ExplicitDecision(tag, True, False, "filled from the title's tag")
    if tag == delivered:
        return ExplicitDecision(delivered, False, False, "tag and field agree")
    if tag:
        return ExplicitDecision(True, True, False, "explicit tag wins over explicit=false")
    return ExplicitDecision(delivered, False, True,
                            "clean/edited tag against explicit=true: a person decides")


def _name_key(name: str) -> str:
    return " ".join(name.casefold().split())


def merge_featured(existing: Iterable[str], found: Iterable[str]) -> tuple[str, ...]:
    """``existing`` featured artists plus the ones ``found`` in the title that
    are not already there (compared without case and spacing). A "(feat. X)"
    repeating an artist already listed adds nothing, and the credit still
    leaves the title.

    >>> merge_featured(["Wiz Khalifa"], ["wiz  khalifa", "Future"])
    ('Wiz Khalifa', 'Future')
    """
    out = list(dict.fromkeys(existing))
    seen = {_name_key(n) for n in out}
    for name in found:
        if _name_key(name) not in seen:
            seen.add(_name_key(name))
            out.append(name)
    return tuple(out)
