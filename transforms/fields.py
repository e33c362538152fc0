"""Field names, error classes and which classes apply to which field.

This module is the one source of truth for the record layout: the Avro
schemas in ``schemas/`` are checked against it in tests, the model's inputs
and heads are built from it, and the correctors are registered per class.
"""

from __future__ import annotations

from dataclasses import dataclass

# Track fields as they arrive (all nullable strings, except the artist list).
TRACK_FIELDS: tuple[str, ...] = (
    "title",
    "artist",
    "featured_artists",
    "album",
    "isrc",
    "upc",
    "release_date",
    "duration_ms",
    "genre",
    "explicit",
    "track_number",
    "language",
)

CLEAN = "clean"

# The free-text fields: every text class applies to them, and the model reads their words.
TEXT_FIELDS: tuple[str, ...] = ("title", "artist", "album")


@dataclass(frozen=True)
class ErrorClass:
    """One field-level error class, declared once.

    ``fields``: the scored fields it applies to. Its corrector is
    ``transforms.correctors.correct(name, ...)`` and its rule (the rules baseline)
    ``transforms.rules.RULES[field]``; ``generated``: the corruption generator
    (``model.training.corrupt``) makes it; ``fills``: the field a title corrector
    fills from what it takes out of the title. ``tests/transforms/test_errors.py``
    fails when a declared class lacks one of its parts, or a part has no class.

    ``model_head=False`` declares a *rule-only* class: the decision policy
    (``transforms/policy.py``) detects it with a deterministic rule before the
    model is asked, so it has no output unit, no generator and no rules-baseline
    entry, and it may apply to unscored fields (``TRACK_FIELDS``).
    """

    name: str
    fields: tuple[str, ...]
    generated: bool = True
    fills: str | None = None
    model_head: bool = True


# Order matters: per field, it is the order of the model's output units (after "clean").
ERROR_CLASSES: tuple[ErrorClass, ...] = (
    ErrorClass("mojibake", TEXT_FIELDS),
    ErrorClass("html_entity", TEXT_FIELDS),
    ErrorClass("control_chars", TEXT_FIELDS),
    ErrorClass("whitespace", TEXT_FIELDS),
    ErrorClass("all_caps", TEXT_FIELDS),
    ErrorClass("all_lower", TEXT_FIELDS),
    ErrorClass("featured_in_title", ("title",), fills="featured_artists"),
    ErrorClass("explicit_in_title", ("title",), fills="explicit"),
    ErrorClass("track_number_prefix", ("title",), fills="track_number"),
    ErrorClass("artist_in_title", ("title",)),
    ErrorClass("isrc_format", ("isrc",)),
    ErrorClass("isrc_invalid", ("isrc",)),
    ErrorClass("upc_format", ("upc",)),
    ErrorClass("upc_check_digit", ("upc",)),
    ErrorClass("date_format", ("release_date",)),
    ErrorClass("duration_format", ("duration_ms",)),
    ErrorClass("genre_noncanonical", ("genre",)),
    # Rule-only classes (see ``ErrorClass.model_head``).
    # Letters lost for good (U+FFFD, "?" in a word, mojibake that does not repair):
    # flagged with the raw value, never reshaped (transforms/textdamage.py).
    ErrorClass("unrecoverable_text", TEXT_FIELDS, generated=False, model_head=False),
    # "--", "null", "unk." standing for a missing value: the value becomes null.
    ErrorClass("placeholder", ("title", "artist", "album", "isrc", "upc", "release_date",
                               "duration_ms", "genre", "language"),
               generated=False, model_head=False),
    # "Song (Album)", "Song - Album" where Album is the record's album.
    ErrorClass("album_in_title", ("title",), generated=False, model_head=False),
    # "Album (2003)" from a source that appends the year to its albums by habit
    # (learned by the profile); the suffix is taken off.
    ErrorClass("album_year_suffix", ("album",), generated=False, model_head=False),
)
ERROR_CLASS: dict[str, ErrorClass] = {c.name: c for c in ERROR_CLASSES}

MODEL_CLASSES: tuple[ErrorClass, ...] = tuple(c for c in ERROR_CLASSES if c.model_head)
RULE_ONLY_CLASSES: tuple[ErrorClass, ...] = tuple(c for c in ERROR_CLASSES if not c.model_head)

