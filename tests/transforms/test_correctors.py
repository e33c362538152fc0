"""Validators and correctors: real outputs on real-looking values, plus
properties (idempotent, valid values never rewritten) checked with hypothesis."""

from __future__ import annotations

import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import ean

from transforms import correctors
from transforms.correctors import (
    canonical_genre,
    correct,
    normalize_language,
    parse_date,
    parse_duration_ms,
    parse_explicit,
    parse_track_number,
)
from transforms.fields import FIELD_SPECS, GENRE_SYNONYMS, GENRES, SCORED_FIELDS, TEXT_CLASSES

# ---------------------------------------------------------------- strategies

valid_isrcs = st.builds(
    lambda country, registrant, year, number: f"{country}{registrant}{year:02d}{number:05d}",
    st.sampled_from(["US", "GB", "DE", "FR", "BR", "SE", "JP", "QZ"]),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=3, max_size=3),
    st.integers(0, 99),
    st.integers(0, 99_999),
)
valid_upcs = st.text("0123456789", min_size=11, max_size=12).map(
    lambda body: body + ean.calc_check_digit(body))
valid_dates = st.dates(datetime.date(1900, 1, 1), datetime.date(2099, 12, 31)).map(
    datetime.date.isoformat)
valid_durations = st.integers(correctors.MIN_DURATION_MS, correctors.MAX_DURATION_MS).map(str)
VALID_VALUES = {
    "isrc": valid_isrcs,
    "upc": valid_upcs,
    "release_date": valid_dates,
    "duration_ms": valid_durations,
    "genre": st.sampled_from(GENRES),
}
# Text that looks like catalog values: letters, digits, punctuation, accents,
# entities and a few control/space characters, so the patterns actually fire.
_chars = st.text(
    st.one_of(
        st.sampled_from(list("abcXYZ019 -.()[]&;'#/:,_ÀéÃ©â€™\xa0\t\x00\u200b")),
        st.characters(codec="utf-8"),
    ),
    max_size=12,
)
# Fragments each corrector reacts to, glued in random order with random text.
_FRAGMENTS = ["01 - ", "1. ", "07 ", " (feat. ", " ft. ", "featuring ", " & ", ", ", ")", "]",
              " [Explicit]", " (Clean)", "The Band - ", "The Band – ", "&amp;", "&#39;", "Ã©",
              "â€™", "  ", "\xa0", "US-", "3:55", "/", "2008", "March ", "PT3M", "S", "Hip-Hop",
              "I", "ii", "mc", "o'", "-", "'n'", "DJ"]
catalog_text = st.lists(st.one_of(st.sampled_from(_FRAGMENTS), _chars), max_size=6).map("".join)
VALUE_CLASSES = sorted({c for spec in SCORED_FIELDS for c in spec.classes} - {"clean"})


# ---------------------------------------------------------------- properties

@pytest.mark.parametrize("error_class", VALUE_CLASSES)
@settings(max_examples=150, deadline=None)
@given(value=catalog_text)
def test_every_corrector_is_idempotent(error_class: str, value: str) -> None:
    track = {"artist": "The Band"}
    first = correct(error_class, value, track)
    if first.value is not None:
        assert correct(error_class, first.value, track).value == first.value


@pytest.mark.parametrize("name", sorted(VALID_VALUES))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_no_corrector_rewrites_a_valid_value(name: str, data: st.DataObject) -> None:
    value = data.draw(VALID_VALUES[name])
    assert correctors.VALIDATORS[name](value)
    for error_class in FIELD_SPECS[name].classes[1:]:
        assert correct(error_class, value).value == value


# ---------------------------------------------------------------- validators

@pytest.mark.parametrize("value,valid", [
    ("USS1Z9900001", True),
    ("US-S1Z-99-00001", False),  # stdnum accepts it, the canonical form has no hyphens
    ("uss1z9900001", False),
    ("XX1Z99000011", False),  # unknown country
    ("USS1Z990001", False),
])
def test_isrc_validator(value: str, valid: bool) -> None:
    assert correctors.is_valid_isrc(value) is valid


