"""The compiled build of ``transforms`` runs only while current, and does what the sources do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import transforms
from transforms import native

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = REPO_ROOT / "transforms"


def _package(tmp_path: Path) -> tuple[Path, Path]:
    """A package of two modules, and a build of them recorded as current."""
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "native.py").write_text("")
    (package / "a.py").write_text("A = 1\n")
    (package / "b.py").write_text("B = 2\n")
    build = native.build_dir_for(package)
    build.mkdir(parents=True)
    (build / native.STAMP).write_text(json.dumps(native.stamp(package)))
    return package, build


def test_a_build_of_exactly_the_sources_is_current_and_goes_first_on_the_path(tmp_path, monkeypatch):
    monkeypatch.delenv(native.PURE_PYTHON_ENV, raising=False)
    package, build = _package(tmp_path)
    assert native.is_current(package, build)
    assert native.compiled_path(package) == [str(build)]
    # The modules the build holds: neither the package's __init__ nor the check itself.
    assert [p.name for p in native.compiled_sources(package)] == ["a.py", "b.py"]


@pytest.mark.parametrize("change", ["edited", "added", "removed"])
def test_a_changed_source_makes_the_build_stale(tmp_path, monkeypatch, change):
    monkeypatch.delenv(native.PURE_PYTHON_ENV, raising=False)
    package, build = _package(tmp_path)
    if change == "edited":
        (package / "a.py").write_text("A = 3\n")
    elif change == "added":
        (package / "c.py").write_text("C = 4\n")
    else:
        (package / "b.py").unlink()
    assert not native.is_current(package, build)
    assert native.compiled_path(package) == []


@pytest.mark.parametrize("stamp", [None, "{not json", json.dumps({"python": "cpython-00", "sources": {}})])
def test_a_build_without_a_readable_stamp_of_this_interpreter_is_stale(tmp_path, stamp):
    package, build = _package(tmp_path)
    if stamp is None:
        (build / native.STAMP).unlink()
    else:
        (build / native.STAMP).write_text(stamp)
    assert not native.is_current(package, build)


def test_pure_python_is_asked_for_by_the_environment(tmp_path, monkeypatch):
    package, _ = _package(tmp_path)
    monkeypatch.setenv(native.PURE_PYTHON_ENV, "1")
    assert native.compiled_path(package) == []


# Run in a fresh interpreter, once on the build and once on the sources: every record's
# decoding, scores, corrections, corrected record and Avro bytes, hashed in order.
_OUTPUTS = """
import hashlib, json, sys
from harness.eventgen import catalog_messages
from model.training import realdata
from schemas import CORRECTED_RECORD
from transforms import codec, native, policy, records, rules
from transforms.profile import ProfileBuilder

real = realdata.split_records(realdata.load_all())["test"]
tracks = [(r.source, r.track) for r in real[:: max(len(real) // 3000, 1)]]
for message in catalog_messages(3000, seed=5, bad_every=50, corruption_rate=0.8):
    try:
        event = codec.decode_event(message.value)
    except codec.DecodeError as e:
        tracks.append(("undecodable", {"error": repr(e)}))
        continue
    tracks.append((event.get("source") or "", event["track"]))
builder = ProfileBuilder()
for source, track in tracks:
    if "error" not in track:
        builder.add_record(source, track)
profile = builder.build()
digest = hashlib.sha256()
for i, (source, track) in enumerate(tracks):
    try:
        result = policy.correct_track(track, rules.detect(track), thresholds=policy.Thresholds(),
                                      model_version="m", profile=profile, source=source)
        event = {"event_id": "e", "source": source, "track": track}
        out = records.corrected_record(event, track=result.track, corrections=result.corrections,
                                       review=list(result.review), model_version="m",
                                       input_coordinates=records.coordinates("t", 0, i, 1_700_000_000_000 + i),
                                       profile_version=None, release_date_precision=result.release_date_precision)
        digest.update(json.dumps(out, sort_keys=True, default=str).encode())
        digest.update(codec.avro_body(CORRECTED_RECORD, out))
    except Exception as e:
        digest.update(repr(e).encode())
print(json.dumps({"compiled": native.is_compiled(policy), "records": len(tracks), "digest": digest.hexdigest()}))
"""


def _outputs(pure: bool) -> dict:
    env = {**os.environ, native.PURE_PYTHON_ENV: "1" if pure else "0"}
    done = subprocess.run([sys.executable, "-c", _OUTPUTS], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, check=True)
    return json.loads(done.stdout.splitlines()[-1])


def _build_is_current() -> bool:
    return native.is_current(PACKAGE_DIR, native.build_dir_for(PACKAGE_DIR))


@pytest.mark.slow  # two interpreters over 12,000 records: `make test`, not the fast loop
@pytest.mark.skipif(not _build_is_current(), reason="no current build of transforms/ (make compiled)")
def test_the_build_corrects_real_and_damaged_records_byte_for_byte_as_the_sources_do():
    built, source = _outputs(pure=False), _outputs(pure=True)
    assert built["compiled"] and not source["compiled"]
    assert built["records"] == source["records"] > 6000
    assert built["digest"] == source["digest"]


@pytest.mark.skipif(not _build_is_current() or os.environ.get(native.PURE_PYTHON_ENV) == "1",
                    reason="no current build of transforms/ (make compiled), or pure Python asked for")
def test_a_current_build_is_what_the_tests_run():
    assert transforms.__path__[0] == str(native.build_dir_for(PACKAGE_DIR))
    from transforms import (
        avro_writer,
        codec,
        correctors,
        policy,
        profile,
        records,
        rules,
        titleparse,
    )

    modules = [avro_writer, codec, correctors, policy, profile, records, rules, titleparse]
    assert all(native.is_compiled(m) for m in modules)
    assert not native.is_compiled(native)
