"""Apicurio Registry 3.3.3 on 127.0.0.1, serving the Confluent schema registry API.

Used by `make registry-up` / `make registry-down` and the test session fixture:

    python -m harness.local_registry up --port 18181   # returns once the API answers
    python -m harness.local_registry down --port 18181
    python -m harness.local_registry fetch             # the app from Maven Central only

The app (`io.apicurio:apicurio-registry-app:3.3.3`, classifier `all`, a tar.gz) comes from
Maven Central through ~/.m2 and is unpacked under .state/apicurio/. It needs Java 21 or
newer, found through JAVA_HOME or under /usr/lib/jvm. Both its HTTP port and its
management port (which Quarkus would open on 0.0.0.0:9000) are bound to 127.0.0.1, and it
keeps its storage in memory: a restart forgets every schema. For TLS and basic-auth tests
it can serve HTTPS only, with a given PEM certificate and key, and ask every request for a
user of a given list (Quarkus's embedded users; the passwords go in a file, not on its
command line).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import ssl
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path

import psutil

from harness.local_kafka import HOST, free_port, port_is_open

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STATE_DIR = REPO_ROOT / ".state" / "apicurio"
DEFAULT_PORT = 18181
VERSION = "3.3.3"
APP_DIR = DEFAULT_STATE_DIR / f"apicurio-registry-app-{VERSION}"
ARTIFACT = f"io.apicurio:apicurio-registry-app:{VERSION}:tar.gz:all"
TARBALL = (Path.home() / ".m2" / "repository" / "io" / "apicurio" / "apicurio-registry-app" / VERSION
           / f"apicurio-registry-app-{VERSION}-all.tar.gz")
CCOMPAT_PATH = "/apis/ccompat/v7"
MIN_JAVA = 21
JVM_DIR = Path("/usr/lib/jvm")


class LocalRegistryError(RuntimeError):
    """The local registry could not be fetched, started or stopped (the message is one line)."""


def java_version(java_home: Path) -> int | None:
    """The feature version of the JDK or JRE at ``java_home`` (from its ``release`` file)."""
    try:
        release = (java_home / "release").read_text()
    except OSError:
        return None
    found = re.search(r'^JAVA_VERSION="(\d+)(?:\.(\d+))?', release, re.MULTILINE)
    if found is None:
        return None
    major = int(found.group(1))
    # Java 8 and older call themselves 1.8.
    return int(found.group(2) or 0) if major == 1 else major


def find_java(minimum: int = MIN_JAVA) -> Path:
    """``bin/java`` of JAVA_HOME if it is recent enough, else of the newest JDK under /usr/lib/jvm."""
    candidates = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    if JVM_DIR.is_dir():
        homes = [h for h in JVM_DIR.iterdir() if h.is_dir() and not h.is_symlink()]
        candidates += sorted(homes, key=lambda h: java_version(h) or 0, reverse=True)
    for home in candidates:
        version = java_version(home)
        if version is not None and version >= minimum and (home / "bin" / "java").is_file():
            return home / "bin" / "java"
    raise LocalRegistryError(f"Apicurio Registry needs Java {minimum} or newer: none in JAVA_HOME or {JVM_DIR}")


def fetch_app() -> Path:
    """The unpacked app's directory (with quarkus-run.jar); fetched by Maven and unpacked once.

    One copy serves the registries of every state dir (the tests keep theirs in tmp dirs).
    """
    app_dir = APP_DIR
    if (app_dir / "quarkus-run.jar").is_file():
        return app_dir
    if not TARBALL.is_file():
        command = ["mvn", "-q", "-B", "dependency:get", "-Dtransitive=false", f"-Dartifact={ARTIFACT}"]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0 or not TARBALL.is_file():
            tail = (done.stdout + done.stderr).strip().splitlines()[-1:] or ["no output"]
            raise LocalRegistryError(f"`{' '.join(command)}` failed: {tail[0]}")
    partial = app_dir.with_name(app_dir.name + ".partial")
    partial.mkdir(parents=True, exist_ok=True)
    with tarfile.open(TARBALL) as tar:
        tar.extractall(partial, filter="data")
    partial.replace(app_dir)
    return app_dir


def _ready(management_port: int, timeout_s: float = 2.0) -> bool:
    """Quarkus's readiness check, on the management port (which needs neither TLS nor a user)."""
    try:
        with urllib.request.urlopen(f"http://{HOST}:{management_port}/health/ready", timeout=timeout_s) as response:
            return json.load(response).get("status") == "UP"
    except (OSError, ValueError):
        return False


def _answers(url: str, timeout_s: float = 30.0) -> bool:
    """True once the API answers at all, a refusal (401) included.

    Readiness comes before the API's first answer, which under load can take seconds more;
    waiting for it keeps that out of the first test's request. The certificate is not checked
    here: this only waits for the registry this harness started.
    """
    context = ssl._create_unverified_context() if url.startswith("https") else None
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout_s, context=context):
            return True
    except urllib.error.HTTPError:
        return True
    except OSError:
        return False


def serves_registry(url: str, timeout_s: float = 2.0) -> bool:
    """True when ``url`` (the API root) answers ``GET /subjects`` with a JSON list."""
    try:
        with urllib.request.urlopen(f"{url}/subjects", timeout=timeout_s) as response:
            return isinstance(json.load(response), list)
    except (OSError, ValueError):
        return False


def _is_alive(pid: int) -> bool:
    try:
        # Reaps the JVM when this process started it, so a dead child is not a zombie.
        if os.waitpid(pid, os.WNOHANG)[0] == pid:
            return False
    except ChildProcessError:
        pass
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