@pytest.mark.parametrize("value,valid", [
    ("036000291452", True), ("4006381333931", True), ("036000291453", False),
    ("36000291452", False), ("0360 0029 1452", False), ("０３６０００２９１４５２", False),
])
def test_upc_validator(value: str, valid: bool) -> None:
    assert correctors.is_valid_upc(value) is valid


@pytest.mark.parametrize("value,valid", [
    ("2008-03-17", True), ("2008-02-30", False), ("2008-3-17", False), ("17-Mar-08", False),
])
def test_date_validator(value: str, valid: bool) -> None:
    assert correctors.is_valid_iso_date(value) is valid


@pytest.mark.parametrize("value,valid", [
    ("235000", True), ("1000", True), ("999", False), ("235", False), ("3:55", False),
    ("0235000", False), ("-5000", False),
])
def test_duration_validator(value: str, valid: bool) -> None:
    assert correctors.is_valid_duration_ms(value) is valid


# ---------------------------------------------------------------- text

@pytest.mark.parametrize("broken,fixed", [
    ("CafÃ©", "Café"),
    ("Donâ€™t Stop", "Don’t Stop"),
    ("AntÃ´nio Carlos Jobim", "Antônio Carlos Jobim"),
    ("FÃƒÂ©rias", "Férias"),  # encoded twice
    ("Dancing Queen", "Dancing Queen"),
])
def test_mojibake(broken: str, fixed: str) -> None:
    assert correct("mojibake", broken).value == fixed


@pytest.mark.parametrize("broken,fixed", [
    ("Simon &amp; Garfunkel", "Simon & Garfunkel"),
    ("Don&#39;t Stop", "Don't Stop"),
    ("Cérebro Eletr&ocirc;nico", "Cérebro Eletrônico"),
    ("Rock &amp;amp; Roll", "Rock & Roll"),  # escaped twice
])
def test_html_entity(broken: str, fixed: str) -> None:
    assert correct("html_entity", broken).value == fixed


def test_control_chars_keep_spaces_and_letters() -> None:
    assert correct("control_chars", "\ufeffBig\x00 Ones\u200b\x1b").value == "Big Ones"
    assert correct("control_chars", "Line\tBreak").value == "Line Break"


@pytest.mark.parametrize("broken", [" Accept", "Accept  ", "Alanis\xa0Morissette ", "a  b"])
def test_whitespace(broken: str) -> None:
    assert correct("whitespace", broken).value == " ".join(broken.split())


@pytest.mark.parametrize("value,expected", [
    ("DON'T STOP ME NOW", "Don't Stop Me Now"),
    ("THE NUMBER OF THE BEAST", "The Number of the Beast"),
    ("balls to the wall", "Balls to the Wall"),
    ("WHAT ARE YOU WAITING FOR", "What Are You Waiting For"),  # last word capitalised
    ("GOOD RIDDANCE (TIME OF YOUR LIFE)", "Good Riddance (Time of Your Life)"),
    ("(WE ARE) THE ROAD CREW", "(We Are) The Road Crew"),
    ("ROCKY II: THE RETURN", "Rocky II: The Return"),
    ("PART IV", "Part IV"),
    ("I WANNA BE YOUR DOG", "I Wanna Be Your Dog"),
    ("ONE (FEAT. DJ KHALED)", "One (feat. DJ Khaled)"),
    ("X-RAY SPEX", "X-Ray Spex"),
    ("JAY-Z", "Jay-Z"),
    ("R.E.M.", "R.E.M."),
    ("PAUL MCCARTNEY", "Paul McCartney"),
    ("SINÉAD O'CONNOR", "Sinéad O'Connor"),
    ("ROCK 'N' ROLL HIGH SCHOOL", "Rock 'n' Roll High School"),
    ("2ND STREET", "2nd Street"),
    ("¿DÓNDE ESTÁS?", "¿Dónde Estás?"),
])
def test_title_case(value: str, expected: str) -> None:
    assert correct("all_caps", value).value == expected
    assert correct("all_lower", value.lower()).value == expected


