"""Several malformations in one title, featured-artist splitting, conflict rules."""

from __future__ import annotations

import pytest

from transforms import titleparse
from transforms.titleparse import (
    ARTIST_IN_TITLE,
    EXPLICIT_IN_TITLE,
    FEATURED_IN_TITLE,
    TRACK_NUMBER_PREFIX,
    may_have_parts,
    merge_featured,
    parse_title,
    resolve_explicit,
    split_featured,
)


def test_featured_and_explicit_tags_are_both_taken_out() -> None:
    parsed = parse_title("I Know [feat. Wiz Khalifa] [Explicit]")
    assert parsed.title == "I Know"
    assert parsed.featured_artists == ("Wiz Khalifa",)
    assert parsed.explicit is True
    assert [s.error_class for s in parsed.steps] == [EXPLICIT_IN_TITLE, FEATURED_IN_TITLE]
    assert [s.after for s in parsed.steps] == ["I Know [feat. Wiz Khalifa]", "I Know"]


def test_number_prefix_and_featured_credit_compose_in_order() -> None:
    parsed = parse_title("06 - SONG TITLE (feat. X)")
    assert (parsed.title, parsed.track_number, parsed.featured_artists) == ("SONG TITLE", 6, ("X",))
    assert [s.error_class for s in parsed.steps] == [TRACK_NUMBER_PREFIX, FEATURED_IN_TITLE]


def test_all_four_in_one_value() -> None:
    parsed = parse_title("03 - Drake - Nice For What (feat. Future) [Explicit]", artist="Drake")
    assert parsed.title == "Nice For What"
    assert parsed.track_number == 3 and parsed.explicit is True
    assert parsed.featured_artists == ("Future",)
    assert [s.error_class for s in parsed.steps] == [
        TRACK_NUMBER_PREFIX, ARTIST_IN_TITLE, EXPLICIT_IN_TITLE, FEATURED_IN_TITLE]


@pytest.mark.parametrize("title, number, rest", [
    ("009-Ballade a donner", 9, "Ballade a donner"),
    ("01.Jaguar - Odyssey", 1, "Jaguar - Odyssey"),
    ("1. Allegro", 1, "Allegro"),
    ("05 Intro", 5, "Intro"),
])
def test_track_number_prefixes(title: str, number: int, rest: str) -> None:
    parsed = parse_title(title)
    assert (parsed.track_number, parsed.title) == (number, rest)


@pytest.mark.parametrize("title", [
    "99 Luftballons", "7 Years", "1999", "3.14 Pi", "1-800-273-8255", "24K Magic",
    "10:15 Saturday Night", "2 + 2 = 5", "I Don't Care (with Justin Bieber)",
    "(I Can't Get No) Satisfaction", "Feats Don't Fail Me Now", "HUMBLE.",
])
def test_real_titles_are_left_whole(title: str) -> None:
    parsed = parse_title(title)
    assert parsed.title == title
    assert parsed.steps == ()


@pytest.mark.parametrize("title, artist, album", [
    # Real Spotify tracks (clean by definition) that the parse used to take apart.
    ("0 To 100 / The Catch Up", "Drake", "0 To 100 / The Catch Up"),  # a lone 0 is not zero-padded
    ("0 Sentimientos (Remix)", "Jon Z", None),
    ("47 - Remix", "Anuel AA", "47 (Remix)"),  # the album starts with the same number
    ("911 - Tom Wilson Remix", "Ellise", "911 (Tom Wilson Remix)"),
    ("Captain Jack - Short Mix", "Captain Jack", "Captain Jack Is Back"),  # only a version follows
    ("Bad Company - 2015 Remaster", "Bad Company", "Bad Company (Deluxe)"),
    ("Bhavi - BZRP Music Sessions #1", "Bhavi", "Bhavi - BZRP Music Sessions #1"),  # the release's name
])
def test_a_number_or_name_that_is_the_song_s_own_is_left(title: str, artist: str, album: str | None) -> None:
    parsed = parse_title(title, artist, album=album)
    assert parsed.title == title
    assert parsed.steps == ()


@pytest.mark.parametrize("title, artist, album, number, rest", [
    ("06 - Intro", None, "Greatest Hits", 6, "Intro"),
    ("01 - Radio Edit", None, "1999", 1, "Radio Edit"),  # the album's "1999" is not "01"
    ("Bad Company - Can't Get Enough", "Bad Company", "Bad Company (Deluxe)", None, "Can't Get Enough"),
    ("Adele - Hello", "Adele", "25", None, "Hello"),
])
def test_a_prefix_or_an_artist_put_before_the_song_still_comes_off(
        title: str, artist: str | None, album: str, number: int | None, rest: str) -> None:
    parsed = parse_title(title, artist, album=album)
    assert (parsed.track_number, parsed.title) == (number, rest)


def test_a_credit_after_a_self_titled_song_is_the_credit_not_the_title() -> None:
    parsed = parse_title("Eve - feat. Miss Kitty", "Eve")
    assert (parsed.title, parsed.featured_artists) == ("Eve", ("Miss Kitty",))
    assert [s.error_class for s in parsed.steps] == [FEATURED_IN_TITLE]


