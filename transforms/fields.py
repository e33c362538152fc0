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

# Error classes. Order matters: it is the order of the model's output units.
TEXT_CLASSES: tuple[str, ...] = (
    CLEAN,
    "mojibake",
    "html_entity",
    "control_chars",
    "whitespace",
    "all_caps",
    "all_lower",
)
TITLE_ONLY_CLASSES: tuple[str, ...] = (
    "featured_in_title",
    "explicit_in_title",
    "track_number_prefix",
    "artist_in_title",
)


@dataclass(frozen=True)
class FieldSpec:
    """A field the model scores: its name and the error classes it can have."""

    name: str
    classes: tuple[str, ...]
    max_chars: int


SCORED_FIELDS: tuple[FieldSpec, ...] = (
    FieldSpec("title", TEXT_CLASSES + TITLE_ONLY_CLASSES, 64),
    FieldSpec("artist", TEXT_CLASSES, 48),
    FieldSpec("album", TEXT_CLASSES, 64),
    FieldSpec("isrc", (CLEAN, "isrc_format", "isrc_invalid"), 24),
    FieldSpec("upc", (CLEAN, "upc_format", "upc_check_digit"), 24),
    FieldSpec("release_date", (CLEAN, "date_format"), 24),
    FieldSpec("duration_ms", (CLEAN, "duration_format"), 16),
    FieldSpec("genre", (CLEAN, "genre_noncanonical"), 32),
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
