"""Seed tracks for training and evaluation, and the split by seed record.

A seed is one clean canonical track. ``model/training/corrupt.py`` makes malformed
(and legitimately odd-looking) copies of seeds; the model learns to tell them
apart. Three sources, in ``data_dir`` (by default ``DEFAULT_DATA_DIR``:
``shared/data/catalog`` in the folder beside the repository, ``../shared``):

* ``chinook_tracks.csv`` (Chinook sample DB, from a real iTunes library):
  title, artist, album, genre and duration are real. Video rows are dropped.
* ``msd_subset_unique_tracks.txt`` (Million Song Dataset subset): title and
  artist are real; there is no album, genre or duration.
* ``CURATED``, in this module: real artists and titles whose legitimate form
  looks like an error (stylised case "HUMBLE.", "deadmau5", "bad guy"; titles
  starting with numbers or brackets; "Little Feat"; " - Remastered" suffixes).
  They become seeds like any other, so they are split by entry too.

**Synthesised fields.** What the files lack is derived from a hash of a stable
key, so it is the same on every run and machine, and is plausible rather than
true: ISRC (registered country + 3-character registrant + 2-digit year of the
release date + 5 digits, valid for ``stdnum.isrc``), 12-digit UPC with a
correct check digit (about half start with "0", as US UPCs do), release date
(1960-2025), explicit flag (12 %; 40 % for Hip Hop), language ("pt" for
Chinook's Brazilian Latin / Bossa Nova, otherwise mostly "en"), and for MSD
rows the genre (uniform over ``fields.GENRES``), duration (2:30-5:30) and track
number. Chinook tracks of one album share the album-level values (UPC, release
date, registrant) and get their track number from their order in the album.
MSD rows have no album: 30 % are treated as singles (album = title), the rest
have album None. Chinook's store genres are mapped onto ``fields.GENRES`` with
the genre corrector's table.

**Seeds that are not clean are excluded, not repaired.** The data contains
real malformations. A seed labelled "clean" whose title actually carries
"(feat. X)" would teach the model the opposite of what it must learn, and
repairing it would mean guessing the canonical value. So a row is dropped if
its title, artist or album:

* is blank; contains control characters, mojibake or HTML entities; has
  leading, trailing or doubled spaces or NBSP; contains "_" (underscores where
  commas were, in MSD);
* has a featured-artist credit ("feat.", "ft.", "featuring") in title or
  artist; has an explicit/clean/edited marker in brackets in the title;
* starts with something the track-number or artist-in-title correctors would
  strip ("01 - Prowler", "1. Allegro", "Olodum - Alegria Geral" by Olodum);
* is shouted: all upper case with a word of five or more letters ("THE
  CHIFFONS"; short acronyms such as "NOFX", "RUN-DMC", "UFO" are kept); or is
  all lower case ("winning friends").

Version suffixes such as "(Album Version)" or "(1993 Digital Remaster)" are
kept: they are no error class of ``fields.py`` and a corrector must leave them.
``read_seeds`` returns the counts of kept and excluded rows per reason.

    >>> load = read_seeds(DEFAULT_DATA_DIR)
    >>> train, val, test = split_seeds(load.seeds, seed=0)
    >>> len(train) > len(val) > 0
    True
"""

from __future__ import annotations

import csv
import datetime
import hashlib
import html
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stdnum import ean

from transforms import correctors
from transforms.fields import GENRES

# The repository sits next to the shared folder (work/main, work/shared); CI lays it out the same way.
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "catalog"
CHINOOK_FILE = "chinook_tracks.csv"
MSD_FILE = "msd_subset_unique_tracks.txt"
MSD_SEPARATOR = "<SEP>"

