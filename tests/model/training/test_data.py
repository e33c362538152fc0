"""Seed loading (what is kept, what is excluded and why, the synthesised
fields) and the split by seed record."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest

from model.training.data import CURATED, Seed, SeedLoad, read_seeds, seed_text, split_seeds
from transforms import correctors
from transforms.fields import GENRES, TRACK_FIELDS
from transforms.rules import detect

_CANDIDATES = (Path(__file__).resolve().parents[3] / "shared" / "data" / "catalog",
               Path("/work/shared/data/catalog"))


@pytest.fixture(scope="module")
def load() -> SeedLoad:
    data_dir = next((p for p in _CANDIDATES if (p / "chinook_tracks.csv").exists()), None)
    if data_dir is None:
        pytest.skip("catalog seed data not found")
    return read_seeds(data_dir)


def test_counts_kept_and_excluded(load: SeedLoad) -> None:
    assert load.kept["chinook"] + sum(n for (src, _), n in load.excluded.items()
                                      if src == "chinook") == 3503
    assert load.kept["msd"] + sum(n for (src, _), n in load.excluded.items()
                                  if src == "msd") == 9971
    assert load.kept["curated"] == len(CURATED)
    assert load.excluded[("chinook", "video")] == 214
    # The data's own malformations are dropped, not relabelled.
    for reason in ("featured_credit", "underscore", "shouted", "explicit_marker", "whitespace"):
        assert load.excluded[("msd", reason)] > 0
    assert load.kept["chinook"] > 3000 and load.kept["msd"] > 8500


def test_seed_ids_are_unique_and_stable(load: SeedLoad) -> None:
    ids = [s.seed_id for s in load.seeds]
    assert len(ids) == len(set(ids))
    assert ids[0] == "chinook:1"
    assert any(i.startswith("msd:TR") for i in ids)


def test_typed_track_has_the_output_layout(load: SeedLoad) -> None:
    for s in load.seeds:
        assert tuple(s.track) == TRACK_FIELDS
        assert s.text == seed_text(s.track)


def test_synthesised_fields_are_valid(load: SeedLoad) -> None:
    for s in load.seeds:
        t = s.track
        assert correctors.is_valid_isrc(t["isrc"]), s
        assert correctors.is_valid_upc(t["upc"]) and len(t["upc"]) == 12, s
        assert datetime.date(1960, 1, 1) <= t["release_date"] <= datetime.date(2025, 12, 31)
        assert t["isrc"][5:7] == f"{t['release_date'].year % 100:02d}"
        assert correctors.is_valid_duration_ms(s.text["duration_ms"]), s
        assert t["genre"] in GENRES
        assert 1 <= t["track_number"] <= s.track_total
        assert isinstance(t["explicit"], bool)
        assert correctors.normalize_language(t["language"]) == t["language"]


def test_seed_text_passes_every_validator(load: SeedLoad) -> None:
    for s in load.seeds:
        for name, valid in correctors.VALIDATORS.items():
            assert valid(s.text[name]), (s.seed_id, name)


def test_chinook_keeps_real_values_and_album_level_fields(load: SeedLoad) -> None:
    by_id = {s.seed_id: s for s in load.seeds}
    first = by_id["chinook:1"]
    assert (first.track["title"], first.track["artist"], first.track["duration_ms"]) == (
        "For Those About To Rock (We Salute You)", "AC/DC", 343719)
    assert first.track["genre"] == "Rock" and first.track["track_number"] == 1
    same_album = [s for s in load.seeds if s.source == "chinook"
                  and s.track["album"] == first.track["album"]
                  and s.track["artist"] == "AC/DC"]
    assert len(same_album) > 5
    assert len({(s.track["upc"], s.track["release_date"]) for s in same_album}) == 1
    assert sorted(s.track["track_number"] for s in same_album) == list(
        range(1, len(same_album) + 1))


def test_chinook_store_genres_are_mapped(load: SeedLoad) -> None:
    genres = {s.track["genre"] for s in load.seeds if s.source == "chinook"}
    assert {"Alternative", "Hip Hop", "R&B", "Electronic", "Metal", "Rock and Roll"} <= genres


def test_kept_catalog_seeds_do_not_carry_what_rules_call_errors(load: SeedLoad) -> None:
    # Only the case rules may fire (short acronyms such as "NOFX" are kept on purpose).
    allowed = {"clean", "all_caps"}
    for s in load.seeds:
        if s.source == "curated":
            continue
        for name in ("title", "artist", "album"):
            error_class, _ = detect(s.text).fields[name]
            assert error_class in allowed, (s.seed_id, name, s.text[name], error_class)


def test_loading_is_deterministic(load: SeedLoad) -> None:
    again = read_seeds(Path(next(p for p in _CANDIDATES if (p / "chinook_tracks.csv").exists())))
    assert again.seeds == load.seeds


def _ids(part: list[Seed]) -> set[str]:
    return {s.seed_id for s in part}


def test_split_is_by_seed_record_and_song(load: SeedLoad) -> None:
    train, val, test = split_seeds(load.seeds, seed=0)
    assert len(train) + len(val) + len(test) == len(load.seeds)
    assert not (_ids(train) & _ids(val) or _ids(train) & _ids(test) or _ids(val) & _ids(test))
    groups = [{s.group for s in part} for part in (train, val, test)]
    assert not (groups[0] & groups[1] or groups[0] & groups[2] or groups[1] & groups[2])
    n = len(load.seeds)
    assert 0.77 * n < len(train) < 0.83 * n
    assert 0.08 * n < len(val) < 0.12 * n and 0.08 * n < len(test) < 0.12 * n


def test_split_is_stable_and_independent_of_the_rest_of_the_list(load: SeedLoad) -> None:
    train, val, test = split_seeds(load.seeds, seed=0)
    assert (train, val, test) == split_seeds(list(load.seeds), seed=0)
    subset = load.seeds[::7]
    sub_train, _, _ = split_seeds(subset, seed=0)
    assert _ids(sub_train) == _ids(train) & _ids(subset)
    other_train, _, _ = split_seeds(load.seeds, seed=1)
    assert _ids(other_train) != _ids(train)


def test_curated_look_alikes_are_split_by_entry(load: SeedLoad) -> None:
    parts = split_seeds(load.seeds, seed=0)
    counts = [sum(s.source == "curated" for s in part) for part in parts]
    assert all(c > 0 for c in counts) and sum(counts) == len(CURATED)


def test_split_fractions_are_checked(load: SeedLoad) -> None:
    with pytest.raises(ValueError):
        split_seeds(load.seeds, fractions=(0.8, 0.3))
    assert [len(p) for p in split_seeds(load.seeds[:50], fractions=(1.0,))] == [50]
