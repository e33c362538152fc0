"""Which build of ``transforms`` runs: its sources, or their Cython build where that is current.

``make`` compiles this package's modules (``harness/compiled.py``) into
``.compiled/transforms/`` beside the package, and writes there the SHA-256 of
each source it compiled. ``transforms/__init__.py`` puts that folder first on
the package's path only while those digests are the sources' own, so an edited,
added or removed module makes every module run from its source until the next
build: a stale build is never imported. ``METAFIX_PURE_PYTHON=1`` runs the
sources regardless.

The build compiles the modules as they are, with Python's semantics (annotations
are not enforced as C types): the same code, in less CPU (the policy on real
tracks: 11.9 µs per record against 16.7, ``bench/policy_cost.py``).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path
from types import ModuleType

PURE_PYTHON_ENV = "METAFIX_PURE_PYTHON"
STAMP = "SOURCES.json"
# Imported before the package's path can point at a build: these two always run as source.
NOT_COMPILED = frozenset({"__init__.py", "native.py"})


def compiled_sources(package_dir: Path) -> list[Path]:
    """The package's modules that the build compiles."""
    return sorted(p for p in package_dir.glob("*.py") if p.name not in NOT_COMPILED)


def build_dir_for(package_dir: Path) -> Path:
    return package_dir.parent / ".compiled" / package_dir.name


def stamp(package_dir: Path) -> dict[str, object]:
    """What a build of ``package_dir`` records: the interpreter and each compiled source's SHA-256."""
    return {
        "python": sys.implementation.cache_tag,
        "sources": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in compiled_sources(package_dir)},
    }


def is_current(package_dir: Path, build_dir: Path) -> bool:
    """Whether ``build_dir`` holds a finished build of exactly the sources in ``package_dir``."""
    try:
        recorded = json.loads((build_dir / STAMP).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return recorded == stamp(package_dir)


def compiled_path(package_dir: Path) -> list[str]:
    """The folder to put first on the package's path: the build if it is current, else none."""
    if os.environ.get(PURE_PYTHON_ENV) == "1":
        return []
    build_dir = build_dir_for(package_dir)
    return [str(build_dir)] if is_current(package_dir, build_dir) else []


def is_compiled(module: ModuleType) -> bool:
    """Whether ``module`` was imported from a compiled build rather than from its source."""
    return not str(getattr(module, "__file__", "")).endswith(".py")

