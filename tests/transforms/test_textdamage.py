"""Reversible mojibake is repaired; lost characters are flagged, never reshaped."""

from __future__ import annotations

import pytest

from transforms.textdamage import (
    MOJIBAKE,
    UNRECOVERABLE_TEXT,
    assess_text,
    lost_characters,
    repair_mojibake,
)


@pytest.mark.parametrize("broken, repaired", [
    ("Hotel California â€“ Live Ã  Paris", "Hotel California – Live à Paris"),
    ("Hotel California â€“ Live Ã\xa0 Paris", "Hotel California – Live à Paris"),
    ("DJ BjÃ¶rn - On A Mission", "DJ Björn - On A Mission"),
    ("Ã‰milie Simon", "Émilie Simon"),
    ("CafÃƒÂ© del Mar", "Café del Mar"),  # encoded twice
])
def test_double_encoded_utf8_is_repaired(broken: str, repaired: str) -> None:
    assessment = assess_text(broken)
    assert assessment.error_class == MOJIBAKE
    assert assessment.repaired == repaired


@pytest.mark.parametrize("value", [
    "Lï¿½ï¿½ï¿½AMOUR DE",
    "L\ufffdamour",
    "L?amour de ma vie",
    "Kütahya?nin Pinarlari",
    "ýýýýýý - ýýýý",
    "Ã£?â€šÃ£â€š?",  # mojibake over lost characters: the repair would hold U+FFFD
])
def test_lost_characters_are_unrecoverable(value: str) -> None:
    assessment = assess_text(value)
    assert assessment.error_class == UNRECOVERABLE_TEXT
    assert assessment.repaired is None
    assert assessment.reason


@pytest.mark.parametrize("value", [
    "KAROL G", "benny blanco", "HUMBLE.", "Beyoncé", "Motörhead", "Sigur Rós", "Déjà vu",
    "Café del Mar", "Pokémon Go", "Niño à la plage", "Why?", "¿Qué?", "Who Are You?", "Ahhh", "Nuttööö", "Aaron", "MØ", "ROSALÍA", "君の名は", "naïve",
])
def test_clean_text_is_left_alone(value: str) -> None:
    assert assess_text(value).error_class is None
    assert repair_mojibake(value) is None
    assert lost_characters(value) is None