# Real tracks whose correct form looks malformed to a naive check. Artists and
# titles as the artists publish them.
CURATED: tuple[tuple[str, str], ...] = (
    # Stylised upper case.
    ("Kendrick Lamar", "HUMBLE."), ("Kendrick Lamar", "DNA."), ("Kendrick Lamar", "LOYALTY."),
    ("Kendrick Lamar", "ELEMENT."), ("Kendrick Lamar", "XXX."), ("Kendrick Lamar", "FEAR."),
    ("Kendrick Lamar", "PRIDE."), ("Kendrick Lamar", "DUCKWORTH."),
    ("Tommy Richman", "MILLION DOLLAR BABY"), ("Travis Scott", "SICKO MODE"),
    ("Travis Scott", "HIGHEST IN THE ROOM"), ("Tyler, The Creator", "EARFQUAKE"),
    ("Tyler, The Creator", "NEW MAGIC WAND"), ("Lil Nas X", "MONTERO (Call Me By Your Name)"),
    ("Lil Nas X", "INDUSTRY BABY"), ("XXXTENTACION", "SAD!"), ("Kanye West", "POWER"),
    ("Kanye West", "FML"), ("Beyoncé", "XO"), ("Beyoncé", "BREAK MY SOUL"),
    ("Beyoncé", "CUFF IT"), ("Beyoncé", "ALIEN SUPERSTAR"), ("J. Cole", "MIDDLE CHILD"),
    ("Joji", "SLOW DANCING IN THE DARK"), ("Cardi B", "WAP"), ("DaBaby", "BOP"),
    ("KAYTRANADA", "GLOWED UP"), ("ROSALÍA", "MALAMENTE"), ("ROSALÍA", "DESPECHÁ"),
    ("BLACKPINK", "DDU-DU DDU-DU"), ("BLACKPINK", "Kill This Love"), ("BTS", "DNA"),
    ("BTS", "Dynamite"), ("LANY", "ILYSB"), ("ABBA", "SOS"), ("ABBA", "Dancing Queen"),
    ("Rihanna", "SOS"), ("Village People", "Y.M.C.A."), ("Taylor Swift", "ME!"),
    ("A$AP Rocky", "L$D"), ("Michael Jackson", "P.Y.T. (Pretty Young Thing)"),
    ("Wu-Tang Clan", "C.R.E.A.M."), ("AC/DC", "T.N.T."), ("AC/DC", "Back in Black"),
    ("MGMT", "Electric Feel"), ("MGMT", "Kids"), ("CHVRCHES", "The Mother We Share"),
    ("AURORA", "Runaway"), ("SZA", "Good Days"), ("SZA", "Kill Bill"), ("MØ", "Final Song"),
    ("BØRNS", "Electric Love"), ("KISS", "Rock and Roll All Nite"),
    ("INXS", "Need You Tonight"), ("UB40", "Red Red Wine"), ("TLC", "No Scrubs"),
    ("MIKA", "Grace Kelly"), ("RÜFÜS DU SOL", "Innerbloom"), ("LMFAO", "Party Rock Anthem"),
    ("MF DOOM", "Rhymes Like Dimes"), ("U2", "With or Without You"),
    ("R.E.M.", "Losing My Religion"), ("N.W.A", "Straight Outta Compton"),
    ("t.A.T.u.", "All the Things She Said"), ("FKA twigs", "Two Weeks"),
    ("Ke$ha", "TiK ToK"), ("P!nk", "So What"), ("OutKast", "Hey Ya!"),
    ("Bruce Springsteen", "Born in the U.S.A."), ("Nas", "N.Y. State of Mind"),
    # Stylised lower case.
    ("Kendrick Lamar", "m.A.A.d city"), ("Kendrick Lamar", "i"), ("deadmau5", "Strobe"),
    ("deadmau5", "Ghosts 'n' Stuff"), ("k.d. lang", "Constant Craving"),
    ("will.i.am", "Scream & Shout"), ("will.i.am", "This Is Love"), ("alt-J", "Breezeblocks"),
    ("bbno$", "Lalala"), ("bbno$", "edamame"), ("blink-182", "All the Small Things"),
    ("blink-182", "What's My Age Again?"), ("twenty one pilots", "Stressed Out"),
    ("twenty one pilots", "Heathens"), ("girl in red", "we fell in love in october"),
    ("iann dior", "emotions"), ("Billie Eilish", "bad guy"),
    ("Billie Eilish", "everything i wanted"), ("Billie Eilish", "when the party's over"),
    ("Billie Eilish", "bury a friend"), ("Billie Eilish", "ocean eyes"),
    ("Ariana Grande", "7 rings"), ("Ariana Grande", "thank u, next"),
    ("Ariana Grande", "positions"), ("Taylor Swift", "cardigan"), ("Taylor Swift", "exile"),
    ("Post Malone", "rockstar"), ("Travis Scott", "goosebumps"), ("blackbear", "idfc"),
    ("gnash", "i hate u, i love u"), ("lovelytheband", "broken"), ("a-ha", "Take On Me"),
    ("The xx", "Intro"), ("bôa", "Duvet"),
    # Numbers at the start of a real title, or a number as the artist.
    ("Nena", "99 Luftballons"), ("Lukas Graham", "7 Years"),
    ("The Smashing Pumpkins", "1979"), ("Prince", "1999"), ("Taylor Swift", "22"),
    ("Green Day", "21 Guns"), ("Paul Simon", "50 Ways to Leave Your Lover"),
    ("Dolly Parton", "9 to 5"), ("Chicago", "25 or 6 to 4"), ("Madonna", "4 Minutes"),
    ("Jay-Z", "99 Problems"), ("Arctic Monkeys", "505"), ("Bruno Mars", "24K Magic"),
    ("Matchbox Twenty", "3AM"), ("Spice Girls", "2 Become 1"), ("Radiohead", "15 Step"),
    ("Radiohead", "2 + 2 = 5"), ("U2", "40"), ("The Cure", "10:15 Saturday Night"),
    ("Prince", "Nothing Compares 2 U"), ("Prince", "I Would Die 4 U"),
    ("Britney Spears", "I'm a Slave 4 U"), ("50 Cent", "In da Club"), ("311", "Amber"),
    ("3 Doors Down", "Kryptonite"), ("10cc", "I'm Not in Love"),
    ("38 Special", "Hold On Loosely"),
    # Brackets that belong to the title.
    ("The Rolling Stones", "(I Can't Get No) Satisfaction"),
    ("Simple Minds", "Don't You (Forget About Me)"),
    ("Elvis Presley", "(Let Me Be Your) Teddy Bear"),
    ("Bryan Adams", "(Everything I Do) I Do It for You"),
    ("Otis Redding", "(Sittin' On) The Dock of the Bay"),
    ("Lauryn Hill", "Doo Wop (That Thing)"),
    # "Feat" as an ordinary word.
    ("Little Feat", "Dixie Chicken"), ("Little Feat", "Willin'"),
    ("Little Feat", "Feats Don't Fail Me Now"), ("Little Feat", "Fat Man in the Bathtub"),
    # " - " inside the real title: movements and reissue suffixes.
    ("Berliner Philharmoniker", "Symphony No. 5 - I. Allegro con brio"),
    ("The Beatles", "Let It Be - Remastered 2009"),
    ("Queen", "Bohemian Rhapsody - Remastered 2011"),
    ("Oasis", "Wonderwall - Remastered"), ("Fleetwood Mac", "Dreams - 2004 Remaster"),
)