# ---------------------------------------------------------------- title classes

@pytest.mark.parametrize("title,rest,names", [
    ("Empire State of Mind (feat. Alicia Keys)", "Empire State of Mind", ("Alicia Keys",)),
    ("Run the World [feat. Jay-Z & Rihanna]", "Run the World", ("Jay-Z", "Rihanna")),
    ("Song (ft. A, B and C)", "Song", ("A", "B", "C")),
    ("Song featuring Eddie Turner", "Song", ("Eddie Turner",)),
    ("Song ft. Nelly (Remix)", "Song", ("Nelly (Remix)",)),  # unbracketed runs to the end
    ("Feats Don't Fail Me Now", "Feats Don't Fail Me Now", ()),
    ("Defeated", "Defeated", ()),
])
def test_featured_in_title(title: str, rest: str, names: tuple[str, ...]) -> None:
    fix = correct("featured_in_title", title)
    assert (fix.value, fix.featured_artists) == (rest, names)


@pytest.mark.parametrize("title,rest,explicit", [
    ("Sosa [Explicit]", "Sosa", True),
    ("Sosa (Explicit Version)", "Sosa", True),
    ("Sosa (Clean)", "Sosa", False),
    ("Sosa [Clean Version]", "Sosa", False),
    ("Sosa (Edited)", "Sosa", False),
    ("Rather Be (Clean Bandit Remix)", "Rather Be (Clean Bandit Remix)", None),
])
def test_explicit_in_title(title: str, rest: str, explicit: bool | None) -> None:
    fix = correct("explicit_in_title", title)
    assert (fix.value, fix.explicit) == (rest, explicit)


def test_explicit_and_clean_in_one_title_is_for_review() -> None:
    fix = correct("explicit_in_title", "Sosa (Explicit) [Clean]")
    assert fix.value is None and "both" in fix.reason


@pytest.mark.parametrize("title,rest,number", [
    ("01 - Prowler", "Prowler", 1),
    ("1 - Prowler", "Prowler", 1),
    ("12. Prowler", "Prowler", 12),
    ("03. Remember Tomorrow", "Remember Tomorrow", 3),
    ("07 Strange World", "Strange World", 7),
    ("01 - 99 Luftballons", "99 Luftballons", 1),
    # Legitimate titles the corrector leaves alone even if asked.
    ("99 Luftballons", "99 Luftballons", None),
    ("7 Years", "7 Years", None),
    ("1979", "1979", None),
    ("5.15", "5.15", None),
    ("2-4 Grooves", "2-4 Grooves", None),
])
def test_track_number_prefix(title: str, rest: str, number: int | None) -> None:
    fix = correct("track_number_prefix", title)
    assert (fix.value, fix.track_number) == (rest, number)


def test_double_track_number_prefix_is_for_review() -> None:
    assert correct("track_number_prefix", "01 - 02 - Song").value is None


@pytest.mark.parametrize("title,artist,rest", [
    ("Olodum - Alegria Geral", "Olodum", "Alegria Geral"),
    ("BLACK SABBATH – Paranoid", "Black Sabbath", "Paranoid"),
    ("Elvis Presley - Tribute", "Dread Zeppelin", "Elvis Presley - Tribute"),
    ("Symphony No. 5 - I. Allegro", "Berliner Philharmoniker", "Symphony No. 5 - I. Allegro"),
])
def test_artist_in_title(title: str, artist: str, rest: str) -> None:
    assert correct("artist_in_title", title, {"artist": artist}).value == rest


def test_artist_in_title_needs_an_artist() -> None:
    assert correct("artist_in_title", "Olodum - Alegria", {"artist": None}).value is None
    assert correct("artist_in_title", "Olodum - Olodum - X", {"artist": "Olodum"}).value is None


