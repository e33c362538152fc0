"""The catalog profile: official artist forms, per-source date order and casing,
deterministic serialisation."""

from __future__ import annotations

import datetime

import pytest

from transforms.profile import (
    DAY_FIRST,
    MONTH_FIRST,
    ProfileData,
    SourceStats,
    build_profile,
    date_order_evidence,
    name_key,
)


def _spotify_like() -> ProfileData:
    return build_profile([
        ("spotify", {"title": "PROVENZA", "artist": "KAROL G", "release_date": "2022-04-21"}),
        ("spotify", {"title": "TQG", "artist": "KAROL G", "featured_artists": ["Shakira"]}),
        ("spotify", {"title": "Eastside", "artist": "benny blanco",
                     "featured_artists": ["Halsey", "Khalid"]}),
        ("spotify", {"title": "Espresso", "artist": "Sabrina Carpenter"}),
    ])


def test_known_stylised_forms_are_official_and_other_casings_are_not() -> None:
    profile = _spotify_like()
    assert profile.is_official_form("KAROL G")
    assert profile.is_official_form("benny blanco")
    assert not profile.is_official_form("Karol G")
    assert not profile.is_official_form("Benny Blanco")
    assert profile.official_form("Karol G") == "KAROL G"
    assert profile.forms("karol g") == [("KAROL G", 2)]


def test_featured_artists_are_known_artists_too() -> None:
    profile = _spotify_like()
    assert profile.is_known_artist("halsey")
    assert profile.is_official_form("Khalid")


def test_a_rare_shouted_copy_is_not_official() -> None:
    records = [("feed", {"artist": "Sabrina Carpenter"})] * 9 + [("feed", {"artist": "SABRINA CARPENTER"})]
    profile = build_profile(records)
    assert profile.is_official_form("Sabrina Carpenter")
    assert not profile.is_official_form("SABRINA CARPENTER")  # 10 % < MIN_FORM_SHARE


def test_swap_needs_the_pair_seen_the_other_way_round() -> None:
    # A known artist as title is not enough ("Queen" by Perfume Genius is a song).
    only_artist = build_profile([("s", {"artist": "Troye Sivan"}), ("s", {"artist": "Queen"})])
    assert not only_artist.swap_evidence("Troye Sivan", "Rush")
    assert not only_artist.swap_evidence("Queen", "Perfume Genius")
    profile = build_profile([("s", {"artist": "Troye Sivan", "title": "Rush"})])
    assert not profile.swap_evidence("Rush", "Troye Sivan")
    assert profile.swap_evidence("troye sivan", "RUSH")


def test_a_title_both_ways_round_is_no_evidence() -> None:
    profile = build_profile([("s", {"artist": "A", "title": "B"}), ("s", {"artist": "B", "title": "A"})])
    assert not profile.swap_evidence("A", "B")


def test_decimal_durations_teach_the_source_unit() -> None:
    profile = build_profile([("mb01", {"duration_ms": d}) for d in ("3.663", "4.033", "2.5")]
                            + [("secs", {"duration_ms": d}) for d in ("215.5", "189.25", "301.0")]
                            + [("few", {"duration_ms": "3.5"})])
    assert profile.duration_unit("mb01") == "minutes"
    assert profile.duration_unit("secs") == "seconds"
    assert profile.duration_unit("few") is None
    assert ProfileData.from_json(profile.to_json()) == profile


@pytest.mark.parametrize("value, order", [
    ("4/26/2024", MONTH_FIRST), ("26/4/2024", DAY_FIRST), ("26.04.24", DAY_FIRST),
    ("5/4/2024", None), ("2024-04-26", None), ("13/13/2024", None),
])
def test_only_unambiguous_numeric_dates_are_evidence(value: str, order: str | None) -> None:
    assert date_order_evidence(value) == order


def test_month_first_source_resolves_an_ambiguous_date() -> None:
    profile = build_profile([("us-feed", {"release_date": d})
                             for d in ("4/26/2024", "1/13/2023", "12/31/2022")])
    assert profile.date_order("us-feed") == MONTH_FIRST
    resolved = profile.resolve_date("5/4/2024", "us-feed")
    assert resolved.date == datetime.date(2024, 5, 4)
    assert resolved.used_convention


def test_day_first_source_reads_the_same_text_the_other_way() -> None:
    profile = build_profile([("eu-feed", {"release_date": d})
                             for d in ("26/4/2024", "13/1/2023", "31/12/2022")])
    assert profile.resolve_date("5/4/2024", "eu-feed").date == datetime.date(2024, 4, 5)


@pytest.mark.parametrize("dates", [
    ("4/26/2024",),  # too little evidence
    ("4/26/2024", "26/4/2024", "1/13/2023", "12/31/2022"),  # sources that mix orders
])
def test_no_confident_order_means_the_date_is_not_guessed(dates: tuple[str, ...]) -> None:
    profile = build_profile([("feed", {"release_date": d}) for d in dates])
    resolved = profile.resolve_date("5/4/2024", "feed")
    assert resolved.date is None
    assert "no confident date order" in resolved.reason


