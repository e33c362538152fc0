"""The error-class registry (``transforms.fields.ERROR_CLASSES``) and its parts.

A class is declared once, with its fields; its corrector, its rule and (if the
generator makes it) its corruption live in their own modules, keyed by the class's
name. These tests fail when a declared class lacks a part, or a part names no class.
"""

from __future__ import annotations

import ast
from pathlib import Path

from model.training import corrupt
from transforms import correctors, rules
from transforms.fields import (
    ALL_CLASSES,
    CLEAN,
    ERROR_CLASSES,
    FIELD_SPECS,
    MODEL_CLASSES,
    RULE_ONLY_CLASSES,
    SCORED_FIELD_NAMES,
    SWAP_CLASS,
    TEXT_FIELDS,
    TRACK_FIELDS,
)
from transforms.policy import RecordScores, Thresholds, correct_track
from transforms.profile import build_profile

REPO_ROOT = Path(__file__).resolve().parents[2]
DECLARED = {c.name for c in ERROR_CLASSES}
GENERATORS = {**corrupt._TEXT_CORRUPTIONS, **corrupt._TITLE_CORRUPTIONS, **corrupt._FIELD_CORRUPTIONS}

# The model's heads: per field, one output unit per class in this order. Trained models
# depend on it; a change here needs a retrained model.
MODEL_HEADS = {
    "title": ("clean", "mojibake", "html_entity", "control_chars", "whitespace", "all_caps", "all_lower",
              "featured_in_title", "explicit_in_title", "track_number_prefix", "artist_in_title"),
    "artist": ("clean", "mojibake", "html_entity", "control_chars", "whitespace", "all_caps", "all_lower"),
    "album": ("clean", "mojibake", "html_entity", "control_chars", "whitespace", "all_caps", "all_lower"),
    "isrc": ("clean", "isrc_format", "isrc_invalid"),
    "upc": ("clean", "upc_format", "upc_check_digit"),
    "release_date": ("clean", "date_format"),
    "duration_ms": ("clean", "duration_format"),
    "genre": ("clean", "genre_noncanonical"),
}


def test_the_model_heads_keep_their_class_order() -> None:
    assert {name: spec.classes for name, spec in FIELD_SPECS.items()} == MODEL_HEADS
    assert ALL_CLASSES == (*dict.fromkeys(c for classes in MODEL_HEADS.values() for c in classes[1:]), SWAP_CLASS)


def test_every_declared_class_has_its_fields_corrector_rule_and_generator() -> None:
    for error_class in MODEL_CLASSES:
        assert error_class.fields and set(error_class.fields) <= set(SCORED_FIELD_NAMES), error_class
        assert error_class.name in correctors.FIELD_CLASSES, f"{error_class.name}: no corrector"
        for field in error_class.fields:
            assert error_class.name in dict(rules.RULES[field]), f"{error_class.name}: no rule for {field}"
        assert (error_class.name in GENERATORS) == error_class.generated, f"{error_class.name}: generator"
        if error_class.fills is not None:
            assert error_class.fields == ("title",)


# One input per rule-only class that the policy must answer with that class.
RULE_ONLY_EXAMPLES = {
    "unrecoverable_text": {"title": "L\ufffdamour", "artist": "X"},
    "placeholder": {"title": "Song", "artist": "X", "album": "--"},
    "album_in_title": {"title": "Song (Best Of)", "artist": "X", "album": "Best Of"},
    "album_year_suffix": {"title": "Song", "artist": "X", "album": "Best Of (2003)"},
}
# Classes whose rule needs the source's habit from the profile: (profile, source).
RULE_ONLY_PROFILES = {
    "album_year_suffix": (build_profile([("a0", {"album": f"A{i} (2001)"}) for i in range(20)]), "a0"),
}


def test_rule_only_classes_have_no_head_and_the_policy_makes_each() -> None:
    assert set(RULE_ONLY_EXAMPLES) == {c.name for c in RULE_ONLY_CLASSES}
    for error_class in RULE_ONLY_CLASSES:
        assert not error_class.generated and set(error_class.fields) <= set(TRACK_FIELDS)
        assert all(error_class.name not in spec.classes for spec in FIELD_SPECS.values())
        profile, source = RULE_ONLY_PROFILES.get(error_class.name, (None, None))
        result = correct_track(RULE_ONLY_EXAMPLES[error_class.name], RecordScores(fields={}),
                               thresholds=Thresholds(), model_version="m",
                               profile=profile, source=source)
        made = {e["error_class"] for e in result.corrections + result.review}
        assert error_class.name in made, error_class


def test_no_part_names_an_undeclared_class() -> None:
    assert correctors.FIELD_CLASSES == {c.name for c in MODEL_CLASSES}
    for field, field_rules in rules.RULES.items():
        assert {name for name, _ in field_rules} == set(FIELD_SPECS[field].classes) - {CLEAN}, field
    assert set(GENERATORS) <= DECLARED
    assert set(corrupt.CORRUPTION_CLASSES) == {c.name for c in ERROR_CLASSES if c.generated}
    assert DECLARED == {c.name for c in MODEL_CLASSES + RULE_ONLY_CLASSES}


def test_field_lists_are_declared_only_in_fields_py() -> None:
    # TEXT_FIELDS and friends are imported from transforms.fields, never re-declared.
    names = {"TEXT_FIELDS", "TRACK_FIELDS", "SCORED_FIELDS", "SCORED_FIELD_NAMES", "TEXT_CLASSES",
             "ERROR_CLASSES", "ALL_CLASSES", "GENRES"}
    redeclared = []
    for package in ("schemas", "transforms", "model", "streaming", "harness", "bench"):
        for path in (REPO_ROOT / package).rglob("*.py"):
            if path == REPO_ROOT / "transforms" / "fields.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                targets = node.targets if isinstance(node, ast.Assign) else (
                    [node.target] if isinstance(node, ast.AnnAssign) else [])
                redeclared += [f"{path.relative_to(REPO_ROOT)}: {t.id}" for t in targets
                               if isinstance(t, ast.Name) and t.id in names]
    assert not redeclared
    assert TEXT_FIELDS == ("title", "artist", "album")
