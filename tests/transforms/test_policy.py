"""The decision policy: thresholds, the validator guard, review for what cannot
be corrected, typing, ordering, and output that the Avro schema accepts."""

from __future__ import annotations

import datetime
import io
import json
from pathlib import Path
from typing import Any

import fastavro
import pytest

from transforms.fields import INVALID_VALUE, LANGUAGE_CODE, SWAP_CLASS, TRACK_FIELDS
from transforms.policy import CorrectionResult, RecordScores, Thresholds, correct_track
from transforms.profile import ProfileData, build_profile

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "schemas"

RAW: dict[str, Any] = {
    "title": "Empire State of Mind",
    "artist": "Jay-Z",
    "featured_artists": ["Alicia Keys"],
    "album": "The Blueprint 3",
    "isrc": "USJZ10900031",
    "upc": "075678974731",
    "release_date": "2009-10-20",
    "duration_ms": "276920",
    "genre": "Hip Hop",
    "explicit": "true",
    "track_number": "5",
    "language": "en",
}
TYPED = {
    **RAW,
    "featured_artists": ["Alicia Keys"],
    "release_date": datetime.date(2009, 10, 20),
    "duration_ms": 276920,
    "explicit": True,
    "track_number": 5,
}


def run(raw: dict[str, Any], fields: dict[str, tuple[str, float]] | None = None,
        swapped: float = 0.0, thresholds: Thresholds | None = None,
        profile: ProfileData | None = None, source: str | None = None) -> CorrectionResult:
    return correct_track(raw, RecordScores(fields=fields or {}, swapped=swapped),
                         thresholds=thresholds or Thresholds(), model_version="m-test",
                         profile=profile, source=source)


def with_(**changes: Any) -> dict[str, Any]:
    return {**RAW, **changes}


# A record that shouts as a whole: case classes may apply to it without a profile.
SHOUTING = {"title": "EMPIRE STATE OF MIND", "artist": "JAY-Z", "album": "THE BLUEPRINT 3"}
# The pair seen the right way round: evidence for un-swapping it.
KNOWS_THE_PAIR = build_profile([("s", {"artist": "Jay-Z", "title": "Empire State of Mind"})])


def test_clean_track_is_typed_and_untouched() -> None:
    result = run(RAW)
    assert result.track == TYPED
    assert result.corrections == [] and result.review == []


def test_high_confidence_class_is_corrected_with_a_correction_entry() -> None:
    result = run(with_(**SHOUTING), {"title": ("all_caps", 0.97)})
    assert result.track["title"] == "Empire State of Mind"
    assert result.corrections == [{
        "field": "title", "before": "EMPIRE STATE OF MIND", "after": "Empire State of Mind",
        "error_class": "all_caps", "confidence": 0.97, "model_version": "m-test",
    }]
    assert result.review == []


def test_mid_confidence_is_flagged_and_left_as_delivered() -> None:
    result = run(with_(**SHOUTING), {"title": ("all_caps", 0.7)})
    assert result.track["title"] == "EMPIRE STATE OF MIND"
    assert result.corrections == []
    assert result.review == [{"field": "title", "value": "EMPIRE STATE OF MIND",
                              "error_class": "all_caps", "confidence": 0.7,
                              "reason": "confidence below the apply threshold"}]


def test_low_confidence_is_left_alone() -> None:
    result = run(with_(title="EMPIRE STATE OF MIND"), {"title": ("all_caps", 0.3)})
    assert result.track["title"] == "EMPIRE STATE OF MIND"
    assert result.corrections == [] and result.review == []


def test_thresholds_are_inclusive_at_the_bounds() -> None:
    raw = with_(**SHOUTING)
    assert run(raw, {"title": ("all_caps", 0.9)}).corrections
    assert run(raw, {"title": ("all_caps", 0.5)}).review
    custom = Thresholds(apply=0.6, review=0.2)
    assert run(raw, {"title": ("all_caps", 0.6)}, thresholds=custom).corrections


def test_thresholds_must_be_ordered() -> None:
    with pytest.raises(ValueError):
        Thresholds(apply=0.4, review=0.5)


