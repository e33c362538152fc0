"""Reference catalog files (CSV) as ``(source, track)`` pairs, and ``metafix profile`` on them."""

from __future__ import annotations

import gzip
import io

import apache_beam as beam
import pytest
from apache_beam.testing.test_pipeline import TestPipeline
from apache_beam.testing.util import assert_that, equal_to

from model.profilestore import load_latest
from streaming.catalogfiles import CatalogFileError, ReadCatalogFiles, tracks_of_csv
from streaming.profile_job import build_profile_pipeline
from transforms.profile import build_profile

# Spotify's column names, a column that is no track field, a quoted line break
# and an empty cell.
SPOTIFY_LIKE = (
    "track_id,track_name,track_artist,track_album_name,track_album_release_date,playlist_genre\n"
    "1,Provenza,KAROL G,Provenza,4/21/2022,latin\n"
    '2,"Eastside\n(Remix)",benny blanco,,12/13/2018,pop\n'
    "3,Bichota,KAROL G,KG0516,10/23/2020,latin\n"
)
SPOTIFY_TRACKS = [
    {"title": "Provenza", "artist": "KAROL G", "album": "Provenza", "release_date": "4/21/2022"},
    {"title": "Eastside\n(Remix)", "artist": "benny blanco", "release_date": "12/13/2018"},
    {"title": "Bichota", "artist": "KAROL G", "album": "KG0516", "release_date": "10/23/2020"},
]
# Chinook's column names.
CHINOOK_LIKE = ("TrackId,track,artist,album,genre,Milliseconds,Bytes\n"
                "1,Let There Be Rock,AC/DC,Let There Be Rock,Rock,366654,12021261\n")


def test_columns_are_mapped_by_the_alias_table_and_others_ignored() -> None:
    assert list(tracks_of_csv(io.StringIO(SPOTIFY_LIKE, newline=""), "s.csv")) == SPOTIFY_TRACKS
    assert list(tracks_of_csv(io.StringIO(CHINOOK_LIKE), "c.csv")) == [
        {"title": "Let There Be Rock", "artist": "AC/DC", "album": "Let There Be Rock",
         "genre": "Rock", "duration_ms": "366654"}]


def test_a_file_without_a_title_or_artist_column_is_refused() -> None:
    with pytest.raises(CatalogFileError, match="no column names a title or an artist"):
        list(tracks_of_csv(io.StringIO("id,price\n1,0.99\n"), "prices.csv"))


def test_each_file_is_its_own_source_unless_one_is_named(tmp_path) -> None:
    (tmp_path / "store.csv").write_text(CHINOOK_LIKE)
    with gzip.open(tmp_path / "spotify_songs.csv.gz", "wt", newline="") as f:
        f.write(SPOTIFY_LIKE)
    expected = [("spotify_songs", t) for t in SPOTIFY_TRACKS] + [
        ("store", {"title": "Let There Be Rock", "artist": "AC/DC", "album": "Let There Be Rock",
                   "genre": "Rock", "duration_ms": "366654"})]
    with TestPipeline() as p:
        found = p | "Own" >> ReadCatalogFiles(str(tmp_path / "s*.csv*"))
        named = p | "Named" >> ReadCatalogFiles(str(tmp_path / "*.csv.gz"), source="feed")
        assert_that(found, equal_to(expected), label="CheckOwn")
        assert_that(named | beam.MapTuple(lambda source, _: source),
                    equal_to(["feed"] * 3), label="CheckNamed")


def test_profile_pipeline_learns_from_reference_catalog_files(tmp_path) -> None:
    with gzip.open(tmp_path / "spotify_songs.csv.gz", "wt", newline="") as f:
        f.write(SPOTIFY_LIKE)
    with TestPipeline() as p:
        build_profile_pipeline(p, str(tmp_path / "*.csv.gz"), str(tmp_path / "profiles"))
    profile = load_latest(tmp_path / "profiles")
    assert profile == build_profile(("spotify_songs", t) for t in SPOTIFY_TRACKS)
    assert profile.is_official_form("KAROL G") and profile.date_order("spotify_songs") == "mdy"
