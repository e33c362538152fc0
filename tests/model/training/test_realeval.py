"""Real-data evaluation and threshold choice: counting rules on hand-made records."""

from __future__ import annotations

from model.training.realdata import RealRecord
from model.training.realeval import (
    BUDGETS,
    THRESHOLD_GRID,
    budgets_met,
    choose_thresholds,
    evaluate_real,
    judged,
    policy_for,
    replay_profile,
)
from transforms.policy import RecordScores, Thresholds
from transforms.profile import build_profile


def _clean(title: str, artist: str, dataset: str = "spotify", album: str | None = None) -> RealRecord:
    track = {"title": title, "artist": artist, **({"album": album} if album else {})}
    return RealRecord(dataset, title, dataset, f"artist:{artist}", track, dict(track))


def _malformed(field: str, raw: str, truth: object, label: str, **track: str) -> RealRecord:
    return RealRecord("musicbrainz", raw, "mb-x", "cluster:1", {field: raw, **track}, {field: truth},
                      {field: (label,)}, support=2)


NOTHING = RecordScores(fields={})


def test_clean_changes_reviews_and_featured_extraction_are_counted_apart() -> None:
    records = [_clean("Song (feat. B)", "A"), _clean("SHOUT", "LOUD", album="NOISE"), _clean("Fine", "Artist")]
    scores = [NOTHING, RecordScores(fields={"title": ("all_caps", 0.999)}), NOTHING]
    head = evaluate_real(records, scores, policy_for(Thresholds(0.99, 0.5), "m", None)).headline()
    assert head["clean_records"] == 3
    assert head["clean_featured_extraction"] == 1 / 3
    assert head["clean_changed"] == 1 / 3  # the record that shouts as a whole
    assert head["clean_review"] == 0 and head["swaps_applied"] == 0


def test_malformations_are_handled_when_fixed_or_flagged_with_the_right_class() -> None:
    records = [
        _malformed("title", "009-Song", "Song", "track_number_prefix"),
        _malformed("release_date", "'75", "1975", "year_only"),
        _malformed("album", "--", "Real Album", "placeholder"),
        _malformed("duration_ms", "3.663", 219780, "duration_format"),  # flagged: unit unknown
        _malformed("title", "Song - Album", "Song", "album_in_title", album="Other"),  # missed
    ]
    summary = evaluate_real(records, [NOTHING] * 5, policy_for(Thresholds(), "m", None)).summary()
    labels = summary["malformed"]["musicbrainz(support>=2)"]["labels"]
    assert labels["title.track_number_prefix"]["fixed"] == 1.0
    assert labels["release_date.year_only"]["fixed"] == 1.0
    assert labels["album.placeholder"]["fixed"] == 1.0
    assert labels["duration_ms.duration_format"]["flagged"] == 1.0
    assert labels["title.album_in_title"]["handled"] == 0.0
    assert summary["headline"]["malformed_handled"] == 4 / 5


def test_a_title_is_fixed_when_only_its_credit_moved_to_the_featured_artists() -> None:
    truth = "It's Over (feat. Malaya) (DS mix)"
    records = [_malformed("title", f"011-{truth}", truth, "track_number_prefix"),
               _malformed("title", "012-It's Over (DS mix)", truth, "track_number_prefix")]
    summary = evaluate_real(records, [NOTHING] * 2, policy_for(Thresholds(), "m", None)).summary()
    label = summary["malformed"]["musicbrainz(support>=2)"]["labels"]["title.track_number_prefix"]
    assert label["fixed"] == 1 / 2  # the second lost its credit instead of moving it


def test_an_album_year_suffix_is_handled_once_the_profile_knows_the_source_habit() -> None:
    records = [_malformed("album", "Elephunk (2003)", "Elephunk", "album_year_suffix")]
    habit = build_profile([("mb-x", {"album": f"A{i} (1999)"}) for i in range(20)])
    for profile, handled in ((None, 0.0), (habit, 1.0)):
        summary = evaluate_real(records, [NOTHING], policy_for(Thresholds(), "m", profile)).summary()
        label = summary["malformed"]["musicbrainz(support>=2)"]["labels"]["album.album_year_suffix"]
        assert (label["handled"], label["fixed"]) == (handled, handled)


def test_a_replay_knows_an_artist_from_the_other_records_it_corrects() -> None:
    """An artist moved into the title ("--" left behind) is given back only by a profile that
    knows the artist: the reference profile never knows a test artist, a replay's own
    profile does when the artist is credited elsewhere in its input."""
    moved = _malformed("title", "Shackleton - Ganda Rising", "Ganda Rising", "artist_in_title", artist="--")
    records = [moved, _clean("Blood on My Hands", "Shackleton", "musicbrainz")]
    results = {}
    for name, profile in (("reference", build_profile([])), ("replay", replay_profile(records))):
        summary = evaluate_real(records, [NOTHING] * 2, policy_for(Thresholds(), "m", profile)).summary()
        results[name] = summary["malformed"]["musicbrainz(support>=2)"]["labels"]["title.artist_in_title"]
    assert (results["reference"]["fixed"], results["reference"]["flagged"]) == (0.0, 1.0)
    assert (results["replay"]["fixed"], results["replay"]["flagged"]) == (1.0, 0.0)


def test_cddb_unlabelled_records_are_not_judged_as_clean() -> None:
    records = [_clean("a", "b", "cddb"), _clean("c", "d")]
    assert judged(records) == records[1:]


def test_thresholds_are_chosen_to_the_budgets() -> None:
    # Ten clean records the model wrongly scores as shouting at 0.97: only an apply
    # threshold above 0.97 keeps them unchanged, and a review threshold above 0.97
    # keeps them out of review (the whole record shouts, so the case gate lets it through).
    records = [_clean(f"SONG {i}", "BAND", album="RECORD") for i in range(10)]
    scores = [RecordScores(fields={"title": ("all_caps", 0.97)})] * 10
    chosen, head = choose_thresholds(records, scores, "m", None, THRESHOLD_GRID)
    assert chosen.apply > 0.97 and chosen.review > 0.97
    assert head["clean_changed"] == 0 and head["clean_review"] == 0
    assert not budgets_met({**head, "clean_review": BUDGETS["clean_review"] + 0.01})