def test_swap_is_its_own_inverse() -> None:
    assert correctors.swap_title_artist("Queen", "Bohemian Rhapsody") == ("Bohemian Rhapsody", "Queen")


# ---------------------------------------------------------------- identifiers

@pytest.mark.parametrize("broken", ["US-S1Z-99-00001", "US S1Z 99 00001", "uss1z9900001",
                                    "us-s1z-99-00001", " USS1Z9900001 "])
def test_isrc_format(broken: str) -> None:
    assert correct("isrc_format", broken).value == "USS1Z9900001"


@pytest.mark.parametrize("broken", ["USS1Z990001", "U5S1Z9900001", "USS1Z99O0001", "XXS1Z9900001"])
def test_invalid_isrc_is_not_a_format_problem(broken: str) -> None:
    assert correct("isrc_format", broken).value is None
    fix = correct("isrc_invalid", broken)
    assert fix.value is None and fix.reason


@pytest.mark.parametrize("broken,fixed", [
    ("0 36000 29145 2", "036000291452"),
    ("0-36000-29145-2", "036000291452"),
    ("36000291452", "036000291452"),  # dropped leading zero
    ("4006381333931", "4006381333931"),
])
def test_upc_format(broken: str, fixed: str) -> None:
    assert correct("upc_format", broken).value == fixed


def test_upc_format_does_not_invent_a_code() -> None:
    assert correct("upc_format", "36000291453").value is None  # "0" + it does not validate
    assert correct("upc_format", "UPC 0360").value is None
    assert correct("upc_check_digit", "036000291453").value is None


# ---------------------------------------------------------------- dates

@pytest.mark.parametrize("text,expected", [
    ("17-Mar-08", datetime.date(2008, 3, 17)),
    ("March 17, 2008", datetime.date(2008, 3, 17)),
    ("Mar. 17, 2008", datetime.date(2008, 3, 17)),
    ("17 March 2008", datetime.date(2008, 3, 17)),
    ("3/17/2008", datetime.date(2008, 3, 17)),
    ("17/03/2008", datetime.date(2008, 3, 17)),
    ("17.03.2008", datetime.date(2008, 3, 17)),
    ("2008.03.17", datetime.date(2008, 3, 17)),
    ("2008/03/17", datetime.date(2008, 3, 17)),
    ("20080317", datetime.date(2008, 3, 17)),
    ("2008-03-17T23:30:00-05:00", datetime.date(2008, 3, 17)),  # the sender's local date
    ("04/04/2008", datetime.date(2008, 4, 4)),  # same either way
    ("17-Mar-65", datetime.date(1965, 3, 17)),
    ("1/5/29", None),  # ambiguous
    ("5/13/29", datetime.date(2029, 5, 13)),
    ("5/13/30", datetime.date(1930, 5, 13)),
])
def test_parse_date(text: str, expected: datetime.date | None) -> None:
    assert parse_date(text)[0] == expected


@pytest.mark.parametrize("text", ["03/04/2008", "4.3.2008", "12/11/99"])
def test_ambiguous_dates_are_flagged_not_guessed(text: str) -> None:
    fix = correct("date_format", text)
    assert fix.value is None
    assert fix.reason.startswith("ambiguous day and month")


@pytest.mark.parametrize("text", ["2008-02-30", "March 2008", "Smarch 17, 2008", "32/13/2008", ""])
def test_unreadable_dates(text: str) -> None:
    assert correct("date_format", text).value is None


# ---------------------------------------------------------------- durations

@pytest.mark.parametrize("text,ms", [
    ("3:55", 235_000), ("03:55", 235_000), ("235", 235_000), ("235.5", 235_500),
    ("343.719", 343_719), ("1:02:03", 3_723_000), ("5:43.719", 343_719), ("PT3M55S", 235_000),
    ("PT1H2M3S", 3_723_000), ("pt5m43.719s", 343_719), ("235000", 235_000), ("75:30", 4_530_000),
    ("3:75", None), ("1:75:00", None), ("abc", None), ("0:00", None), ("", None), ("PT", None),
])
def test_parse_duration(text: str, ms: int | None) -> None:
    assert parse_duration_ms(text) == ms
    assert correct("duration_format", text).value == (None if ms is None else str(ms))