@pytest.mark.parametrize("name,error_class", [
    ("isrc", "isrc_format"), ("isrc", "isrc_invalid"), ("upc", "upc_format"),
    ("upc", "upc_check_digit"), ("release_date", "date_format"),
    ("duration_ms", "duration_format"), ("genre", "genre_noncanonical"),
])
def test_valid_values_are_never_rewritten_or_flagged(name: str, error_class: str) -> None:
    for confidence in (0.6, 0.99):
        result = run(RAW, {name: (error_class, confidence)})
        assert result.track == TYPED
        assert result.corrections == [] and result.review == []


@pytest.mark.parametrize("name,value,error_class,reason", [
    ("isrc", "USJZ1090003", "isrc_invalid", "invalid ISRC"),
    ("upc", "075678974734", "upc_check_digit", "check digit"),
    ("release_date", "03/04/2009", "date_format", "ambiguous day and month"),
    ("genre", "Vaporwave", "genre_noncanonical", "vocabulary"),
    ("isrc", "US-JZ1-09-0003", "isrc_format", "not a valid ISRC"),
])
def test_uncorrectable_values_go_to_review(name: str, value: str, error_class: str,
                                            reason: str) -> None:
    result = run(with_(**{name: value}), {name: (error_class, 0.98)})
    assert result.corrections == []
    [flag] = result.review
    assert flag["field"] == name and flag["value"] == value
    assert flag["error_class"] == error_class and reason in flag["reason"]
    # Strings stay as delivered; a date that cannot be read becomes None.
    assert result.track[name] == (None if name == "release_date" else value)


def test_invalid_values_are_flagged_even_if_the_model_misses_them() -> None:
    result = run(with_(isrc="USJZ1090003", genre="Vaporwave", duration_ms="abc"))
    assert {(f["field"], f["error_class"], f["value"]) for f in result.review} == {
        ("isrc", INVALID_VALUE, "USJZ1090003"), ("genre", INVALID_VALUE, "Vaporwave"),
        ("duration_ms", INVALID_VALUE, "abc")}
    assert result.track["duration_ms"] is None  # the raw value lives on in the flag
    assert result.track["isrc"] == "USJZ1090003"


@pytest.mark.parametrize("name,value,error_class,typed", [
    ("release_date", "17-Mar-08", "date_format", datetime.date(2008, 3, 17)),
    ("duration_ms", "4:36", "duration_format", 276000),
    ("duration_ms", "276.92", "duration_format", 276920),
    ("isrc", "us-jz1-09-00031", "isrc_format", "USJZ10900031"),
    ("upc", "75678974731", "upc_format", "075678974731"),
    ("genre", "Hip-Hop/Rap", "genre_noncanonical", "Hip Hop"),
])
def test_typed_fields_are_corrected_and_typed(name: str, value: str, error_class: str,
                                              typed: Any) -> None:
    result = run(with_(**{name: value}), {name: (error_class, 0.95)})
    assert result.track[name] == typed
    [correction] = result.corrections
    assert correction["before"] == value and correction["error_class"] == error_class
    assert result.review == []


def test_featured_artists_move_from_title_to_the_list() -> None:
    raw = with_(title="Empire State of Mind (feat. Alicia Keys & Mr. Hudson)",
                featured_artists=[])
    result = run(raw, {"title": ("featured_in_title", 0.95)})
    assert result.track["title"] == "Empire State of Mind"
    assert result.track["featured_artists"] == ["Alicia Keys", "Mr. Hudson"]
    assert [c["field"] for c in result.corrections] == ["title", "featured_artists"]
    assert result.corrections[1]["before"] == "[]"
    assert json.loads(result.corrections[1]["after"]) == ["Alicia Keys", "Mr. Hudson"]


def test_featured_artists_already_listed_are_not_repeated() -> None:
    result = run(with_(title="Empire State of Mind (feat. Alicia Keys)"),
                 {"title": ("featured_in_title", 0.95)})
    assert result.track["featured_artists"] == ["Alicia Keys"]
    assert [c["field"] for c in result.corrections] == ["title"]


def test_explicit_marker_fills_a_missing_flag() -> None:
    result = run(with_(title="Empire State of Mind [Explicit]", explicit=None),
                 {"title": ("explicit_in_title", 0.95)})
    assert result.track["title"] == "Empire State of Mind"
    assert result.track["explicit"] is True
    assert [(c["field"], c["after"]) for c in result.corrections] == [
        ("title", "Empire State of Mind"), ("explicit", "true")]


