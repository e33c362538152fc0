"""Broken text: what can be repaired for sure, and what is lost.

Two kinds of damage reach a catalog:

* **Reversible mojibake**: UTF-8 read once or twice as cp1252/latin-1
  ("CafÃ©", "â€“", "Ã" before a non-breaking space). ftfy undoes it, and the
  result is trusted when it has no replacement character and no mojibake left.
* **Lost characters**: U+FFFD, its own mojibake "ï¿½", "?" in place of a
  letter ("L?amour"), a run of one filler letter ("ýýýýýý"), or mojibake
  whose repair leaves one of these. No rule can bring the letters back; the
  value is flagged ``unrecoverable_text`` and kept exactly as delivered.

``assess_text`` decides, before any model score, which of the two (or
neither) a value has::

    >>> assess_text("Hotel California â€“ Live Ã  Paris")
    TextAssessment(error_class='mojibake', repaired='Hotel California – Live à Paris', reason='')
    >>> assess_text("Lï¿½ï¿½ï¿½AMOUR DE").error_class
    'unrecoverable_text'
    >>> assess_text("KAROL G").error_class is None
    True
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

import ftfy

MOJIBAKE = "mojibake"
UNRECOVERABLE_TEXT = "unrecoverable_text"

REPLACEMENT_CHAR = "\ufffd"
# U+FFFD's UTF-8 bytes (EF BF BD) read as latin-1/cp1252.
REPLACEMENT_MOJIBAKE = "ï¿½"

# "?" between two letters: "L?amour", "Kütahya?nin". A "?" ending a word
# ("Why?", "Que?") is punctuation and not matched.
_LOST_LETTER = re.compile(r"[^\W\d_]\?+[^\W\d_]")
# Four or more of one non-ASCII Latin-1 letter in a row: a filler that stood
# for characters the sender's code page did not have ("ýýýýýý").
_FILLER_RUN = re.compile(r"([\u00c0-\u00ff])\1{3,}")
# What double-encoded UTF-8 leaves: a lead byte (Â Ã Ä Å Ð Ñ â ã å-ï) read as a
# letter, followed by a continuation byte read as cp1252 or latin-1; or "Ã"/"Â"
# before a space or NBSP ("Ã " is "à" whose A0 byte became a space). A space
# after any other accented letter is ordinary text ("Café del Mar").
_MOJIBAKE_HINT = re.compile(
    "[\u00c2-\u00c5\u00d0\u00d1\u00e2\u00e3\u00e5-\u00ef]"
    "[\u0080-\u00bf\u0152\u0153\u0160\u0161\u0178\u017d\u017e\u0192\u02c6\u02dc"
    "\u2013\u2014\u2018-\u201e\u2020-\u2022\u2026\u2030\u2039\u203a\u20ac\u2122]"
    "|[\u00c2\u00c3][ \u00a0]"
)
_MAX_PASSES = 4


@dataclass(frozen=True)
class TextAssessment:
    """``error_class`` is ``"mojibake"`` (with ``repaired``), ``"unrecoverable_text"``
    (with ``reason``) or None for text that shows neither."""

    error_class: str | None
    repaired: str | None = None
    reason: str = ""


_NONE = TextAssessment(None)


def lost_characters(value: str) -> str | None:
    """Why ``value`` has lost characters for good, or None.

    >>> lost_characters("L\\ufffdamour"), lost_characters("Why?")
    ('replacement character U+FFFD', None)
    """
    if REPLACEMENT_CHAR in value:
        return "replacement character U+FFFD"
    if REPLACEMENT_MOJIBAKE in value:
        return "replacement character read as 'ï¿½'"
    if (m := _LOST_LETTER.search(value)) is not None:
        return f"'?' in place of a letter: {m.group(0)!r}"
    if (m := _FILLER_RUN.search(value)) is not None:
        return f"filler letters in place of characters: {m.group(0)!r}"
    return None


def looks_like_mojibake(value: str) -> bool:
    """Whether ``value`` carries the byte pairs double-encoded UTF-8 leaves.

    >>> looks_like_mojibake("CafÃ©"), looks_like_mojibake("Beyoncé")
    (True, False)
    """
    return _MOJIBAKE_HINT.search(value) is not None


def repair_mojibake(value: str) -> str | None:
    """The text ``value`` was before it was double-encoded, if that is certain.

    ftfy's encoding repair runs until nothing changes (text encoded twice needs
    two passes). The repair is trusted only when it changed something, left no
    mojibake behind and brought in no replacement character; otherwise None.

    >>> repair_mojibake("DJ BjÃ¶rn"), repair_mojibake("Beyoncé")
    ('DJ Björn', None)
    """
    if not looks_like_mojibake(value):
        return None
    fixed = value
    for _ in range(_MAX_PASSES):
        again = ftfy.fix_encoding(fixed)
        if again == fixed:
            break
        fixed = again
    if fixed == value or looks_like_mojibake(fixed) or lost_characters(fixed) is not None:
        return None
    return fixed


def may_be_damaged(value: str) -> bool:
    """False when ``value`` cannot show any damage: every sign of it is
    non-ASCII or a "?" (most values, the cost budget).

    >>> may_be_damaged("KAROL G"), may_be_damaged("Why?"), may_be_damaged("Beyoncé")
    (False, True, True)
    """
    return not value.isascii() or "?" in value


# Cached by value: an album's or artist's broken spelling comes back with every
# track, and its ftfy repair is most of this module's cost. Bounded per worker.
@functools.lru_cache(maxsize=65536)
def assess_text(value: str) -> TextAssessment:
    """Reversible mojibake, lost characters, or neither (see the module docstring).

    Lost characters win over mojibake: "Ã£?â€š" repairs into text with U+FFFD,
    so it is flagged, not reshaped.
    """
    if not may_be_damaged(value):
        return _NONE
    lost = lost_characters(value)
    if lost is not None:
        return TextAssessment(UNRECOVERABLE_TEXT, reason=lost)
    if not looks_like_mojibake(value):
        return TextAssessment(None)
    repaired = repair_mojibake(value)
    if repaired is not None:
        return TextAssessment(MOJIBAKE, repaired=repaired)
    return TextAssessment(UNRECOVERABLE_TEXT,
                          reason="mojibake that does not repair into clean text")
