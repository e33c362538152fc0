"""Real catalog records (``../shared/data/real/``) as metafix tracks, with ground truth.

These records were not generated here, so they are what the model and the
policy are judged on. Four loaders, one per data set, each returning
``RealRecord`` objects:

* ``load_spotify``: clean tracks as Spotify publishes them (stylisation such
  as "KAROL G" or "benny blanco" included). Every value is right by
  definition: ``truth`` equals the delivered track, ``labels`` is empty.
* ``load_musicbrainz``: the MusicBrainz 20K benchmark, five sources with their
  own formats and injected malformations. The canonical value of a field is
  voted per cluster (``CID``) across the sources, after undoing each
  source's known wrapping (see ``musicbrainz_truth``); a value is labelled
  with the malformation that separates it from the canonical one.
* ``load_discogs``: real barcodes written several ways, zero-part dates such
  as ``1999-03-00`` and ``mm:ss`` durations.
* ``load_cddb``: user-entered CD track titles; labels come from
  high-precision detectors (mojibake that ftfy reverses, lost characters,
  disc-wide numbering or shouting), as the set has no ground-truth values.

Every record carries a ``group``: the split key (artist for Spotify, Discogs
and CDDB; the cluster for MusicBrainz), so that copies of one song or artist
never straddle splits. ``split_of(group)`` is deterministic::

    >>> split_of("artist:karol g") in ("train", "validation", "test")
    True
    >>> split_of("artist:karol g") == split_of("artist:karol g")
    True
"""

from __future__ import annotations

import csv
import difflib
import gzip
import hashlib
import io
import re
import unicodedata
import zipfile
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ftfy

# The repository sits next to the shared folder (work/main, work/shared).
DEFAULT_REAL_DIR = Path(__file__).resolve().parents[3] / "shared" / "data" / "real"
SPOTIFY_FILE = "spotify_songs.csv.gz"
MUSICBRAINZ_FILE = "musicbrainz_20k.csv"
CDDB_FILE = "cddb.tsv.zip"
CDDB_PAIRS_FILE = "cddb_dup_pairs.csv"
DISCOGS_DIR = "discogs_sample"

# Split fractions by group (the rest is test).
TRAIN_FRACTION = 0.6
VALIDATION_FRACTION = 0.2

# Real-malformation labels. Those that are also classes of ``transforms.fields``
# keep their names; the rest name what the data shows and no class covers yet.
PLACEHOLDER = "placeholder"  # "--", "null", "unk.", "unknown" instead of a value
ALBUM_IN_TITLE = "album_in_title"  # "Song (Album)", "Song - Album"
CASE_VARIANT = "case_variant"  # differs from the canonical value in case only
OTHER_VARIANT = "other_variant"  # typos and anything else: cannot be derived
YEAR_ONLY = "year_only"  # "75", "'75", "2002": a year, not a date
PARTIAL_DATE = "partial_date"  # "1999-03-00", "1999-00-00": a part is unknown
UNRECOVERABLE_TEXT = "unrecoverable_text"  # "?" or U+FFFD where letters were
VARIOUS_ARTIST_IN_TITLE = "various_artist_in_title"  # "Various" + "Artist - Song"

PLACEHOLDERS = frozenset(["--", "-", "null", "unk.", "unk", "unknown", "n/a", "none", ""])


@dataclass(frozen=True)
class RealRecord:
    """One real record as a metafix track, with what is known to be right.

    ``track`` holds raw strings as an event's ``track`` would (None for absent
    fields). ``truth`` maps a field to its canonical value where it is known
    (None: the field should be empty); fields left out of ``truth`` are not
    judged. ``labels`` maps a field to the malformations found in its value;
    a field left out is clean. ``support`` is how many records of the cluster
    agree on the truth (1 when it comes from the record alone).
    """

    dataset: str
    record_id: str
    source: str
    group: str
    track: dict[str, Any]
    truth: dict[str, Any] = field(default_factory=dict)
    labels: dict[str, tuple[str, ...]] = field(default_factory=dict)
    support: int = 1

    @property
    def clean(self) -> bool:
        return not self.labels


