"""Versioned catalog profiles on disk, and a handle that follows the newest one.

Layout, as for models::

    DIR/<version>/profile.json     # ProfileData.to_json(); version = "p-" + sha256 prefix
    DIR/LATEST                     # the version jobs should use

``save_profile`` writes the version directory first and ``LATEST`` last (each
by rename), so a reader never sees a half-written profile. A model export
carries one under ``<model version>/profile`` (``bundled_profile_dir``).

    >>> import tempfile
    >>> from transforms.profile import build_profile
    >>> d = tempfile.mkdtemp()
    >>> v = save_profile(build_profile([("s", {"artist": "KAROL G"})]), d)
    >>> load_latest(d).version == v == latest_version(d)
    True
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from transforms.profile import ProfileData

PROFILE_FILE = "profile.json"
LATEST_FILE = "LATEST"
BUNDLED_DIR = "profile"  # inside a model's version directory


class ProfileLoadError(RuntimeError):
    """A profile directory without a readable LATEST profile."""


def _write_atomically(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="ascii") as f:
        f.write(text)
    os.replace(tmp, path)


def save_profile(profile: ProfileData, directory: str | Path) -> str:
    """Write ``profile`` as a version of ``directory`` and point LATEST at it."""
    root = Path(directory)
    version = profile.version
    _write_atomically(root / version / PROFILE_FILE, profile.to_json())
    _write_atomically(root / LATEST_FILE, version + "\n")
    return version


def latest_version(directory: str | Path) -> str:
    path = Path(directory) / LATEST_FILE
    try:
        version = path.read_text(encoding="ascii").strip()
    except OSError as e:
        raise ProfileLoadError(f"no profile: cannot read {path}: {e}") from e
    if not version or "/" in version or version.startswith("."):
        raise ProfileLoadError(f"{path} does not name a profile version: {version!r}")
    return version


def load_version(directory: str | Path, version: str) -> ProfileData:
    path = Path(directory) / version / PROFILE_FILE
    try:
        profile = ProfileData.from_json(path.read_text(encoding="ascii"))
    except (OSError, ValueError, KeyError) as e:
        raise ProfileLoadError(f"cannot read profile {path}: {e}") from e
    if profile.version != version:
        raise ProfileLoadError(f"{path} holds version {profile.version}, not {version}")
    return profile


def load_latest(directory: str | Path) -> ProfileData:
    return load_version(directory, latest_version(directory))


def bundled_profile_dir(model_version_dir: str | Path) -> str | None:
    """The profile shipped inside a model's version directory, if there is one."""
    path = Path(model_version_dir) / BUNDLED_DIR
    return str(path) if (path / LATEST_FILE).exists() else None


class LatestProfile:
    """The newest profile of a directory, re-read at most every ``refresh_s`` seconds.

    ``current()`` is called at bundle start: a newer LATEST is picked up within
    ``refresh_s`` without a restart, and a bundle sees one profile throughout.
    A LATEST that cannot be read keeps the profile already loaded (a half-copied
    directory must not stop the stream); the first load must succeed.
    """

    def __init__(self, directory: str, refresh_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._directory = directory
        self._refresh_s = refresh_s
        self._clock = clock
        self._profile = load_latest(directory)
        self._checked = clock()

    def current(self) -> ProfileData:
        now = self._clock()
        if now - self._checked >= self._refresh_s:
            self._checked = now
            try:
                version = latest_version(self._directory)
                if version != self._profile.version:
                    self._profile = load_version(self._directory, version)
            except ProfileLoadError:
                pass  # keep serving the last good profile; the next check tries again
        return self._profile