@pytest.mark.parametrize("title, rest, names, explicit", [
    # Real Spotify titles: the credit sits before the version, not at the end.
    ("Say My Name (feat. Zyra) - RAC Mix", "Say My Name - RAC Mix", ("Zyra",), None),
    ("All Eyez (feat. Jeremih) [Bonus Track]", "All Eyez [Bonus Track]", ("Jeremih",), None),
    ("Faith (with Dolly Parton) [feat. Mr. Probz] - Acoustic", "Faith (with Dolly Parton) - Acoustic",
     ("Mr. Probz",), None),
    ("Camelot (feat. Yo Gotti, BlocBoy JB & Moneybagg Yo) - Remix", "Camelot - Remix",
     ("Yo Gotti", "BlocBoy JB", "Moneybagg Yo"), None),
    ("Song (feat. A) - Remix [Explicit]", "Song - Remix", ("A",), True),
])
def test_a_credit_before_a_version_is_taken_out_and_the_version_kept(
        title: str, rest: str, names: tuple[str, ...], explicit: bool | None) -> None:
    parsed = parse_title(title)
    assert (parsed.title, parsed.featured_artists, parsed.explicit) == (rest, names, explicit)
    assert parsed.steps[-1].error_class == FEATURED_IN_TITLE


@pytest.mark.parametrize("title", ["(feat. A) - Remix", "Song (feat. A) -", "Song (feat. A) Part 2"])
def test_a_credit_without_a_song_before_or_a_version_after_is_left(title: str) -> None:
    assert parse_title(title).steps == ()


def test_a_tag_taken_off_leaves_no_dangling_separator() -> None:
    parsed = parse_title("Go Getta - (Explicit)")
    assert (parsed.title, parsed.explicit) == ("Go Getta", True)
    assert parse_title("Rollercoaster - Bonus Track (Explicit)").title == "Rollercoaster - Bonus Track"
    credited = parse_title("Song - (feat. A)")
    assert (credited.title, credited.featured_artists) == ("Song", ("A",))


def test_title_that_is_only_a_tag_is_kept() -> None:
    assert parse_title("[Explicit]").title == "[Explicit]"


def test_contradicting_tags_give_a_reason_and_no_flag_value() -> None:
    parsed = parse_title("Song [Explicit] [Clean]")
    assert parsed.explicit is None
    assert parsed.reason == "the title says both explicit and clean"


@pytest.mark.parametrize("credit, names", [
    ("Don Toliver & with Future", ("Don Toliver", "Future")),
    ("A, B and C", ("A", "B", "C")),
    ("with Future", ("Future",)),
    ("Lil Nas X", ("Lil Nas X",)),
    ("Wiz Khalifa & Wiz Khalifa", ("Wiz Khalifa",)),
])
def test_split_featured(credit: str, names: tuple[str, ...]) -> None:
    assert split_featured(credit) == names


def test_known_names_with_separators_stay_whole() -> None:
    known = {"Tyler, The Creator", "Earth, Wind & Fire"}.__contains__
    assert split_featured("Tyler, The Creator & Earth, Wind & Fire", known) == (
        "Tyler, The Creator", "Earth, Wind & Fire")


def test_featured_credit_in_title_with_with() -> None:
    parsed = parse_title("Song (feat. Don Toliver & with Future)")
    assert parsed.featured_artists == ("Don Toliver", "Future")


def test_explicit_tag_wins_over_a_false_flag() -> None:
    decision = resolve_explicit(tag=True, delivered=False)
    assert (decision.value, decision.changed, decision.flag) == (True, True, False)


def test_clean_tag_against_explicit_true_goes_to_a_person() -> None:
    decision = resolve_explicit(tag=False, delivered=True)
    assert (decision.value, decision.changed, decision.flag) == (True, False, True)


@pytest.mark.parametrize("tag, delivered, value", [(None, False, False), (True, None, True),
                                                   (False, False, False)])
def test_explicit_without_conflict(tag: bool | None, delivered: bool | None, value: bool) -> None:
    decision = resolve_explicit(tag, delivered)
    assert decision.value == value and not decision.flag


def test_repeated_featured_artist_is_not_added_twice() -> None:
    assert merge_featured(["Wiz Khalifa"], ["wiz khalifa"]) == ("Wiz Khalifa",)
    assert merge_featured(["Wiz Khalifa"], ["Future", "Wiz  Khalifa"]) == ("Wiz Khalifa", "Future")


@pytest.mark.parametrize("title", [
    "Song-Title (Live) Again", "Go-Go", "Hey Ya! [Radio] Mix", "Feat", "Little Feat Song",
    "Part 2", "Song –x", "Song -Remix", "(Intro)-Outro",
])
@pytest.mark.parametrize("artist", [None, "Song", "Song-Title", "Go", "(Intro)"])
@pytest.mark.parametrize("album", [None, "Live", "Radio", "Intro"])
def test_titles_the_pre_check_skips_have_no_part(title: str, artist: str | None,
                                                 album: str | None,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert not may_have_parts(title)
    # Every step run, as without the pre-check: none finds anything.
    monkeypatch.setattr(titleparse, "may_have_parts", lambda title: True)
    assert parse_title(title, artist, album=album).steps == ()


@pytest.mark.parametrize("title", [
    "06 - Song", "Artist - Song", "Song (Album)", "Song [Explicit]  ", "Song feat. X",
    "Song FT. X", "Song (feat X)\n",
])
def test_titles_that_may_hold_a_part_pass_the_pre_check(title: str) -> None:
    assert may_have_parts(title)