def _fraction(key: str) -> float:
    digest = hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def split_of(group: str, seed: int = 0) -> str:
    """"train", "validation" or "test" for a group key, by a stable hash."""
    u = _fraction(f"real-split:{seed}:{group}")
    if u < TRAIN_FRACTION:
        return "train"
    if u < TRAIN_FRACTION + VALIDATION_FRACTION:
        return "validation"
    return "test"


def split_records(records: Iterable[RealRecord], seed: int = 0
                  ) -> dict[str, list[RealRecord]]:
    """Records by split, keeping their order."""
    out: dict[str, list[RealRecord]] = {"train": [], "validation": [], "test": []}
    for record in records:
        out[split_of(record.group, seed)].append(record)
    return out


def norm_key(value: str | None) -> str:
    """Comparison key: NFC, case folded, spaces collapsed.

    >>> norm_key("  Action  PAINTING! ")
    'action painting!'
    """
    if value is None:
        return ""
    return " ".join(unicodedata.normalize("NFC", value).casefold().split())


def artist_group(artist: str | None) -> str:
    return "artist:" + norm_key(artist)


def is_placeholder(value: str | None) -> bool:
    """"--", "null", "unk.", "unknown", blank."""
    return value is None or value.strip().casefold() in PLACEHOLDERS


# ----------------------------------------------------------------------------- Spotify


def load_spotify(path: str | Path) -> list[RealRecord]:
    """Clean Spotify tracks, one per track id (the file lists a track once per playlist).

    The playlist genre is left out: it is a playlist's label, not the track's.
    """
    records = []
    seen: set[str] = set()
    with gzip.open(path, "rt", encoding="utf-8", newline="") as f:
        for row in csv.DictReader(f):
            if row["track_id"] in seen or not row["track_name"]:
                continue
            seen.add(row["track_id"])
            track = {
                "title": row["track_name"],
                "artist": row["track_artist"] or None,
                "featured_artists": [],
                "album": row["track_album_name"] or None,
                "release_date": row["track_album_release_date"] or None,
                "duration_ms": row["duration_ms"] or None,
            }
            records.append(RealRecord(
                dataset="spotify", record_id=row["track_id"], source="spotify",
                group=artist_group(row["track_artist"]), track=track, truth=dict(track),
            ))
    return records


# ----------------------------------------------------------------------------- MusicBrainz

MB_SOURCES = {"1": "mb-wom", "2": "mb-mbox", "3": "mb-mb01", "4": "mb-a0", "5": "mb-plain"}
_TRAILING_PAREN = re.compile(r"^(?P<rest>.+?)\s*\((?P<inner>[^()]*)\)\s*$")
_TRAILING_YEAR = re.compile(r"^(?P<rest>.*?)\s*\((?:19|20)[0-9]{2}\)\s*$")
_NUMBER_PREFIX = re.compile(r"^[0-9]{1,3}-(?P<rest>.*)$")
_MINSEC = re.compile(r"([0-9]+)m\s*([0-9]+)sec")
_CLOCK = re.compile(r"([0-9]+):([0-9]{2})")
_DECIMAL = re.compile(r"[0-9]+\.[0-9]+")
_INTEGER = re.compile(r"[0-9]+")


def _similar(a: str | None, b: str | None, cutoff: float = 0.7) -> bool:
    if not a or not b:
        return False
    return difflib.SequenceMatcher(None, norm_key(a), norm_key(b)).ratio() >= cutoff


def unwrap_title(title: str, source: str, album: str | None) -> str | None:
    """The title with its source's own wrapping undone, None if it has none.

    The five sources wrap titles their own way: "Song (Album)" (mb-wom),
    "Artist - Song" (mb-mbox), "Song - Album" (mb-mb01), "009-Song" (mb-a0).

    >>> unwrap_title("009-Ballade a donner", "mb-a0", None)
    'Ballade a donner'
    >>> unwrap_title("Particle/Wave (Evolver)", "mb-wom", "Evolver")
    'Particle/Wave'
    """
    if source == "mb-wom" and (m := _TRAILING_PAREN.match(title)) is not None:
        return m.group("rest") if _similar(m.group("inner"), album, 0.6) else None
    if source == "mb-mbox" and " - " in title:
        return title.partition(" - ")[2].strip() or None
    if source == "mb-mb01" and " - " in title:
        return title.rpartition(" - ")[0].strip() or None
    if source == "mb-a0" and (m := _NUMBER_PREFIX.match(title)) is not None:
        return m.group("rest").strip() or None
    return None


