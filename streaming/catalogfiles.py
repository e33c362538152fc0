"""Reference catalog files (CSV, optionally gzipped) as ``(source, track)`` pairs.

``metafix profile`` learns from them as from event logs::

    metafix profile --input 'catalogs/spotify_songs.csv.gz' --output profiles/
    metafix profile --input 'gs://bucket/catalog/*.csv' --source store --output profiles/

A file is a reference catalog file by its extension (``CATALOG_EXTENSIONS``).
Its header names the columns; ``CATALOG_COLUMNS`` maps accepted header names
(case-insensitive) to track fields, and other columns are ignored ("playlist_genre"
is a playlist's label, not the track's). Every record of a file counts as one
source: ``--source`` when given, else the file's name without its extension,
so a supplier's export teaches its own conventions. Files are opened through
Beam's ``FileSystems`` (``fileio.MatchFiles`` / ``ReadMatches``), so ``gs://``
and other filesystems work, and ``.gz`` is decompressed by its extension. A
file is read whole by one worker: CSV fields may hold line breaks, so it is
not split by line.
"""

from __future__ import annotations

import codecs
import csv
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import apache_beam as beam
from apache_beam.io import fileio

CATALOG_EXTENSIONS = (".csv", ".csv.gz")

# Track field -> the header names that stand for it, in the exports seen so far
# (Spotify's "track_*" columns, Chinook's "track"/"Milliseconds", plain names).
CATALOG_COLUMNS: dict[str, tuple[str, ...]] = {
    "title": ("title", "track", "track_name", "track_title", "song"),
    "artist": ("artist", "track_artist", "artist_name"),
    "album": ("album", "track_album_name", "album_name", "album_title"),
    "release_date": ("release_date", "track_album_release_date", "album_release_date",
                     "year"),
    "duration_ms": ("duration_ms", "milliseconds", "length_ms"),
    "isrc": ("isrc",),
    "upc": ("upc", "barcode", "ean"),
    "genre": ("genre",),
    "explicit": ("explicit",),
    "track_number": ("track_number", "tracknumber", "track_no", "position"),
    "language": ("language",),
}
_FIELD_OF_HEADER = {header: name for name, headers in CATALOG_COLUMNS.items() for header in headers}


class CatalogFileError(ValueError):
    """A reference catalog file whose header names no title or artist column."""


def is_catalog_file(pattern: str) -> bool:
    """Whether an ``--input`` pattern names reference catalog files.

    >>> is_catalog_file("gs://b/spotify_songs.csv.gz"), is_catalog_file("events.jsonl")
    (True, False)
    """
    return pattern.lower().endswith(CATALOG_EXTENSIONS)


def source_of_file(path: str) -> str:
    """A file's own source name: its base name without the catalog extension.

    >>> source_of_file("gs://bucket/catalog/spotify_songs.csv.gz")
    'spotify_songs'
    """
    name = posixpath.basename(path)
    for ext in sorted(CATALOG_EXTENSIONS, key=len, reverse=True):
        if name.lower().endswith(ext):
            return name[:-len(ext)]
    return name


def column_fields(header: Iterable[str]) -> dict[str, str]:
    """Header name -> track field, for the columns ``CATALOG_COLUMNS`` knows.

    The first column naming a field wins (a file with "title" and "name" keeps "title").

    >>> column_fields(["TrackId", "track", "artist", "Milliseconds", "Bytes"])
    {'track': 'title', 'artist': 'artist', 'Milliseconds': 'duration_ms'}
    """
    fields: dict[str, str] = {}
    for column in header:
        name = _FIELD_OF_HEADER.get(column.strip().lower())
        if name is not None and name not in fields.values():
            fields[column] = name
    return fields


def tracks_of_csv(text: Iterable[str], path: str) -> Iterator[dict[str, Any]]:
    """The tracks of one CSV file: mapped columns only, empty cells left out."""
    reader = csv.DictReader(text)
    fields = column_fields(reader.fieldnames or [])
    if not {"title", "artist"} & set(fields.values()):
        raise CatalogFileError(f"{path}: no column names a title or an artist "
                               f"(header: {reader.fieldnames}; known: {sorted(_FIELD_OF_HEADER)})")
    for row in reader:
        track = {name: row[column] for column, name in fields.items()
                 if isinstance(row.get(column), str) and row[column].strip()}
        if track:
            yield track


class _CatalogFileTracksFn(beam.DoFn):
    def __init__(self, source: str | None) -> None:
        self._source = source

    def process(self, readable: fileio.ReadableFile) -> Iterator[tuple[str, Mapping[str, Any]]]:
        path = readable.metadata.path
        source = self._source or source_of_file(path)
        with readable.open() as raw:
            # A stream reader, not io.TextIOWrapper: Beam's decompressing file object
            # lacks the methods TextIOWrapper needs. "-sig" drops an exporter's BOM.
            text = codecs.getreader("utf-8-sig")(raw)
            for track in tracks_of_csv(text, path):
                yield source, track


class ReadCatalogFiles(beam.PTransform):
    """Reference catalog files matching ``pattern`` -> ``(source, track)`` pairs."""

    def __init__(self, pattern: str, source: str | None = None) -> None:
        super().__init__()
        self._pattern = pattern
        self._source = source

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        return (
            pbegin
            | "MatchCatalogFiles" >> fileio.MatchFiles(self._pattern)
            | "OpenCatalogFiles" >> fileio.ReadMatches()
            | "CatalogFileTracks" >> beam.ParDo(_CatalogFileTracksFn(self._source))
        )