# ---------------------------------------------------------------- genres

@pytest.mark.parametrize("text,genre", [
    ("Hip-Hop/Rap", "Hip Hop"), ("hip hop", "Hip Hop"), ("HipHop", "Hip Hop"), ("Rap", "Hip Hop"),
    ("R&B/Soul", "R&B"), ("RnB", "R&B"), ("Electronica/Dance", "Electronic"),
    ("Heavy Metal", "Metal"), ("Rock And Roll", "Rock and Roll"), ("Rock & Roll", "Rock and Roll"),
    ("rock 'n' roll", "Rock and Roll"), ("Alternative & Punk", "Alternative"),
    ("childrens", "Children's"), ("BOSSA-NOVA", "Bossa Nova"), ("Soul", "Soul"),
])
def test_genre_synonyms(text: str, genre: str) -> None:
    assert correct("genre_noncanonical", text).value == genre


def test_unknown_genre_goes_to_review() -> None:
    fix = correct("genre_noncanonical", "Sci Fi & Fantasy")
    assert fix.value is None and "vocabulary" in fix.reason


def test_genre_table_maps_onto_the_vocabulary_without_clashes() -> None:
    assert set(GENRE_SYNONYMS.values()) <= set(GENRES)
    for genre in GENRES:
        assert canonical_genre(genre) == genre
    for synonym, genre in GENRE_SYNONYMS.items():
        assert canonical_genre(synonym) == genre, synonym


# ---------------------------------------------------------------- typing helpers

@pytest.mark.parametrize("text,value", [
    ("true", True), ("1", True), ("Yes", True), ("EXPLICIT", True), ("false", False),
    ("0", False), ("no", False), ("Clean", False), ("maybe", None), ("", None),
])
def test_parse_explicit(text: str, value: bool | None) -> None:
    assert parse_explicit(text) == value


@pytest.mark.parametrize("text,value", [
    ("3", 3), ("03", 3), ("3/12", 3), ("3 of 12", 3), (" 7 ", 7), ("0", None), ("A1", None),
    ("three", None),
])
def test_parse_track_number(text: str, value: int | None) -> None:
    assert parse_track_number(text) == value


@pytest.mark.parametrize("text,code", [
    ("en", "en"), ("EN", "en"), ("en-US", "en"), ("pt_BR", "pt"), ("English", "en"),
    ("eng", "en"), ("Português", "pt"), ("deu", "de"), ("Deutsch", "de"), ("ENGLISH", "en"),
    # ISO 639-2/B codes and the abbreviations MusicBrainz sources write.
    ("Eng.", "en"), ("Ger.", "de"), ("Fre.", "fr"), ("Jap.", "ja"), ("iw", "he"),
    # Valid BCP 47 without a two-letter form: kept as they are.
    ("yue", "yue"), ("fil", "fil"), ("zxx", "zxx"), ("[Multiple languages]", "mul"),
    # Not a language: no guessing, the policy flags them.
    ("xx", None), ("Englsih", None), ("Elvish", None), ("E.", None), ("zh-", None),
    # Typos of abbreviations that happen to be ISO 639-3 codes (Crow, Negidal, Enga, Ndonga).
    ("Cro.", None), ("nEg.", None), ("Enq.", None), ("ng.", None), ("Cze.", "cs"), ("Est.", "et"),
])
def test_normalize_language(text: str, code: str | None) -> None:
    assert normalize_language(text) == code


def test_every_scored_class_has_a_corrector() -> None:
    for spec in SCORED_FIELDS:
        for error_class in spec.classes[1:]:
            assert error_class in correctors.FIELD_CLASSES
    assert set(TEXT_CLASSES[1:]) <= correctors.FIELD_CLASSES


def test_unknown_class_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        correct("no_such_class", "x")