def mb_duration_ms(length: str, source: str) -> int | None:
    """A MusicBrainz length in its source's unit, as milliseconds.

    >>> mb_duration_ms("3.663", "mb-mb01"), mb_duration_ms("4m 2sec", "mb-a0")
    (219780, 242000)
    """
    text = length.strip()
    if is_placeholder(text):
        return None
    if (m := _MINSEC.fullmatch(text)) is not None:
        return (int(m.group(1)) * 60 + int(m.group(2))) * 1000
    if (m := _CLOCK.fullmatch(text)) is not None:
        return (int(m.group(1)) * 60 + int(m.group(2))) * 1000
    if _DECIMAL.fullmatch(text) and source == "mb-mb01":
        return round(float(text) * 60_000)
    if _INTEGER.fullmatch(text):
        number = int(text)
        return number * 1000 if source == "mb-mbox" else number
    return None


def mb_year(year: str) -> int | None:
    """A year as the sources write it: "2002", "02", "'02" (two digits: 1930-2029)."""
    text = year.strip().lstrip("'")
    if not _INTEGER.fullmatch(text) or len(text) not in (2, 4):
        return None
    number = int(text)
    if len(text) == 2:
        number += 2000 if number < 30 else 1900
    return number


def _vote(candidates: Sequence[tuple[str, str | None]]) -> tuple[str | None, int]:
    """The value most records support, in its most common surface form.

    ``candidates`` holds per record (its raw value, its value with the
    source's wrapping undone or None). A key is supported by every record
    that has it raw or unwrapped; ties go to the key more records reach by
    unwrapping (the source's convention), then to the key itself.
    """
    support: Counter[str] = Counter()
    unwrapped: Counter[str] = Counter()
    forms: dict[str, Counter[str]] = defaultdict(Counter)
    for raw, inner in candidates:
        keys = {norm_key(raw)} | ({norm_key(inner)} if inner else set())
        support.update(keys)
        forms[norm_key(raw)][raw] += 1
        if inner:
            unwrapped[norm_key(inner)] += 1
            forms[norm_key(inner)][inner] += 1
    if not support:
        return None, 0
    key = min(support, key=lambda k: (-support[k], -unwrapped[k], k))
    form = min(forms[key], key=lambda v: (-forms[key][v], v))
    return form, support[key]