# Chinook media types that are not audio.
_VIDEO = "video"
_ISRC_COUNTRIES = ("US", "GB", "DE", "FR", "BR", "SE", "JP", "NL", "CA", "AU", "ES", "IT")
_REGISTRANT_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_OTHER_LANGUAGES = ("es", "de", "fr", "it", "pt", "sv", "ja")
_FIRST_DAY = datetime.date(1960, 1, 1).toordinal()
_LAST_DAY = datetime.date(2025, 12, 31).toordinal()


@dataclass(frozen=True)
class Seed:
    """One clean canonical track.

    ``track`` has the typed values of the CorrectedRecord ``track`` record
    (release_date a ``datetime.date``, duration_ms and track_number ints,
    explicit a bool); ``text`` has the same values as canonical wire strings
    (ISO date, integer milliseconds, "true"/"false"). Treat both as read-only.
    ``group`` is the split key: the same song (artist + title) on several
    releases stays in one split.
    """

    seed_id: str
    source: str  # "chinook", "msd" or "curated"
    track: dict[str, Any]
    text: dict[str, Any]
    track_total: int  # tracks on the release, for "3/12" track numbers
    group: str


@dataclass(frozen=True)
class SeedLoad:
    seeds: list[Seed]
    kept: Counter[str]  # source -> seeds kept
    excluded: Counter[tuple[str, str]]  # (source, reason) -> rows dropped


