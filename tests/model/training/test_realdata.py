"""Real-data loaders: ground truth per MusicBrainz cluster, labels, the split by group."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from model.training import realdata
from model.training.realdata import (
    ALBUM_IN_TITLE,
    PLACEHOLDER,
    load_musicbrainz,
    load_spotify,
    mb_duration_ms,
    musicbrainz_truth,
    split_of,
    split_records,
    unwrap_title,
)

_MB_HEADER = "TID,CID,CTID,SourceID,id,number,title,length,artist,album,year,language\n"
_MB_ROWS = [
    "1,1,1,2,MBox1-HH,9,Daniel Balavoine - L'enfant aux yeux d'Italie,219,--,De vous à elle,75,French",
    "2,1,2,3,1MB-01,9,L'enfant aux yeux d'Italie - De vous à elle,3.663,Daniel Balavoine,--,'75,French",
    "3,1,3,4,1-A065,9,009-L'enfant aux yeux d'Italie,3m 39sec,Daniel Balavoine,De vous à elle (1975),null,Fre.",
    "4,1,4,5,4489993,9,L'enfant aux yeux d'Italie,219000,Daniel Balavoine,De vous à elle,1975,French",
    "5,2,1,1,WoM2,002,Particle/Wave (Evolver),06:21,Lunchbox,Evolver,2002,--",
]


@pytest.fixture()
def mb_file(tmp_path: Path) -> Path:
    path = tmp_path / "mb.csv"
    path.write_text(_MB_HEADER + "\n".join(_MB_ROWS) + "\n", encoding="utf-8")
    return path


def test_cluster_truth_is_voted_after_undoing_each_source_wrapping(mb_file: Path) -> None:
    records = {r.record_id: r for r in load_musicbrainz(mb_file)}
    truth = records["1"].truth
    assert truth["title"] == "L'enfant aux yeux d'Italie"
    assert truth["artist"] == "Daniel Balavoine"
    assert truth["album"] == "De vous à elle"
    assert truth["duration_ms"] == 219000
    assert truth["release_date"] == "1975"
    assert records["1"].support == 3  # the smaller of title (4) and artist (3: one "--") votes


def test_labels_name_the_malformation(mb_file: Path) -> None:
    records = {r.record_id: r for r in load_musicbrainz(mb_file)}
    assert records["1"].labels["title"] == ("artist_in_title",)
    assert records["1"].labels["artist"] == (PLACEHOLDER,)
    assert records["2"].labels["title"] == (ALBUM_IN_TITLE,)
    assert records["3"].labels["title"] == ("track_number_prefix",)
    assert records["3"].labels["duration_ms"] == ("duration_format",)
    assert records["3"].labels["album"] == ("album_year_suffix",)  # "De vous à elle (1975)"
    assert "title" not in records["4"].labels
    assert "duration_ms" not in records["4"].labels
    assert records["5"].truth["title"] == "Particle/Wave"  # a singleton, by its source's convention


def test_a_cluster_never_straddles_splits(mb_file: Path) -> None:
    splits = split_records(load_musicbrainz(mb_file))
    for name, records in splits.items():
        others = {r.group for n, rs in splits.items() if n != name for r in rs}
        assert not {r.group for r in records} & others


@pytest.mark.parametrize("length, source, ms", [
    ("3.663", "mb-mb01", 219780), ("4m 2sec", "mb-a0", 242000), ("07:42", "mb-wom", 462000),
    ("219", "mb-mbox", 219000), ("219000", "mb-plain", 219000), ("unk.", "mb-plain", None),
])
def test_duration_in_each_source_unit(length: str, source: str, ms: int | None) -> None:
    assert mb_duration_ms(length, source) == ms


def test_unwrap_title_only_undoes_the_source_own_wrapping() -> None:
    assert unwrap_title("Try (acoustic)", "mb-wom", "Le Grand Rex") is None
    assert unwrap_title("Try (acoustic) (Le Grand Rex)", "mb-wom", "Le Grand Rex") == "Try (acoustic)"
    assert unwrap_title("Song - Album", "mb-plain", None) is None


def test_singleton_truth_keeps_a_plain_source_title() -> None:
    rows = [{"SourceID": "5", "title": "Head of Lenin (new republik mix)", "artist": "Digital Poodle",
             "album": "Noisea", "length": "200000", "year": "1990", "language": "English"}]
    assert musicbrainz_truth(rows)["title"] == "Head of Lenin (new republik mix)"


def test_spotify_is_one_clean_record_per_track_id(tmp_path: Path) -> None:
    header = ("track_id,track_name,track_artist,track_popularity,track_album_id,track_album_name,"
              "track_album_release_date,playlist_name,playlist_id,playlist_genre,duration_ms\n")
    rows = ["t1,PROVENZA,KAROL G,80,a1,PROVENZA,2022-04-21,p,p1,latin,210000",
            "t1,PROVENZA,KAROL G,80,a1,PROVENZA,2022-04-21,q,q1,pop,210000",
            "t2,Eastside,benny blanco,70,a2,Eastside,2018,p,p1,pop,173000"]
    path = tmp_path / "s.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8") as f:
        f.write(header + "\n".join(rows) + "\n")
    records = load_spotify(path)
    assert [r.track["artist"] for r in records] == ["KAROL G", "benny blanco"]
    assert all(r.clean and r.truth == r.track for r in records)
    assert records[0].group == "artist:karol g"


def test_split_is_deterministic_and_roughly_proportional() -> None:
    groups = [f"artist:{i}" for i in range(5000)]
    assert [split_of(g) for g in groups] == [split_of(g) for g in groups]
    share = sum(split_of(g) == "test" for g in groups) / len(groups)
    assert 0.17 < share < 0.23


@pytest.mark.skipif(not (realdata.DEFAULT_REAL_DIR / realdata.MUSICBRAINZ_FILE).exists(),
                    reason="../shared/data/real is not there")
def test_real_musicbrainz_file_loads_every_row() -> None:
    records = load_musicbrainz(realdata.DEFAULT_REAL_DIR / realdata.MUSICBRAINZ_FILE)
    assert len(records) == 19_375
    assert len({r.group for r in records}) == 10_000