def musicbrainz_truth(rows: Sequence[Mapping[str, str]]) -> dict[str, Any]:
    """Canonical title, artist, album, duration (ms), year and language of one cluster.

    Each is voted across the cluster's records after undoing the sources'
    wrappings; ``support`` is the smallest vote of title and artist.
    """
    titles, artists, albums = [], [], []
    for row in rows:
        artist = None if is_placeholder(row["artist"]) else row["artist"]
        album = None if is_placeholder(row["album"]) else row["album"]
        source = MB_SOURCES[row["SourceID"]]
        if not is_placeholder(row["title"]):
            titles.append((row["title"], unwrap_title(row["title"], source, album)))
        if artist is not None:
            artists.append((artist, None))
        if album is not None:
            m = _TRAILING_YEAR.match(album) if source == "mb-a0" else None
            albums.append((album, m.group("rest") if m else None))
    title, title_support = _vote(titles)
    artist, artist_support = _vote(artists)
    album, _ = _vote(albums)
    durations = [d for row in rows
                 if (d := mb_duration_ms(row["length"], MB_SOURCES[row["SourceID"]]))]
    years = Counter(y for row in rows if (y := mb_year(row["year"])) is not None)
    languages = Counter(row["language"] for row in rows if row["SourceID"] in ("2", "3", "5")
                        and not is_placeholder(row["language"]))
    durations.sort()
    return {
        "title": title,
        "artist": artist,
        "album": album,
        "duration_ms": durations[len(durations) // 2] if durations else None,
        "year": min(years, key=lambda y: (-years[y], y)) if years else None,
        "language": min(languages, key=lambda v: (-languages[v], v)) if languages else None,
        "support": min(title_support, artist_support) if artist else title_support,
    }


def _text_labels(raw: str | None, truth: str | None, *, artist: str | None,
                 album: str | None) -> tuple[str, ...]:
    """Why a delivered text value differs from the canonical one."""
    if truth is None or raw == truth:
        return ()
    if raw is None or is_placeholder(raw):
        return (PLACEHOLDER,)
    if norm_key(raw) == norm_key(truth):
        return (CASE_VARIANT,)
    labels = []
    rest = raw
    if (m := _NUMBER_PREFIX.match(rest)) is not None:
        labels.append("track_number_prefix")
        rest = m.group("rest")
    head, sep, tail = rest.partition(" - ")
    if sep and norm_key(tail).startswith(norm_key(truth)) and (artist is None or _similar(head, artist)):
        labels.append("artist_in_title")
        rest = tail
    if " - " in rest and norm_key(rest.rpartition(" - ")[0]) == norm_key(truth):
        labels.append(ALBUM_IN_TITLE)
        rest = rest.rpartition(" - ")[0]
    # A "(2003)" is a year suffix (below), not an album in brackets.
    elif (m := _TRAILING_PAREN.match(rest)) and norm_key(m.group("rest")) == norm_key(truth) \
            and album and norm_key(m.group("inner")) != "" and not _TRAILING_YEAR.match(rest):
        labels.append(ALBUM_IN_TITLE)
        rest = m.group("rest")
    if (m := _TRAILING_YEAR.match(rest)) is not None and norm_key(m.group("rest")) == norm_key(truth):
        labels.append("album_year_suffix")
        rest = m.group("rest")
    if rest != truth:
        labels.append(CASE_VARIANT if norm_key(rest) == norm_key(truth) else OTHER_VARIANT)
    return tuple(labels)


def _read_musicbrainz_rows(path: str | Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, escapechar="\\"))


def load_musicbrainz(path: str | Path) -> list[RealRecord]:
    """MusicBrainz 20K records with per-cluster truth and labels.

    ``track["release_date"]`` carries the delivered year (the sources give no
    full date); its truth is the voted year as text, labelled ``year_only``.
    """
    rows = _read_musicbrainz_rows(path)
    clusters: dict[str, list[dict[str, str]]] = defaultdict(list)
    for row in rows:
        clusters[row["CID"]].append(row)
    records = []
    for row in rows:
        truth = musicbrainz_truth(clusters[row["CID"]])
        source = MB_SOURCES[row["SourceID"]]
        track = {
            "title": row["title"] or None,
            "artist": row["artist"] or None,
            "featured_artists": [],
            "album": row["album"] or None,
            "release_date": row["year"] or None,
            "duration_ms": row["length"] or None,
            "track_number": row["number"] or None,
            "language": row["language"] or None,
        }
        labels: dict[str, tuple[str, ...]] = {}
        for name in ("title", "artist", "album"):
            found = _text_labels(track[name], truth[name], artist=truth["artist"],
                                 album=truth["album"])
            if found:
                labels[name] = found
        duration = track["duration_ms"]
        if duration is not None and is_placeholder(duration):
            labels["duration_ms"] = (PLACEHOLDER,)
        elif duration is not None and not (_INTEGER.fullmatch(duration) and int(duration) >= 1000):
            labels["duration_ms"] = ("duration_format",)
        if track["release_date"] is not None:
            labels["release_date"] = ((PLACEHOLDER,) if is_placeholder(track["release_date"])
                                      else (YEAR_ONLY,))
        language = track["language"]
        if language is not None:
            if is_placeholder(language):
                labels["language"] = (PLACEHOLDER,)
            elif language != truth["language"] and truth["language"] is not None:
                labels["language"] = ("language_code",)
        records.append(RealRecord(
            dataset="musicbrainz", record_id=row["TID"], source=source,
            group="cluster:" + row["CID"], track=track,
            truth={"title": truth["title"], "artist": truth["artist"], "album": truth["album"],
                   "duration_ms": truth["duration_ms"],
                   "release_date": None if truth["year"] is None else str(truth["year"]),
                   "language": truth["language"]},
            labels=labels, support=truth["support"],
        ))
    return records