def _digest(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big")


def _pick(key: str, options: Sequence[Any]) -> Any:
    return options[_digest(key) % len(options)]


def _fraction(key: str) -> float:
    return _digest(key) / 2**64


def _synth_upc(key: str) -> str:
    body = str(_digest("upc:" + key) % 10**11).zfill(11)
    if _fraction("upc-zero:" + key) < 0.5:
        body = "0" + body[1:]
    return body + ean.calc_check_digit(body)


def _synth_date(key: str) -> datetime.date:
    return datetime.date.fromordinal(_FIRST_DAY + _digest("date:" + key) % (_LAST_DAY - _FIRST_DAY + 1))


def _synth_isrc(release_key: str, track_key: str, year: int) -> str:
    registrant = "".join(_pick(f"registrant:{release_key}:{i}", _REGISTRANT_CHARS)
                         for i in range(3))
    number = _digest("isrc:" + track_key) % 100_000
    return f"{_pick('country:' + release_key, _ISRC_COUNTRIES)}{registrant}{year % 100:02d}{number:05d}"


def _synth_language(key: str, genre: str, source: str) -> str:
    if source == "chinook" and genre in ("Latin", "Bossa Nova"):
        return "pt"
    if _fraction("language:" + key) < 0.85:
        return "en"
    return _pick("language-other:" + key, _OTHER_LANGUAGES)


def _synth_explicit(key: str, genre: str) -> bool:
    return _fraction("explicit:" + key) < (0.40 if genre == "Hip Hop" else 0.12)


_WORD = re.compile(r"[^\W\d_]+")


def _malformation(value: str, *, title: str | None = None, artist: str | None = None) -> str | None:
    """Why a title/artist/album from the data is not a clean canonical value."""
    if not value.strip():
        return "blank"
    if any(unicodedata.category(ch) in ("Cc", "Cf") for ch in value):
        return "control_chars"
    if correctors.fix_mojibake(value).value != value:
        return "mojibake"
    if html.unescape(value) != value:
        return "html_entity"
    if " ".join(value.split()) != value:
        return "whitespace"
    if "_" in value:
        return "underscore"
    if re.search(r"\b(?:feat\.?|ft\.?|featuring)(?:\s|$)", value, re.IGNORECASE):
        return "featured_credit"
    if value.isupper() and any(len(w) >= 5 for w in _WORD.findall(value)):
        return "shouted"
    if value.islower():
        return "lower_case"
    if title is not None:  # checks that only concern the title
        if re.search(r"[\(\[][^\)\]]*\b(?:explicit|clean|edited|amended)\b", value, re.IGNORECASE):
            return "explicit_marker"
        if (re.match(r"\d{1,2}\s*[-.]\s+", value)
                or correctors.strip_track_number(value).value != value):
            return "track_number_prefix"
        if artist and correctors.strip_artist_prefix(value, artist).value != value:
            return "artist_in_title"
    return None


def _track(title: str, artist: str, album: str | None, genre: str, duration_ms: int,
           track_number: int, release_key: str, track_key: str, source: str) -> dict[str, Any]:
    release_date = _synth_date(release_key)
    return {
        "title": title,
        "artist": artist,
        "featured_artists": [],
        "album": album,
        "isrc": _synth_isrc(release_key, track_key, release_date.year),
        "upc": _synth_upc(release_key),
        "release_date": release_date,
        "duration_ms": duration_ms,
        "genre": genre,
        "explicit": _synth_explicit(track_key, genre),
        "track_number": track_number,
        "language": _synth_language(track_key, genre, source),
    }


def seed_text(track: dict[str, Any]) -> dict[str, Any]:
    """The canonical wire strings of a typed track."""
    text: dict[str, Any] = {}
    for name, value in track.items():
        if name == "featured_artists":
            text[name] = list(value)
        elif value is None:
            text[name] = None
        elif isinstance(value, bool):
            text[name] = "true" if value else "false"
        elif isinstance(value, datetime.date):
            text[name] = value.isoformat()
        else:
            text[name] = str(value)
    return text


def _seed(seed_id: str, source: str, track: dict[str, Any], track_total: int) -> Seed:
    group = f"{track['artist'].casefold()}|{track['title'].casefold()}"
    return Seed(seed_id=seed_id, source=source, track=track, text=seed_text(track),
                track_total=track_total, group=group)


def _chinook(path: Path, excluded: Counter[tuple[str, str]]) -> list[Seed]:
    with path.open(encoding="utf-8", newline="") as f:
        rows = []
        for row in csv.DictReader(f):
            if _VIDEO in row["mediatype"].lower():
                excluded[("chinook", "video")] += 1
            else:
                rows.append(row)
    albums: dict[tuple[str, str], list[dict[str, str]]] = {}
    for row in sorted(rows, key=lambda r: int(r["TrackId"])):
        albums.setdefault((row["artist"], row["album"]), []).append(row)
    seeds = []
    for (artist, album), tracks in albums.items():
        release_key = f"chinook-album:{artist}|{album}"
        for number, row in enumerate(tracks, start=1):
            title = row["track"]
            reason = (_malformation(title, title=title, artist=artist)
                      or _malformation(artist) or _malformation(album))
            genre = correctors.canonical_genre(row["genre"])
            if reason is None and genre is None:
                reason = "unmapped_genre"
            if reason is not None:
                excluded[("chinook", reason)] += 1
                continue
            seed_id = f"chinook:{row['TrackId']}"
            track = _track(title, artist, album, genre, int(row["Milliseconds"]), number,
                           release_key, seed_id, "chinook")
            seeds.append(_seed(seed_id, "chinook", track, len(tracks)))
    return seeds


def _msd(path: Path, excluded: Counter[tuple[str, str]]) -> list[Seed]:
    seeds = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            track_id, _, artist, title = line.rstrip("\n").split(MSD_SEPARATOR)
            reason = _malformation(title, title=title, artist=artist) or _malformation(artist)
            if reason is not None:
                excluded[("msd", reason)] += 1
                continue
            seeds.append(_synth_seed(f"msd:{track_id}", "msd", artist, title))
    return seeds


def _synth_seed(seed_id: str, source: str, artist: str, title: str) -> Seed:
    """A seed with everything but artist and title synthesised from its id."""
    genre = _pick("genre:" + seed_id, GENRES)
    album = title if _fraction("single:" + seed_id) < 0.3 else None
    total = 8 + _digest("total:" + seed_id) % 9
    number = 1 + _digest("number:" + seed_id) % total
    duration = 150_000 + _digest("duration:" + seed_id) % 180_000
    track = _track(title, artist, album, genre, duration, number, seed_id, seed_id, source)
    return _seed(seed_id, source, track, total)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", unicodedata.normalize("NFKD", text).casefold()).strip("-")


def _curated() -> list[Seed]:
    return [_synth_seed(f"curated:{_slug(artist)}:{_slug(title)}", "curated", artist, title)
            for artist, title in CURATED]


def read_seeds(data_dir: str | Path) -> SeedLoad:
    """Load the seeds with the count of rows kept and excluded (and why)."""
    root = Path(data_dir)
    excluded: Counter[tuple[str, str]] = Counter()
    seeds = _chinook(root / CHINOOK_FILE, excluded) + _msd(root / MSD_FILE, excluded) + _curated()
    kept = Counter(s.source for s in seeds)
    return SeedLoad(seeds=seeds, kept=kept, excluded=excluded)


def load_seeds(data_dir: str | Path) -> list[Seed]:
    """All clean seeds from ``data_dir`` plus the curated look-alikes."""
    return read_seeds(data_dir).seeds


def split_seeds(seeds: Iterable[Seed], seed: int = 0,
                fractions: tuple[float, ...] = (0.8, 0.1, 0.1)) -> tuple[list[Seed], ...]:
    """Split seeds into len(fractions) parts (train, validation, test).

    The part is chosen from a hash of ``seed`` and the seed's ``group``, so a
    seed record (and every copy made from it, and every re-release of the same
    song) is in exactly one part, whatever else is in the list.
    """
    if any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-9:
        raise ValueError(f"fractions must be non-negative and sum to 1, got {fractions}")
    bounds = []
    total = 0.0
    for f in fractions:
        total += f
        bounds.append(total)
    parts: tuple[list[Seed], ...] = tuple([] for _ in fractions)
    for s in seeds:
        u = _fraction(f"split:{seed}:{s.group}")
        index = next((i for i, b in enumerate(bounds) if u < b), len(bounds) - 1)
        parts[index].append(s)
    return parts