TEXT_CLASSES: tuple[str, ...] = (CLEAN,) + tuple(
    c.name for c in MODEL_CLASSES if c.fields == TEXT_FIELDS
)


@dataclass(frozen=True)
class FieldSpec:
    """A field the model scores: its name and the error classes it can have."""

    name: str
    classes: tuple[str, ...]
    max_chars: int


def _spec(name: str, max_chars: int) -> FieldSpec:
    return FieldSpec(name, (CLEAN,) + tuple(c.name for c in MODEL_CLASSES if name in c.fields), max_chars)


SCORED_FIELDS: tuple[FieldSpec, ...] = (
    _spec("title", 64),
    _spec("artist", 48),
    _spec("album", 64),
    _spec("isrc", 24),
    _spec("upc", 24),
    _spec("release_date", 24),
    _spec("duration_ms", 16),
    _spec("genre", 32),
)
SCORED_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in SCORED_FIELDS)
FIELD_SPECS: dict[str, FieldSpec] = {f.name: f for f in SCORED_FIELDS}

# Record-level head: title and artist exchanged.
SWAP_CLASS = "swapped_title_artist"

# Every error class, record level included, in a stable order (metrics, reports).
ALL_CLASSES: tuple[str, ...] = tuple(
    dict.fromkeys(c for f in SCORED_FIELDS for c in f.classes if c != CLEAN)
) + (SWAP_CLASS,)

# Controlled genre vocabulary (canonical labels written downstream).
GENRES: tuple[str, ...] = (
    "Alternative",
    "Blues",
    "Bossa Nova",
    "Children's",
    "Classical",
    "Comedy",
    "Country",
    "Dance",
    "Easy Listening",
    "Electronic",
    "Folk",
    "Hip Hop",
    "Jazz",
    "Latin",
    "Metal",
    "Opera",
    "Pop",
    "Punk",
    "R&B",
    "Reggae",
    "Rock",
    "Rock and Roll",
    "Soul",
    "Soundtrack",
    "World",
)

# Spellings feeds use for the genres above, onto the canonical label. The genre
# corrector looks values up by a normalised key (case, spacing, punctuation and
# "&"/"and" ignored), so each spelling is listed once, not in every casing.
# Broad store labels that merge two genres ("R&B/Soul", "Alternative & Punk")
# go to the first one: the canonical list has one label per track.
GENRE_SYNONYMS: dict[str, str] = {
    "Hip-Hop/Rap": "Hip Hop",
    "Hip Hop/Rap": "Hip Hop",
    "Rap/Hip-Hop": "Hip Hop",
    "Hip Hop & Rap": "Hip Hop",
    "Rap": "Hip Hop",
    "R&B/Soul": "R&B",
    "RnB": "R&B",
    "R 'n' B": "R&B",
    "Rhythm and Blues": "R&B",
    "Electronica/Dance": "Electronic",
    "Electronic/Dance": "Electronic",
    "Electronica": "Electronic",
    "Electronic Music": "Electronic",
    "Heavy Metal": "Metal",
    "Rock 'n' Roll": "Rock and Roll",
    "Rock n Roll": "Rock and Roll",
    "Alternative & Punk": "Alternative",
    "Alternative Rock": "Alternative",
    "Alt Rock": "Alternative",
    "Punk Rock": "Punk",
    "Children's Music": "Children's",
    "Kids": "Children's",
    "Classical Music": "Classical",
    "Stand-Up Comedy": "Comedy",
    "Country & Western": "Country",
    "Country Music": "Country",
    "Dance Music": "Dance",
    "Folk Music": "Folk",
    "Latin Music": "Latin",
    "Soul Music": "Soul",
    "Soundtracks": "Soundtrack",
    "Original Soundtrack": "Soundtrack",
    "OST": "Soundtrack",
    "Film Score": "Soundtrack",
    "World Music": "World",
}

# Classes the decision policy writes on its own, without the model: a value that
# fails its field's deterministic validator and was not corrected, and a
# language tag rewritten to ISO 639-1. They are not model outputs, so they are
# not in ALL_CLASSES.
INVALID_VALUE = "invalid_value"
LANGUAGE_CODE = "language_code"