# ----------------------------------------------------------------------------- Discogs

_ZERO_PART_DATE = re.compile(r"[0-9]{4}-(?:00-[0-9]{2}|[0-9]{2}-00)")


def load_discogs(directory: str | Path) -> list[RealRecord]:
    """Discogs barcodes (as UPCs), ISRCs, release dates and track durations.

    One record per identifier, per release date and per track duration; the
    fields not under test are left None. A barcode's truth is its digits when
    they make a valid UPC-A/EAN-13 (else None: only a person can say).
    """
    from stdnum import ean, isrc

    directory = Path(directory)
    with open(directory / "releases.csv", encoding="utf-8", newline="") as f:
        releases = {row["release_id"]: row for row in csv.DictReader(f)}

    def group(release_id: str) -> str:
        return artist_group(releases.get(release_id, {}).get("artists"))

    records: list[RealRecord] = []
    with open(directory / "identifiers.csv", encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f)):
            value = row["value"].strip()
            if row["type"] == "Barcode":
                digits = ean.compact(value.rstrip(">").strip())
                valid = digits.isdigit() and len(digits) in (12, 13) and ean.is_valid(digits)
                labels = {} if value == digits and valid else {
                    "upc": ("upc_format",) if valid else ("upc_invalid",)}
                records.append(RealRecord(
                    dataset="discogs", record_id=f"barcode-{n}", source="discogs",
                    group=group(row["release_id"]), track={"upc": value},
                    truth={"upc": digits if valid else None}, labels=labels))
            elif row["type"] == "ISRC":
                compact = isrc.compact(value.removeprefix("ISRC").strip(" :"))
                valid = isrc.is_valid(compact)
                labels = {} if value == compact and valid else {
                    "isrc": ("isrc_format",) if valid else ("isrc_invalid",)}
                records.append(RealRecord(
                    dataset="discogs", record_id=f"isrc-{n}", source="discogs",
                    group=group(row["release_id"]), track={"isrc": value},
                    truth={"isrc": compact if valid else None}, labels=labels))
    for release_id, row in releases.items():
        released = row["released"].strip()
        if not released:
            continue
        if _ZERO_PART_DATE.fullmatch(released):
            labels = {"release_date": (PARTIAL_DATE,)}
        elif len(released) == 4:
            labels = {"release_date": (YEAR_ONLY,)}
        else:
            labels = {}
        records.append(RealRecord(
            dataset="discogs", record_id=f"release-{release_id}", source="discogs",
            group=group(release_id), track={"release_date": released},
            truth={"release_date": released if not labels else None}, labels=labels))
    with open(directory / "tracks.csv", encoding="utf-8", newline="") as f:
        for n, row in enumerate(csv.DictReader(f)):
            duration = row["duration"].strip()
            m = _CLOCK.fullmatch(duration)
            if m is None:
                continue
            ms = (int(m.group(1)) * 60 + int(m.group(2))) * 1000
            records.append(RealRecord(
                dataset="discogs", record_id=f"track-{n}", source="discogs",
                group=group(row["release_id"]),
                track={"title": row["title"] or None, "duration_ms": duration},
                truth={"duration_ms": ms}, labels={"duration_ms": ("duration_format",)}))
    return records


# ----------------------------------------------------------------------------- CDDB

_LOST_CHAR = re.compile(r"[^\W\d_]\?+[^\W\d_]|\ufffd|ï¿½")
_NUMBERED = re.compile(r"^\s*(?P<n>[0-9]{1,3})\s*(?:[-.):]|\s)\s*(?P<rest>\S.*)$")
_MOJIBAKE_HINT = re.compile(r"[ÃÂâ][\x80-\xbf\u0152-\u2122]|Ã.|â€")