class LocalRegistry:
    """One registry, identified by its HTTP port; its pid file and log live in `state_dir`/registry-<port>."""

    def __init__(self, port: int = DEFAULT_PORT, state_dir: Path = DEFAULT_STATE_DIR, heap: str = "256m",
                 tls: tuple[Path, Path] | None = None, users: Mapping[str, str] | None = None):
        """``tls``: (certificate, key) PEM files, then HTTPS only; ``users``: name -> password."""
        self.port = port
        self.state_dir = Path(state_dir)
        self.heap = heap
        self.tls = tls
        self.users = dict(users or {})

    @property
    def url(self) -> str:
        """The Confluent API root, what ``--schema-registry-url`` takes."""
        return f"{'https' if self.tls else 'http'}://{HOST}:{self.port}{CCOMPAT_PATH}"

    @property
    def home(self) -> Path:
        return self.state_dir / f"registry-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "registry.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "registry.pid"

    def pid(self) -> int | None:
        """The JVM's pid when the pid file names a live registry started for this port."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        if not _is_alive(pid):
            return None
        try:
            cmdline = psutil.Process(pid).cmdline()
        except psutil.Error:
            return None
        # Pids get reused: check that the process really is this registry.
        return pid if f"-Dquarkus.config.locations={self.home / 'application.properties'}" in cmdline else None

    def start(self, timeout_s: float = 120.0) -> float:
        """Starts the JVM detached and waits until the API answers; returns the seconds that took."""
        if self.pid() is not None:
            raise LocalRegistryError(f"a registry from {self.home} already runs on port {self.port}")
        if port_is_open(self.port):
            raise LocalRegistryError(f"port {self.port} is already taken by another process")
        java = find_java()
        app_dir = fetch_app()
        self.home.mkdir(parents=True, exist_ok=True)
        management_port = free_port()
        config = self.home / "application.properties"
        config.write_text("".join(f"{key}={value}\n" for key, value in self._secured_config().items()))
        config.chmod(0o600)
        command = [
            str(java), f"-Xmx{self.heap}",
            f"-Dquarkus.http.host={HOST}", f"-Dquarkus.management.host={HOST}",
            f"-Dquarkus.management.port={management_port}",
            f"-Dquarkus.http.{'ssl-port' if self.tls else 'port'}={self.port}",
            # An in-memory H2 database (the app's default, stated so it stays so).
            "-Dapicurio.storage.kind=sql", "-Dapicurio.storage.sql.kind=h2",
            f"-Dapicurio.datasource.url=jdbc:h2:mem:registry-{self.port}",
            f"-Dquarkus.config.locations={config}",
            "-jar", str(app_dir / "quarkus-run.jar"),
        ]
        started = time.monotonic()
        # Spawned in a session of its own, like the local broker: `make registry-up` leaves it
        # running, and a Ctrl-C in that terminal does not reach it.
        pid = os.posix_spawn(
            str(java), command, os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, str(self.log_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self._pid_file.write_text(f"{pid}\n")
        deadline = started + timeout_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                self._pid_file.unlink(missing_ok=True)
                raise LocalRegistryError(f"the registry on port {self.port} exited during startup; log {self.log_file}")
            if _ready(management_port) and _answers(self.url):
                return time.monotonic() - started
            time.sleep(0.2)
        self.stop()
        raise LocalRegistryError(f"the registry on port {self.port} was not ready after {timeout_s:.0f} s; "
                                 f"log {self.log_file}")

    def _secured_config(self) -> dict[str, str]:
        config: dict[str, str] = {}
        if self.tls:
            certificate, key = self.tls
            config |= {
                "quarkus.http.port": "0",
                "quarkus.http.insecure-requests": "disabled",
                "quarkus.http.ssl.certificate.files": str(certificate),
                "quarkus.http.ssl.certificate.key-files": str(key),
            }
        if self.users:
            config |= {
                "quarkus.http.auth.basic": "true",
                "quarkus.security.users.embedded.enabled": "true",
                "quarkus.security.users.embedded.plain-text": "true",
                "quarkus.http.auth.permission.all.paths": "/*",
                "quarkus.http.auth.permission.all.policy": "authenticated",
            }
            config |= {f"quarkus.security.users.embedded.users.{name}": pw for name, pw in self.users.items()}
        return config

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, SIGKILL after `timeout_s`; False when no registry was running."""
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while _is_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _is_alive(pid):
            os.kill(pid, signal.SIGKILL)
        self._pid_file.unlink(missing_ok=True)
        return True

    def rss_bytes(self) -> int:
        """Resident memory of the registry's JVM (0 when it does not run)."""
        pid = self.pid()
        try:
            return psutil.Process(pid).memory_info().rss if pid is not None else 0
        except psutil.Error:
            return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.local_registry", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["up", "down", "fetch"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    args = parser.parse_args(argv)
    registry = LocalRegistry(port=args.port, state_dir=args.state_dir)
    try:
        if args.command == "fetch":
            print(f"Apicurio Registry {VERSION} ready in {fetch_app()}")
        elif args.command == "up":
            if registry.pid() is not None or serves_registry(registry.url):
                print(f"schema registry already running at {registry.url}")
                return 0
            took_s = registry.start(timeout_s=args.timeout)
            print(f"schema registry ready at {registry.url} after {took_s:.1f} s "
                  f"({registry.rss_bytes() / 2**20:.0f} MiB resident; log: {registry.log_file})")
        elif registry.stop(timeout_s=args.timeout):
            print(f"schema registry on port {args.port} stopped")
        else:
            print(f"no registry from {registry.home} is running")
    except LocalRegistryError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