def test_unknown_source_is_not_confident() -> None:
    assert _spotify_like().resolve_date("5/4/2024", "nobody").date is None


def test_casing_shares_per_source() -> None:
    profile = build_profile([("loud", {"title": "SONG ONE", "album": "ALBUM"}),
                             ("loud", {"title": "Song Two"})])
    assert profile.casing_shares("loud") == pytest.approx(
        {"upper": 2 / 3, "lower": 0.0, "mixed": 1 / 3})


def test_merge_is_the_profile_of_both_halves() -> None:
    records = [("a", {"artist": "KAROL G", "release_date": "4/26/2024"}),
               ("b", {"artist": "Karol G", "title": "x"}),
               ("a", {"artist": "benny blanco", "release_date": "26/4/2024"})]
    whole = build_profile(records)
    assert build_profile(records[:1]).merge(build_profile(records[1:])) == whole
    assert build_profile(records[1:]).merge(build_profile(records[:1])).to_json() == whole.to_json()


def test_serialisation_is_deterministic_and_round_trips() -> None:
    records = [("a", {"artist": "KAROL G"}), ("b", {"artist": "Beyoncé", "release_date": "4/26/2024"})]
    one, other = build_profile(records), build_profile(reversed(records))
    assert one.to_json() == other.to_json()
    assert one.version == other.version
    assert one.version.startswith("p-") and len(one.version) == 18
    assert ProfileData.from_json(one.to_json()) == one
    assert one.to_json().isascii()


def test_version_changes_with_content() -> None:
    assert build_profile([("a", {"artist": "X"})]).version != build_profile(
        [("a", {"artist": "X"}), ("a", {"artist": "X"})]).version


def test_the_version_is_serialised_once_per_profile(monkeypatch) -> None:
    # Every output record names the version; a catalog's profile takes a second to serialise.
    profile = _spotify_like()
    calls = []
    serialise = ProfileData.to_json
    monkeypatch.setattr(ProfileData, "to_json", lambda self: calls.append(1) or serialise(self))

    versions = {profile.version for _ in range(3)}

    assert len(versions) == 1 and len(calls) == 1


def test_wrong_format_is_refused() -> None:
    with pytest.raises(ValueError, match="format"):
        ProfileData.from_json('{"format": 99, "artists": {}, "sources": {}}')


def test_name_key_ignores_case_width_and_spacing() -> None:
    assert name_key("ＫＡＲＯＬ  G") == name_key("karol g")


def test_a_source_appends_album_years_by_habit_only_when_most_of_its_albums_carry_one() -> None:
    habit = [("a0", {"album": f"Album {i} ({2000 + i})"}) for i in range(15)]
    plain = [("a0", {"album": f"Other {i}"}) for i in range(5)]
    assert build_profile(habit + plain).appends_album_year("a0")
    # Too few albums to tell a habit from a few real names with years.
    assert not build_profile(habit[:10]).appends_album_year("a0")
    assert not build_profile(habit[:10] + plain * 3).appends_album_year("a0")
    assert not build_profile(habit + plain).appends_album_year("elsewhere")


def test_an_album_suffix_that_is_not_the_records_release_year_is_no_evidence() -> None:
    records = [("s", {"album": f"Album {i} (2003)", "release_date": "1998-05-01"}) for i in range(30)]
    stats = build_profile(records).sources["s"]
    assert (stats.albums, stats.album_year_suffix) == (30, 0)
    records = [("s", {"album": f"Album {i} (2003)", "release_date": "2003"}) for i in range(30)]
    assert build_profile(records).appends_album_year("s")


def test_records_added_to_one_builder_give_the_merge_of_their_one_record_profiles() -> None:
    # The profile pass adds records straight into a builder; partial profiles are merged.
    # Both must give the same profile, version included, and the counts each record shows.
    records = [
        ("feed", {"artist": " KAROL  G ", "featured_artists": ["benny blanco", " "], "title": "Provenza",
                  "album": "Bichota (2021)", "release_date": "4/26/2021", "duration_ms": "3.2"}),
        ("feed", {"artist": "Karol G", "title": "PROVENZA", "album": "live", "release_date": "26.4.2021",
                  "duration_ms": "215.5"}),
        ("other", {"artist": None, "title": "1234", "album": "Album (1999)", "release_date": "2003"}),
        ("other", {}),
    ]
    merged = ProfileData()
    for source, track in records:
        merged = merged.merge(build_profile([(source, track)]))

    assert build_profile(records) == merged
    assert build_profile(records).version == merged.version
    assert merged.sources["other"] == SourceStats(mixed=1, albums=1)
    assert merged.sources["feed"] == SourceStats(day_first=1, month_first=1, upper=1, lower=1, mixed=2,
                                                 decimal_small=1, decimal_large=1, albums=2, album_year_suffix=1)