def cddb_text_labels(value: str) -> tuple[str, ...]:
    """High-precision labels of one CDDB value seen alone.

    >>> cddb_text_labels("DJ BjÃ¶rn - On A Mission")
    ('mojibake',)
    >>> cddb_text_labels("L?amour de ma vie")
    ('unrecoverable_text',)
    >>> cddb_text_labels("Don't  Wanna Lose You Now")
    ('whitespace',)
    """
    labels = []
    if _LOST_CHAR.search(value):
        labels.append(UNRECOVERABLE_TEXT)
    elif _MOJIBAKE_HINT.search(value) and ftfy.fix_encoding(value) != value:
        labels.append("mojibake")
    if value != " ".join(value.split()):
        labels.append("whitespace")
    return tuple(labels)


def _read_cddb(path: str | Path) -> list[dict[str, str]]:
    with zipfile.ZipFile(path) as z, z.open("cddb.tsv") as raw:
        return list(csv.DictReader(io.TextIOWrapper(raw, encoding="utf-8", newline=""),
                                   delimiter="\t"))


def _shouting(text: str) -> bool:
    return text.isupper() and any(len(w) >= 5 and w.isalpha() for w in text.split())


def load_cddb(path: str | Path, pairs_path: str | Path | None = None) -> list[RealRecord]:
    """One record per CDDB track title, with the disc's artist and album.

    Disc-level evidence makes the labels: a disc whose tracks are numbered
    1, 2, 3... has ``track_number_prefix`` titles; a disc whose every title
    shouts has ``all_caps`` titles (a single stylised title does not). The
    gold duplicate pairs put both copies of a CD in one group.
    """
    rows = _read_cddb(path)
    group_of: dict[str, str] = {row["id"]: artist_group(row["artist"]) for row in rows}
    if pairs_path is not None:
        with open(pairs_path, encoding="utf-8", newline="") as f:
            for pair in csv.DictReader(f):
                if pair["id1"] in group_of and pair["id2"] in group_of:
                    group_of[pair["id2"]] = group_of[pair["id1"]]
    records = []
    for row in rows:
        titles = [t for t in (p.strip(" ") for p in row["tracks"].split(" | ")) if t.strip()]
        numbers = [m.group("n") for t in titles if (m := _NUMBERED.match(t))]
        numbered = len(titles) >= 3 and [int(n) for n in numbers] == list(
            range(int(numbers[0]), int(numbers[0]) + len(titles))) if numbers else False
        shouting = len(titles) >= 3 and all(t.isupper() for t in titles) and any(
            _shouting(t) for t in titles)
        various = norm_key(row["artist"]).startswith(("various", "va", "v.a", "v/a"))
        for position, title in enumerate(titles, start=1):
            labels = list(cddb_text_labels(title))
            truth: dict[str, Any] = {}
            if numbered:
                labels.append("track_number_prefix")
                m = _NUMBERED.match(title)
                assert m is not None
                truth["title"] = m.group("rest")
            if shouting:
                labels.append("all_caps")
            if various and " - " in title:
                labels.append(VARIOUS_ARTIST_IN_TITLE)
            if "mojibake" in labels and not numbered:
                truth["title"] = ftfy.fix_encoding(title)
            if "whitespace" in labels and len(labels) == 1:
                truth["title"] = " ".join(title.split())
            records.append(RealRecord(
                dataset="cddb", record_id=f"{row['id']}#{position}", source="cddb",
                group=group_of[row["id"]],
                track={"title": title, "artist": row["artist"] or None, "featured_artists": [],
                       "album": row["title"] or None, "track_number": str(position)},
                truth=truth, labels={"title": tuple(labels)} if labels else {}))
    return records


def load_all(real_dir: str | Path = DEFAULT_REAL_DIR) -> Iterator[RealRecord]:
    """Every real record of the four data sets, data set by data set."""
    real_dir = Path(real_dir)
    yield from load_spotify(real_dir / SPOTIFY_FILE)
    yield from load_musicbrainz(real_dir / MUSICBRAINZ_FILE)
    yield from load_discogs(real_dir / DISCOGS_DIR)
    yield from load_cddb(real_dir / CDDB_FILE, real_dir / CDDB_PAIRS_FILE)