def test_explicit_marker_that_contradicts_the_flag_is_flagged() -> None:
    result = run(with_(title="Empire State of Mind (Clean)", explicit="true"),
                 {"title": ("explicit_in_title", 0.95)})
    assert result.track["explicit"] is True  # the field as delivered
    assert [f["field"] for f in result.review] == ["explicit"]


def test_track_number_prefix_fills_the_track_number() -> None:
    result = run(with_(title="05 - Empire State of Mind", track_number=None),
                 {"title": ("track_number_prefix", 0.95)})
    assert result.track["title"] == "Empire State of Mind"
    assert result.track["track_number"] == 5
    assert [c["field"] for c in result.corrections] == ["title", "track_number"]


def test_artist_in_title_uses_the_artist() -> None:
    result = run(with_(title="JAY-Z - Empire State of Mind"), {"title": ("artist_in_title", 0.95)})
    assert result.track["title"] == "Empire State of Mind"


def test_artist_in_title_matches_the_artist_before_its_own_correction() -> None:
    raw = with_(title="JAY-Z - Empire State of Mind", artist="JAY-Z\u200b")
    result = run(raw, {"title": ("artist_in_title", 0.95), "artist": ("control_chars", 0.95)})
    assert (result.track["title"], result.track["artist"]) == ("Empire State of Mind", "JAY-Z")


def test_swap_is_applied_with_two_corrections() -> None:
    raw = with_(title="Jay-Z", artist="Empire State of Mind")
    result = run(raw, swapped=0.96, profile=KNOWS_THE_PAIR)
    assert (result.track["title"], result.track["artist"]) == ("Empire State of Mind", "Jay-Z")
    assert [(c["field"], c["error_class"]) for c in result.corrections] == [
        ("title", SWAP_CLASS), ("artist", SWAP_CLASS)]


def test_scores_follow_the_values_through_a_swap() -> None:
    raw = with_(title="JAY-Z", artist="EMPIRE STATE OF MIND", album="THE BLUEPRINT 3")
    result = run(raw, {"artist": ("all_caps", 0.95)}, swapped=0.96, profile=KNOWS_THE_PAIR)
    assert (result.track["title"], result.track["artist"]) == ("Empire State of Mind", "JAY-Z")


def test_a_swap_without_profile_evidence_is_neither_applied_nor_flagged() -> None:
    # "Rush" / "Troye Sivan": a short title and a two-word artist look swapped to the model.
    raw = with_(title="Rush", artist="Troye Sivan")
    knows_the_artist = build_profile([("s", {"artist": "Troye Sivan", "title": "Angel Baby"})])
    for profile in (None, knows_the_artist):
        result = run(raw, swapped=0.999, profile=profile)
        assert (result.track["title"], result.track["artist"]) == ("Rush", "Troye Sivan")
        assert result.corrections == [] and result.review == []


def test_a_swap_with_evidence_needs_the_model_at_review_level() -> None:
    raw = with_(title="Jay-Z", artist="Empire State of Mind")
    assert run(raw, swapped=0.6, profile=KNOWS_THE_PAIR).track["title"] == "Empire State of Mind"
    assert run(raw, swapped=0.2, profile=KNOWS_THE_PAIR).corrections == []


@pytest.mark.parametrize("raw_value,typed", [
    ("true", True), ("1", True), ("Yes", True), ("explicit", True), ("false", False),
    ("0", False), ("no", False), ("clean", False), (None, None), ("", None),
])
def test_explicit_is_typed(raw_value: str | None, typed: bool | None) -> None:
    result = run(with_(explicit=raw_value))
    assert result.track["explicit"] is typed
    assert result.review == []


@pytest.mark.parametrize("raw_value,typed", [("3", 3), ("03", 3), ("3/12", 3), (None, None)])
def test_track_number_is_typed(raw_value: str | None, typed: int | None) -> None:
    assert run(with_(track_number=raw_value)).track["track_number"] == typed


