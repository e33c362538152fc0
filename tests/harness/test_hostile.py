"""The decoder against generated hostile payloads (pure functions; the job is in test_reliability.py)."""

from __future__ import annotations

import re

from hypothesis import given, settings

from harness.hostile import Fate, expected_fate, huge_payloads, payloads
from transforms import codec


@settings(max_examples=500, deadline=None)
@given(payloads)
def test_a_hostile_payload_decodes_or_gets_a_named_reason(example: tuple[str, bytes]) -> None:
    _, payload = example
    try:
        event = codec.decode_event(payload)
    except codec.DecodeError as e:
        assert re.fullmatch(r"[a-z0-9_]+", e.error_type) and e.message
    else:
        # Whatever decodes can be written back: the job's outputs carry its values.
        assert codec.decode_event(codec.encode_event(event)) == event


def test_the_verdict_on_deep_json_does_not_depend_on_the_call_stack() -> None:
    # Python's parser gives up at a depth that depends on how deep the caller already is.
    payload = b"[" * 500 + b"]" * 500

    def from_deep_in_the_stack(frames: int) -> Fate:
        return from_deep_in_the_stack(frames - 1) if frames else expected_fate(payload)

    assert expected_fate(payload) == from_deep_in_the_stack(800) == Fate(False, "json_too_deep")


def test_huge_payloads_meet_the_size_limit() -> None:
    fates = {kind: expected_fate(payload) for kind, payload in huge_payloads()}

    assert fates["huge_json"] == fates["huge_bytes"] == fates["past_limit"] == Fate(False, "payload_too_large")
    assert fates["at_limit"].decodes and fates["big_output"].decodes
