"""The repository's layout: installed packages form layers without cycles, and the
harness never ships.

Layers, bottom to top; a module may import its own layer or a lower one, never a higher:

    schemas              the Avro contract
    transforms           pure field logic: fields, codec, correctors, rules, policy, records
    model                the serving path: model.signature, model.serving
    model.training       data, corruption generator, preprocessing, train, evaluate, report
    streaming            the job: Beam composites, Kafka IO, pipeline wiring, replay, diff, CLI

Imports inside functions count the same as module-level ones, so none can hide a cycle
or an upward arrow; the only ones allowed at all load TensorFlow late (``LATE_IMPORTS``).
Nothing installed imports ``harness``, ``bench``, ``dataflow`` or ``tests``.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
INSTALLED = ("schemas", "transforms", "model", "streaming")
LAYERS = ("schemas", "transforms", "model", "model.training", "streaming")
NOT_INSTALLED = ("harness", "bench", "dataflow", "tests")
# Modules that import TensorFlow at load time: training imports them inside the functions
# that need them, so that `metafix --help` and the job's start stay quick, and the
# `metafix` command (streaming.cli) only once it has capped glibc's malloc arenas.
LATE_IMPORTS = {"model.training.preprocessing", "streaming.main"}
# Pure field logic and the serving contract run without Beam or TensorFlow.
NO_FRAMEWORKS = ("schemas", "transforms", "model.signature")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    return max(i for i, prefix in enumerate(LAYERS) if module == prefix or module.startswith(prefix + "."))


def top_package(module: str) -> str:
    return module.split(".")[0]


def imports(path: Path) -> list[tuple[str, bool]]:
    """(imported module, inside a function) for every import in ``path``."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((alias.name, inner) for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
                # "from package import module" imports the module when it is one.
                for alias in child.names:
                    candidate = f"{child.module}.{alias.name}"
                    as_module = REPO_ROOT.joinpath(*candidate.split("."))
                    is_module = as_module.with_suffix(".py").exists() or (as_module / "__init__.py").exists()
                    found.append((candidate if is_module else child.module, inner))
            visit(child, inner)

    visit(ast.parse(path.read_text(encoding="utf-8")), False)
    return found


def installed_modules() -> dict[str, Path]:
    return {
        module_name(path): path
        for package in INSTALLED
        for path in sorted((REPO_ROOT / package).rglob("*.py"))
    }


def import_graph() -> dict[str, set[str]]:
    modules = installed_modules()
    return {
        name: {m for m, _ in imports(path) if top_package(m) in INSTALLED and m != name}
        for name, path in modules.items()
    }


def test_no_import_goes_up_a_layer() -> None:
    upward = [
        f"{name} ({LAYERS[layer(name)]}) imports {target} ({LAYERS[layer(target)]})"
        for name, targets in import_graph().items()
        for target in targets
        if layer(target) > layer(name)
    ]
    assert not upward


def test_the_installed_modules_import_no_cycle() -> None:
    graph = import_graph()
    # Imports of a package's __init__ are edges too; resolve them to existing modules only.
    graph = {name: {t for t in targets if t in graph} for name, targets in graph.items()}
    visiting: list[str] = []
    done: set[str] = set()
    cycles: list[list[str]] = []

    def walk(name: str) -> None:
        visiting.append(name)
        for target in sorted(graph[name]):
            if target in visiting:
                cycles.append([*visiting[visiting.index(target):], target])
            elif target not in done:
                walk(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        if name not in done:
            walk(name)
    assert not cycles


def test_installed_code_never_imports_the_harness_or_tests() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in installed_modules().items()
        for target, _ in imports(path)
        if top_package(target) in NOT_INSTALLED
    ]
    assert not found


def test_no_project_import_hides_inside_a_function() -> None:
    hidden = [
        f"{name} imports {target} inside a function"
        for name, path in installed_modules().items()
        for target, nested in imports(path)
        if nested and top_package(target) in INSTALLED and target not in LATE_IMPORTS
    ]
    assert not hidden


def test_pure_field_logic_needs_no_beam_or_tensorflow() -> None:
    found = [
        f"{name} imports {target}"
        for name, path in installed_modules().items()
        if layer(name) <= LAYERS.index("transforms") or name in NO_FRAMEWORKS
        for target, _ in imports(path)
        if top_package(target) in ("apache_beam", "tensorflow", "tensorflow_transform", "tf_keras")
    ]
    assert not found


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Built from a copy: setuptools writes build/ and *.egg-info beside the setup.py it runs.
    source = tmp_path_factory.mktemp("source") / "metafix"
    shutil.copytree(REPO_ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".state", "build", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis", "export", ".compiled"))
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(out), "."],
        capture_output=True, text=True, timeout=300, cwd=source,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (found,) = out.glob("metafix-*.whl")
    return found


def test_the_wheel_holds_the_job_and_no_harness(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    packages = {n.split("/")[0] for n in names if not n.startswith("metafix-")}
    assert packages == set(INSTALLED)
    assert "streaming/main.py" in names and "model/serving.py" in names and "schemas/registry.json" in names
    assert not [n for n in names if n.startswith(NOT_INSTALLED) or n.endswith("pom.xml")]