@pytest.mark.parametrize("name,raw_value", [
    ("explicit", "sometimes"), ("track_number", "A1"), ("release_date", "last spring"),
    ("duration_ms", "abc"), ("language", "Elvish"),
])
def test_untypable_values_are_never_lost(name: str, raw_value: str) -> None:
    result = run(with_(**{name: raw_value}))
    [flag] = result.review
    expected = LANGUAGE_CODE if name == "language" else INVALID_VALUE
    assert (flag["field"], flag["value"], flag["error_class"]) == (name, raw_value, expected)
    assert result.track[name] == (raw_value if name == "language" else None)


@pytest.mark.parametrize("raw_value,code", [("EN", "en"), ("English", "en"), ("en-US", "en"), ("Ger.", "de")])
def test_language_is_normalised_with_a_correction(raw_value: str, code: str) -> None:
    result = run(with_(language=raw_value))
    assert result.track["language"] == code
    assert [(c["field"], c["error_class"]) for c in result.corrections] == [
        ("language", LANGUAGE_CODE)]


def test_wrong_class_for_a_field_is_an_error() -> None:
    with pytest.raises(ValueError):
        run(RAW, {"isrc": ("all_caps", 0.99)})


def test_deterministic_and_ordered_by_track_fields() -> None:
    raw = with_(title="05 - EMPIRE STATE OF MIND", artist="JAY-Z", album="THE BLUEPRINT 3",
                isrc="us-jz1-09-00031",
                release_date="17-Mar-08", language="EN", genre="Rap", track_number=None,
                upc="075678974734")
    fields = {"title": ("track_number_prefix", 0.95), "artist": ("all_caps", 0.91),
              "isrc": ("isrc_format", 0.97), "release_date": ("date_format", 0.93),
              "genre": ("genre_noncanonical", 0.92), "upc": ("upc_check_digit", 0.99)}
    first = run(raw, fields)
    assert first == run(dict(raw), dict(fields))
    order = [TRACK_FIELDS.index(c["field"]) for c in first.corrections]
    assert order == sorted(order)
    assert [c["field"] for c in first.corrections] == [
        "title", "artist", "isrc", "release_date", "genre", "track_number", "language"]
    assert [f["field"] for f in first.review] == ["upc"]


def _corrected_record(result: CorrectionResult) -> dict[str, Any]:
    return {
        "record_key": "e1@m-test", "event_id": "e1", "entity_id": None, "source": None,
        "event_time": None, "track": result.track, "corrections": result.corrections,
        "review": result.review, "model_version": "m-test", "pipeline_version": "test",
        "profile_version": "p-0123456789abcdef", "release_date_precision": result.release_date_precision,
        "input": {"topic": None, "partition": None, "offset": None, "timestamp_ms": None},
    }


def test_output_matches_the_corrected_record_schema() -> None:
    schema = fastavro.schema.load_schema(str(SCHEMA_DIR / "corrected_record.avsc"))
    raw = with_(title="Empire State of Mind (feat. Mr. Hudson)", release_date="17-Mar-08",
                upc="075678974734", duration_ms="abc", language="EN")
    result = run(raw, {"title": ("featured_in_title", 0.95), "release_date": ("date_format", 0.95),
                       "upc": ("upc_check_digit", 0.6)})
    record = _corrected_record(result)
    assert fastavro.validation.validate(record, schema, strict=True)
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema, record, strict=True)
    buffer.seek(0)
    back = fastavro.schemaless_reader(buffer, schema)
    assert back["track"] == result.track
    assert back["track"]["release_date"] == datetime.date(2008, 3, 17)


# ------------------------------------------------------------------ issue 11: the examples
def _classes(result: CorrectionResult, name: str) -> list[str]:
    return [c["error_class"] for c in result.corrections if c["field"] == name]


@pytest.mark.parametrize("artist,error_class", [("KAROL G", "all_caps"), ("benny blanco", "all_lower")])
def test_a_known_official_form_is_never_recased(artist: str, error_class: str) -> None:
    profile = build_profile([("spotify", {"artist": artist, "title": "Provenza"})] * 3)
    raw = with_(title=artist.upper() if error_class == "all_caps" else artist.lower(),
                artist=artist, album=artist)  # even a record that shouts as a whole
    result = run(raw, {"artist": (error_class, 0.999)}, profile=profile, source="spotify")
    assert result.track["artist"] == artist
    assert _classes(result, "artist") == [] and result.review == []


