"""The rules-only baseline: what it catches, and the look-alikes it gets wrong
on purpose (that is the gap the model has to close)."""

from __future__ import annotations

import pytest

from transforms.fields import SCORED_FIELD_NAMES
from transforms.policy import Thresholds, correct_track
from transforms.rules import detect, detect_field

TRACK = {"title": "Empire State of Mind", "artist": "Jay-Z", "album": "The Blueprint 3",
         "isrc": "USJZ10900031", "upc": "075678974731", "release_date": "2009-10-20",
         "duration_ms": "276920", "genre": "Hip Hop"}


@pytest.mark.parametrize("name,value,error_class", [
    ("title", "Caf\u00c3\u00a9 Del Mar", "mojibake"),
    ("title", "Don&#39;t Stop", "html_entity"),
    ("title", "Big\u200b Ones", "control_chars"),
    ("title", " Empire State of Mind", "whitespace"),
    ("title", "Empire\xa0State", "whitespace"),
    ("title", "EMPIRE STATE OF MIND", "all_caps"),
    ("title", "empire state of mind", "all_lower"),
    ("title", "Run This Town (feat. Rihanna)", "featured_in_title"),
    ("title", "Run This Town ft. Rihanna", "featured_in_title"),
    ("title", "Run This Town [Explicit]", "explicit_in_title"),
    ("title", "05 - Run This Town", "track_number_prefix"),
    ("title", "5. Run This Town", "track_number_prefix"),
    ("title", "Jay-Z - Run This Town", "artist_in_title"),
    ("artist", "JAY-Z", "all_caps"),
    ("album", "the blueprint 3", "all_lower"),
    ("isrc", "US-JZ1-09-00031", "isrc_format"),
    ("isrc", "usjz10900031", "isrc_format"),
    ("isrc", "USJZ1090003", "isrc_invalid"),
    ("upc", "0 75678 97473 1", "upc_format"),
    ("upc", "75678974731", "upc_format"),
    ("upc", "075678974734", "upc_check_digit"),
    ("release_date", "20-Oct-09", "date_format"),
    ("duration_ms", "4:36", "duration_format"),
    ("genre", "Hip-Hop/Rap", "genre_noncanonical"),
])
def test_rules_catch_the_plain_cases(name: str, value: str, error_class: str) -> None:
    assert detect_field(name, value, {**TRACK, name: value}) == error_class


def test_clean_track_is_clean() -> None:
    scores = detect(TRACK)
    assert set(scores.fields) == set(SCORED_FIELD_NAMES)
    assert all(v == ("clean", 1.0) for v in scores.fields.values())
    assert scores.swapped == 0.0


@pytest.mark.parametrize("name,value,artist,error_class", [
    # Real, correct values the naive rules misread.
    ("title", "HUMBLE.", "Kendrick Lamar", "all_caps"),
    ("title", "MILLION DOLLAR BABY", "Tommy Richman", "all_caps"),
    ("artist", "MGMT", "MGMT", "all_caps"),
    ("artist", "AC/DC", "AC/DC", "all_caps"),
    ("artist", "deadmau5", "deadmau5", "all_lower"),
    ("title", "bad guy", "Billie Eilish", "all_lower"),
    ("title", "1. Allegro", "Berliner Philharmoniker", "track_number_prefix"),
    ("title", "Rather Be (Clean Bandit Remix)", "Clean Bandit", "explicit_in_title"),
    ("title", "São Paulo", "Tom Zé", "clean"),
    ("title", "SÃO PAULO", "Tom Zé", "mojibake"),
])
def test_rules_misread_legitimate_look_alikes(name: str, value: str, artist: str,
                                              error_class: str) -> None:
    assert detect_field(name, value, {"title": value, "artist": artist}) == error_class


@pytest.mark.parametrize("title", ["99 Luftballons", "Symphony No. 5 - I. Allegro",
                                   "(I Can't Get No) Satisfaction", "Feats Don't Fail Me Now",
                                   "Let It Be - Remastered 2009"])
def test_rules_leave_some_look_alikes_alone(title: str) -> None:
    assert detect_field("title", title, {"title": title, "artist": "Someone"}) == "clean"


def test_duration_in_plain_seconds_slips_through_the_rules() -> None:
    # A naive integer check accepts "276"; the policy's validator still flags it.
    assert detect_field("duration_ms", "276", TRACK) == "clean"
    result = correct_track({**TRACK, "duration_ms": "276"}, detect({**TRACK, "duration_ms": "276"}),
                           thresholds=Thresholds(), model_version="rules")
    assert result.track["duration_ms"] is None
    assert [f["field"] for f in result.review] == ["duration_ms"]


def test_swap_is_invisible_to_rules() -> None:
    assert detect({**TRACK, "title": "Jay-Z", "artist": "Empire State of Mind"}).swapped == 0.0


def test_missing_values_are_clean() -> None:
    scores = detect({"title": None, "artist": ""})
    assert scores.fields["title"] == ("clean", 1.0) and scores.fields["isrc"] == ("clean", 1.0)


def test_rules_scores_drive_the_policy() -> None:
    raw = {**TRACK, "title": "Run This Town (feat. Rihanna & Kanye West)", "genre": "Rap",
           "featured_artists": []}
    result = correct_track(raw, detect(raw), thresholds=Thresholds(), model_version="rules")
    assert result.track["title"] == "Run This Town"
    assert result.track["featured_artists"] == ["Rihanna", "Kanye West"]
    assert result.track["genre"] == "Hip Hop"
