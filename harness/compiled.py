"""``python -m harness.compiled``: compile ``transforms/`` with Cython into ``.compiled/transforms/``.

``make`` runs this whenever a module of ``transforms/`` changed. The modules are
compiled as they are, with Python's semantics: annotations stay annotations, not
C types, so the build does exactly what the sources do (the whole suite runs on
it). ``transforms/native.py`` decides whether the build is imported.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from transforms import native

REPO_ROOT = Path(__file__).resolve().parents[1]

DIRECTIVES = {
    "language_level": 3,
    # Python semantics: an annotation like ``x: int`` must not turn into a C type check.
    "annotation_typing": False,
    # Functions that pickle by name and that inspect and doctest can read, as Python's do.
    "binding": True,
}


def build(package_dir: Path) -> Path:
    """Compiles the package's modules; returns the build folder, current (``native.is_current``)."""
    # Imported here: only a build needs Cython and a C compiler, not the package.
    from Cython.Build import cythonize
    from setuptools import Distribution

    build_dir = native.build_dir_for(package_dir)
    (build_dir / native.STAMP).unlink(missing_ok=True)
    # The digests of the sources as they were when compiled: one edited during the build
    # leaves the stamp stale, and the source runs.
    recorded = native.stamp(package_dir)
    root = package_dir.parent
    work = root / ".compiled" / "work"
    cwd = Path.cwd()
    os.chdir(root)  # cythonize names each module by its path from here: transforms/policy.py -> transforms.policy
    try:
        extensions = cythonize(
            [str(p.relative_to(root)) for p in native.compiled_sources(package_dir)],
            build_dir=str(work / "c"),
            compiler_directives=DIRECTIVES,
            nthreads=os.cpu_count() or 1,
            quiet=True,
        )
        distribution = Distribution({"ext_modules": extensions, "script_name": "harness/compiled.py"})
        command = distribution.get_command_obj("build_ext")
        command.build_lib = str(build_dir.parent)
        command.build_temp = str(work / "objects")
        command.parallel = os.cpu_count() or 1
        distribution.run_command("build_ext")
    finally:
        os.chdir(cwd)
    (build_dir / native.STAMP).write_text(json.dumps(recorded, indent=2) + "\n", encoding="utf-8")
    return build_dir


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.compiled", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--package", default=str(REPO_ROOT / "transforms"), help="the package folder to compile")
    args = parser.parse_args(argv)
    build_dir = build(Path(args.package).resolve())
    print(f"compiled {len(native.compiled_sources(Path(args.package)))} modules into {build_dir}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
