"""Versioned profiles on disk, and the handle jobs use to follow LATEST."""

from __future__ import annotations

import pytest

from model.profilestore import (
    LatestProfile,
    ProfileLoadError,
    bundled_profile_dir,
    load_latest,
    save_profile,
)
from transforms.profile import build_profile

OLD = build_profile([("s", {"artist": "KAROL G"})])
NEW = build_profile([("s", {"artist": "KAROL G"}), ("s", {"artist": "benny blanco"})])


def test_a_newer_version_is_picked_up_after_the_refresh_interval(tmp_path) -> None:
    now = [0.0]
    save_profile(OLD, tmp_path)
    latest = LatestProfile(str(tmp_path), refresh_s=30, clock=lambda: now[0])
    save_profile(NEW, tmp_path)
    now[0] = 10
    assert latest.current().version == OLD.version  # not yet looked again
    now[0] = 31
    assert latest.current().version == NEW.version


def test_an_unreadable_latest_keeps_the_last_good_profile(tmp_path) -> None:
    now = [0.0]
    save_profile(OLD, tmp_path)
    latest = LatestProfile(str(tmp_path), refresh_s=1, clock=lambda: now[0])
    (tmp_path / "LATEST").write_text("p-missing\n")
    now[0] = 5
    assert latest.current() == OLD


def test_the_first_load_must_succeed_and_versions_are_checked(tmp_path) -> None:
    with pytest.raises(ProfileLoadError):
        LatestProfile(str(tmp_path), refresh_s=1)
    save_profile(OLD, tmp_path)
    (tmp_path / OLD.version / "profile.json").write_text(NEW.to_json())
    with pytest.raises(ProfileLoadError, match="holds version"):
        load_latest(tmp_path)


def test_a_model_version_dir_may_bundle_a_profile(tmp_path) -> None:
    assert bundled_profile_dir(tmp_path) is None
    save_profile(OLD, tmp_path / "profile")
    assert load_latest(bundled_profile_dir(tmp_path)) == OLD