def test_an_unknown_stylised_name_is_neither_recased_nor_flagged() -> None:
    result = run(with_(artist="ILLENIUM"), {"artist": ("all_caps", 0.999)})
    assert result.track["artist"] == "ILLENIUM" and result.corrections == [] and result.review == []


@pytest.mark.parametrize("raw", [
    # Real Spotify records (clean): a single whose album repeats its title, an artist's caps.
    {"title": "GUD VIBRATIONS", "artist": "NGHTMRE", "album": "GUD VIBRATIONS"},
    {"title": "ISSO LIT", "artist": "CHRYS THOMPSON", "album": None},
])
def test_a_record_in_caps_with_two_texts_is_stylisation_not_shouting(raw: dict[str, Any]) -> None:
    result = run(with_(**raw), {"title": ("all_caps", 0.9999), "artist": ("all_caps", 0.9999)})
    assert (result.track["title"], result.track["artist"]) == (raw["title"], raw["artist"])
    assert result.corrections == [] and result.review == []


def test_a_shouting_source_is_recased_by_its_habit() -> None:
    profile = build_profile([("shouty", {"title": "SONG", "album": "ALBUM"})] * 3)
    result = run(with_(title="EMPIRE STATE OF MIND"), {"title": ("all_caps", 0.999)},
                 profile=profile, source="shouty")
    assert result.track["title"] == "Empire State of Mind"


def test_a_month_first_source_resolves_an_ambiguous_date() -> None:
    profile = build_profile([("us-feed", {"release_date": d}) for d in ("4/26/2024", "1/13/2024", "12/31/2023")])
    result = run(with_(release_date="5/4/2024"), profile=profile, source="us-feed")
    assert result.track["release_date"] == datetime.date(2024, 5, 4)
    assert _classes(result, "release_date") == ["date_format"] and result.review == []
    unknown = run(with_(release_date="5/4/2024"), profile=profile, source="new-feed")
    assert unknown.track["release_date"] is None
    assert [(f["field"], f["error_class"]) for f in unknown.review] == [("release_date", "date_format")]


@pytest.mark.parametrize("value,day,precision", [
    ("2012", datetime.date(2012, 1, 1), "year"), ("2019-06", datetime.date(2019, 6, 1), "month"),
    ("1999-03-00", datetime.date(1999, 3, 1), "month"), ("2009-10-20", datetime.date(2009, 10, 20), "day"),
])
def test_partial_dates_are_a_precision_not_an_error(value: str, day: datetime.date, precision: str) -> None:
    result = run(with_(release_date=value), {"release_date": ("date_format", 0.99)})
    assert (result.track["release_date"], result.release_date_precision) == (day, precision)
    assert result.review == [] and _classes(result, "release_date") == []


def test_reversible_mojibake_is_repaired_before_the_model() -> None:
    result = run(with_(title="Hotel California â€“ Live Ã  Paris"), {"title": ("all_caps", 0.99)})
    assert result.track["title"] == "Hotel California – Live à Paris"
    assert _classes(result, "title") == ["mojibake"] and result.review == []


def test_lost_characters_are_flagged_raw_and_never_reshaped() -> None:
    raw = with_(title="Lï¿½ï¿½ï¿½AMOUR DE", artist="X", album="Y")
    result = run(raw, {"title": ("all_caps", 0.999)})
    assert result.track["title"] == "Lï¿½ï¿½ï¿½AMOUR DE" and result.corrections == []
    assert [(f["field"], f["value"], f["error_class"]) for f in result.review] == [
        ("title", "Lï¿½ï¿½ï¿½AMOUR DE", "unrecoverable_text")]


def test_a_title_with_several_malformations_is_fully_split() -> None:
    result = run(with_(title="I Know [feat. Wiz Khalifa] [Explicit]", artist="Big Sean",
                       featured_artists=[], explicit="false"))
    assert (result.track["title"], result.track["featured_artists"], result.track["explicit"]) == (
        "I Know", ["Wiz Khalifa"], True)
    assert [(c["field"], c["error_class"]) for c in result.corrections] == [
        ("title", "explicit_in_title"), ("title", "featured_in_title"),
        ("featured_artists", "featured_in_title"), ("explicit", "explicit_in_title")]


