"""Beam's FlinkRunner on an embedded Flink: the job server jar and the runner flags.

    python -m harness.flink jar        # resolve the job server (Maven Central), print its jar
    python -m harness.flink args       # print the FlinkRunner flags for `metafix stream|replay`

    metafix stream --bootstrap-servers ... $(python -m harness.flink args --parallelism 2)

With ``--flink_master=[local]`` the job server runs a Flink MiniCluster in its own JVM;
with ``--flink_master=host:8081`` it submits to a running Flink session cluster instead.
``--environment_type=LOOPBACK`` runs the Python SDK harness inside the launching
process, so nothing but Java and this virtualenv is needed.

The job server is Beam's ``FlinkJobServerDriver``. Beam publishes it as a shaded jar
(``beam-runners-flink-<flink>-job-server``), which FlinkRunner downloads by itself where
Maven Central serves it. Where it does not, ``job_server_jar`` resolves the runner from
``harness/flink_job_server/pom.xml`` and writes a small launcher jar whose manifest puts
those jars on the classpath, so ``java -jar`` (how FlinkRunner starts a job server)
works the same. ``METAFIX_FLINK_JOB_SERVER_JAR`` names a jar to use instead.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import zipfile
from collections.abc import Sequence
from pathlib import Path

from streaming.options import REPO_ROOT

FLINK_VERSION = "1.19"
POM_DIR = Path(__file__).resolve().parent / "flink_job_server"
DEFAULT_STATE_DIR = REPO_ROOT / ".state" / "flink"
JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
LAUNCHER_NAME = "beam-flink-job-server-launcher.jar"
JAR_ENV = "METAFIX_FLINK_JOB_SERVER_JAR"
DEFAULT_CHECKPOINTING_INTERVAL_MS = 10_000
# Flink logs every task transition at INFO; WARN keeps the job's log readable.
JOB_SERVER_JVM_PROPERTIES = ("-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",)


class FlinkSetupError(RuntimeError):
    """The Flink job server could not be resolved."""


def resolve_classpath(state_dir: Path = DEFAULT_STATE_DIR) -> list[Path]:
    """The job server's jars, resolved by Maven once and cached under ``state_dir``."""
    pom = POM_DIR / "pom.xml"
    cache = state_dir / f"classpath-{_digest(pom.read_bytes())}.txt"
    if cache.exists():
        jars = [Path(jar) for jar in cache.read_text().strip().split(os.pathsep)]
        # A cleaned ~/.m2 leaves a cache that points at missing jars.
        if all(jar.exists() for jar in jars):
            return jars
    state_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    command = ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={partial}"]
    try:
        done = subprocess.run(command, cwd=POM_DIR, capture_output=True, text=True)
    except FileNotFoundError as error:
        raise FlinkSetupError("Maven (mvn) is needed to resolve the Flink job server") from error
    if done.returncode != 0 or not partial.exists():
        raise FlinkSetupError(
            f"`{' '.join(command)}` failed in {POM_DIR}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    partial.replace(cache)
    return [Path(jar) for jar in cache.read_text().strip().split(os.pathsep)]


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:12]


def manifest(main_class: str, classpath: Sequence[Path]) -> bytes:
    """A jar manifest (lines wrapped at 72 bytes, as the jar spec requires)."""
    headers = {
        "Manifest-Version": "1.0",
        "Main-Class": main_class,
        "Class-Path": " ".join(jar.resolve().as_uri() for jar in classpath),
    }
    lines = []
    for name, value in headers.items():
        data = f"{name}: {value}".encode()
        lines.append(data[:72])
        lines += [b" " + data[i : i + 71] for i in range(72, len(data), 71)]
    return b"\r\n".join(lines) + b"\r\n\r\n"


def job_server_jar(state_dir: Path = DEFAULT_STATE_DIR) -> Path:
    """A jar that ``java -jar`` starts as Beam's Flink job server."""
    named = os.environ.get(JAR_ENV)
    if named:
        if not Path(named).is_file():
            raise FlinkSetupError(f"{JAR_ENV}={named} is not a file")
        return Path(named)
    content = manifest(JOB_SERVER_MAIN, resolve_classpath(state_dir))
    jar = state_dir / LAUNCHER_NAME
    if jar.exists():
        with zipfile.ZipFile(jar) as existing:
            if existing.read("META-INF/MANIFEST.MF") == content:
                return jar
    partial = jar.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w") as out:
        out.writestr("META-INF/MANIFEST.MF", content)
    partial.replace(jar)
    return jar


def runner_args(
    jar: Path | str,
    *,
    master: str = "[local]",
    parallelism: int = 2,
    checkpointing_interval_ms: int = DEFAULT_CHECKPOINTING_INTERVAL_MS,
    environment_type: str = "LOOPBACK",
) -> list[str]:
    """The FlinkRunner flags for a metafix job.

    ``parallelism`` is the number of parallel instances of each step: Kafka partitions are
    spread over the instances of the reading step. Checkpoints (every
    ``checkpointing_interval_ms``) end the bundles in flight, and the reader commits a
    partition's offsets from the bundle finalizer once its outputs are written.
    With LOOPBACK, one Python SDK harness in the launching process serves every instance.

    ``--finish_bundle_before_checkpointing``: by default the runner starts a checkpoint at
    once and buffers the outputs of the bundle in flight as part of it. The step that lists
    the partitions runs a single bundle; when the first checkpoint caught that bundle, its
    partitions never reached the reader and the job read nothing while it ran (3 of 6 starts
    at a 1-2 s interval here; none of 5 with this flag).
    """
    args = [
        "--runner=FlinkRunner",
        f"--flink_master={master}",
        f"--flink_version={FLINK_VERSION}",
        f"--flink_job_server_jar={jar}",
        f"--environment_type={environment_type}",
        f"--parallelism={parallelism}",
        f"--checkpointing_interval={checkpointing_interval_ms}",
        "--finish_bundle_before_checkpointing",
    ]
    args += [f"--job_server_jvm_properties={prop}" for prop in JOB_SERVER_JVM_PROPERTIES]
    return args


def write_conf_dir(directory: Path, *, rest_port: int) -> Path:
    """A Flink configuration directory (use it as FLINK_CONF_DIR) with the REST API on
    127.0.0.1:``rest_port``, so an embedded cluster's jobs can be inspected while they run."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "flink-conf.yaml").write_text(
        f"rest.address: 127.0.0.1\nrest.bind-address: 127.0.0.1\nrest.port: {rest_port}\n"
    )
    return directory


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.flink",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["jar", "args"])
    parser.add_argument("--master", default="[local]", help="[local] or a Flink REST address host:port")
    parser.add_argument("--parallelism", type=int, default=2)
    parser.add_argument("--checkpointing-interval-ms", type=int, default=DEFAULT_CHECKPOINTING_INTERVAL_MS)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    args = parser.parse_args(argv)
    try:
        jar = job_server_jar(args.state_dir)
    except FlinkSetupError as error:
        print(error, file=sys.stderr)
        return 1
    if args.command == "jar":
        print(jar)
    else:
        print(" ".join(runner_args(
            jar,
            master=args.master,
            parallelism=args.parallelism,
            checkpointing_interval_ms=args.checkpointing_interval_ms,
        )))
    return 0


if __name__ == "__main__":
    sys.exit(main())