def test_every_fix_of_a_numbered_shouted_title_is_made() -> None:
    raw = with_(title="06 - SONG TITLE (feat. X)", artist="JAY-Z", album="THE ALBUM", track_number=None,
                featured_artists=[])
    result = run(raw, {"title": ("all_caps", 0.999)})
    assert (result.track["title"], result.track["track_number"], result.track["featured_artists"]) == (
        "Song Title", 6, ["X"])
    assert _classes(result, "title") == ["track_number_prefix", "featured_in_title", "all_caps"]


def test_a_repeated_featured_credit_is_deduplicated() -> None:
    result = run(with_(title="Empire State of Mind (feat. alicia keys)"))
    assert result.track["featured_artists"] == ["Alicia Keys"]
    assert result.track["title"] == "Empire State of Mind"
    assert _classes(result, "featured_artists") == []


def test_a_clean_tag_against_explicit_true_is_flagged() -> None:
    result = run(with_(title="Empire State of Mind (Clean)", explicit="true"))
    assert result.track["explicit"] is True
    assert [(f["field"], f["error_class"]) for f in result.review] == [("explicit", "explicit_in_title")]


def test_decimal_minutes_are_never_read_as_seconds() -> None:
    minutes = build_profile([("mb01", {"duration_ms": d}) for d in ("3.663", "4.033", "2.5")])
    assert run(with_(duration_ms="3.663"), profile=minutes, source="mb01").track["duration_ms"] == 219780
    unknown = run(with_(duration_ms="3.663"), {"duration_ms": ("duration_format", 0.999)})
    assert unknown.track["duration_ms"] is None
    assert [(f["field"], f["error_class"]) for f in unknown.review] == [("duration_ms", "duration_format")]


def test_placeholders_become_null_with_an_entry_and_the_title_gives_the_artist_back() -> None:
    profile = build_profile([("s", {"artist": "Daniel Balavoine", "title": "SOS d'un terrien"})])
    raw = with_(title="Daniel Balavoine - L'enfant", artist="--", album="null", language="Eng.")
    result = run(raw, profile=profile, source="mbox")
    assert (result.track["artist"], result.track["title"], result.track["album"]) == (
        "Daniel Balavoine", "L'enfant", None)
    assert result.track["language"] == "en"
    assert _classes(result, "artist") == ["placeholder", "artist_in_title"]
    assert _classes(result, "album") == ["placeholder"]


# A feed that appends the year to every album (MusicBrainz's source 4 does it to
# 74 % of its albums), and a store whose albums carry years as part of real names.
SUFFIXING = build_profile([("a0", {"album": f"Album {i} ({1990 + i})"}) for i in range(20)])
NAMES_WITH_YEARS = build_profile(
    [("store", {"album": "1989 (Taylor's Version)", "release_date": "2023-10-27"}),
     ("store", {"album": "Live (1979)", "release_date": "1979-06-01"})]
    + [("store", {"album": f"Album {i}"}) for i in range(20)])


def test_a_year_suffix_comes_off_the_albums_of_a_source_with_the_habit() -> None:
    result = run(with_(album="Elephunk (2003)", release_date=None), profile=SUFFIXING, source="a0")
    assert result.track["album"] == "Elephunk"
    assert [(c["field"], c["before"], c["after"], c["error_class"]) for c in result.corrections] == [
        ("album", "Elephunk (2003)", "Elephunk", "album_year_suffix")]
    assert result.review == []
    # A suffix that is not the record's own release year is not the habit's: kept.
    other_year = run(with_(album="Elephunk (2003)"), profile=SUFFIXING, source="a0")
    assert other_year.track["album"] == "Elephunk (2003)" and other_year.corrections == []


@pytest.mark.parametrize("album,release_date", [
    ("1989 (Taylor's Version)", "2023-10-27"), ("Live (1979)", "1979-06-01"),
    ("Live (1979)", None), ("Greatest Hits (1999)", "1999-01-01"),
])
def test_a_year_in_an_album_from_a_source_without_the_habit_is_never_touched(
        album: str, release_date: str | None) -> None:
    for profile, source in ((NAMES_WITH_YEARS, "store"), (SUFFIXING, "unknown-source"), (None, None)):
        result = run(with_(album=album, release_date=release_date), profile=profile, source=source)
        assert result.track["album"] == album
        assert result.corrections == [] and result.review == []
