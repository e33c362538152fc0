"""A single-node Apache Kafka 4.1 broker (KRaft, broker and controller in one JVM) on 127.0.0.1.

Used by `make kafka-up` / `make kafka-down`, the demo and the test session fixture:

    python -m harness.local_kafka up --port 19092     # returns once the broker serves requests
    python -m harness.local_kafka down --port 19092
    python -m harness.local_kafka jars                 # resolve the jars only (make kafka-jars)

The jars are resolved by Maven from harness/kafka/pom.xml. Everything a broker writes lives
under .state/kafka/broker-<port>/, so `down` then `up` on the same port keeps topics and
committed offsets: reliability tests stop and restart the broker in the middle of a run.
"""

from __future__ import annotations

import argparse
import base64
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka import KafkaAdminClient
from kafka.errors import KafkaError

HOST = "127.0.0.1"
REPO_ROOT = Path(__file__).resolve().parents[1]
POM_DIR = Path(__file__).resolve().parent / "kafka"
DEFAULT_STATE_DIR = REPO_ROOT / ".state" / "kafka"
DEFAULT_PORT = 19092

# Kafka 4 logs through log4j2. WARN keeps the log readable; the two INFO loggers leave the
# "started" and "shutting down" lines in the log, which is what one looks for after a failure.
_LOG4J2_PROPERTIES = """\
status = warn
appender.out.type = Console
appender.out.name = out
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.out.ref = out
logger.raft.name = kafka.server.KafkaRaftServer
logger.raft.level = info
logger.broker.name = kafka.server.BrokerServer
logger.broker.level = info
"""


class LocalKafkaError(RuntimeError):
    """The local broker could not be started, reached or stopped."""


@dataclass(frozen=True)
class SaslSslListener:
    """A second listener, SASL_SSL with SASL/PLAIN, as managed Kafka services run them.

    `keystore` is a PEM file with the broker's PKCS#8 key and its certificate chain
    (harness/tls.py makes one); `users` maps user names to passwords.
    """

    port: int
    keystore: Path
    users: Mapping[str, str]

    def properties(self) -> dict[str, str]:
        users = " ".join(f'user_{user}="{_jaas_quoted(pw)}"' for user, pw in self.users.items())
        prefix = "listener.name.sasl_ssl."
        return {
            "sasl.enabled.mechanisms": "PLAIN",
            f"{prefix}plain.sasl.jaas.config":
                f"org.apache.kafka.common.security.plain.PlainLoginModule required {users};",
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.location": str(self.keystore),
        }


def _jaas_quoted(text: str) -> str:
    # Escaping would have to survive both the properties and the JAAS syntax: test passwords need none.
    if any(c in text for c in '"\\\n'):
        raise ValueError("a SASL_SSL test password may not contain quotes, backslashes or newlines")
    return text


def broker_properties(
    port: int,
    controller_port: int,
    log_dir: Path,
    extra: Mapping[str, str] | None = None,
    sasl_ssl: SaslSslListener | None = None,
) -> dict[str, str]:
    """server.properties for a combined broker+controller node; `extra` overrides or adds keys.

    `sasl_ssl` adds a SASL_SSL listener next to the PLAINTEXT one, which stays for the
    broker itself and for admin clients. Other listeners (SCRAM, say) are added by passing
    their `listeners`, `listener.security.protocol.map` and `listener.name.*` entries in `extra`.
    """
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        # Static voters: formatting then needs no --standalone and the quorum config is
        # rewritten on every start, so the controller port may change between restarts.
        "controller.quorum.voters": f"1@{HOST}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "listeners": f"PLAINTEXT://{HOST}:{port},CONTROLLER://{HOST}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{HOST}:{port}",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "3",
        # Topics are created explicitly; a typo in a topic name must fail, not create a topic.
        "auto.create.topics.enable": "false",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "3",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "3",
        "min.insync.replicas": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.segment.bytes": str(16 * 1024 * 1024),
    }
    if sasl_ssl is not None:
        props["listeners"] += f",SASL_SSL://{HOST}:{sasl_ssl.port}"
        props["advertised.listeners"] += f",SASL_SSL://{HOST}:{sasl_ssl.port}"
        props["listener.security.protocol.map"] += ",SASL_SSL:SASL_SSL"
        props.update(sasl_ssl.properties())
    props.update(extra or {})
    return props


def render_properties(props: Mapping[str, str]) -> str:
    return "".join(f"{key}={value}\n" for key, value in props.items())


def resolve_classpath(cache_dir: Path = DEFAULT_STATE_DIR) -> str:
    """The broker's Java classpath, resolved by Maven once and cached under `cache_dir`."""
    cache = cache_dir / "classpath.txt"
    pom = POM_DIR / "pom.xml"
    if cache.exists() and cache.stat().st_mtime >= pom.stat().st_mtime:
        classpath = cache.read_text().strip()
        # A cleaned ~/.m2 leaves a cache that points at missing jars.
        if all(Path(jar).exists() for jar in classpath.split(os.pathsep)):
            return classpath
    cache_dir.mkdir(parents=True, exist_ok=True)
    partial = cache.with_suffix(".partial")
    command = ["mvn", "-q", "-B", "dependency:build-classpath", f"-Dmdep.outputFile={partial}"]
    done = subprocess.run(command, cwd=POM_DIR, capture_output=True, text=True)
    if done.returncode != 0 or not partial.exists():
        raise LocalKafkaError(
            f"`{' '.join(command)}` failed in {POM_DIR}:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
        )
    partial.replace(cache)
    return cache.read_text().strip()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


def port_is_open(port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def serves_kafka(bootstrap: str, timeout_s: float = 5.0) -> bool:
    """True when a Kafka client can connect and list topics (the port alone may be a stranger)."""
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap,
            client_id="metafix-local-kafka",
            bootstrap_timeout_ms=int(timeout_s * 1000),
            request_timeout_ms=int(timeout_s * 1000),
        )
    except KafkaError:
        return False
    try:
        admin.list_topics()
        return True
    except KafkaError:
        return False
    finally:
        admin.close()


def _is_alive(pid: int) -> bool:
    try:
        # Reaps the broker when this process started it; otherwise a dead child would
        # linger as a zombie and still answer signal 0.
        reaped, _ = os.waitpid(pid, os.WNOHANG)
        if reaped == pid:
            return False
    except ChildProcessError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


class LocalKafka:
    """One broker, identified by its client port; its files live in `state_dir`/broker-<port>."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        state_dir: Path = DEFAULT_STATE_DIR,
        extra_properties: Mapping[str, str] | None = None,
        heap: str = "512m",
        sasl_ssl: SaslSslListener | None = None,
    ) -> None:
        self.port = port
        self.state_dir = Path(state_dir)
        self.extra_properties = dict(extra_properties or {})
        self.heap = heap
        self.sasl_ssl = sasl_ssl

    @property
    def sasl_ssl_bootstrap(self) -> str:
        assert self.sasl_ssl is not None, "this broker has no SASL_SSL listener"
        return f"{HOST}:{self.sasl_ssl.port}"

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def home(self) -> Path:
        return self.state_dir / f"broker-{self.port}"

    @property
    def log_file(self) -> Path:
        return self.home / "broker.log"

    @property
    def _pid_file(self) -> Path:
        return self.home / "broker.pid"

    @property
    def _properties_file(self) -> Path:
        return self.home / "server.properties"

    @property
    def _data_dir(self) -> Path:
        return self.home / "data"

    def pid(self) -> int | None:
        """The broker's pid when the pid file names a live broker started from this directory."""
        try:
            pid = int(self._pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        # Pids get reused: check that the process really is this broker.
        if not _is_alive(pid) or str(self._properties_file).encode() not in _cmdline(pid):
            return None
        return pid

    def is_running(self) -> bool:
        return self.pid() is not None

    def start(self, timeout_s: float = 90.0) -> None:
        """Format storage on first use, start the JVM detached, wait until it serves clients."""
        if self.is_running():
            raise LocalKafkaError(f"a broker from {self.home} already runs on port {self.port}")
        if port_is_open(self.port):
            raise LocalKafkaError(f"port {self.port} is already taken by another process")
        # One cache for every state dir: the classpath depends only on the pom.
        classpath = resolve_classpath()
        self.home.mkdir(parents=True, exist_ok=True)
        props = broker_properties(
            self.port, self._controller_port(), self._data_dir, self.extra_properties, self.sasl_ssl
        )
        self._properties_file.write_text(render_properties(props))
        log4j = self.home / "log4j2.properties"
        log4j.write_text(_LOG4J2_PROPERTIES)
        java = ["java", f"-Xmx{self.heap}", "-Xms128m", f"-Dlog4j2.configurationFile={log4j}"]
        java += ["-cp", classpath]
        if not (self._data_dir / "meta.properties").exists():
            self._format_storage(java)
        # Spawned rather than Popen'ed: the broker is meant to outlive this process (`make
        # kafka-up`), and its own session keeps a Ctrl-C in that terminal away from it.
        pid = os.posix_spawnp(
            "java",
            [*java, "kafka.Kafka", str(self._properties_file)],
            os.environ,
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (
                    os.POSIX_SPAWN_OPEN,
                    1,
                    str(self.log_file),
                    os.O_WRONLY | os.O_CREAT | os.O_APPEND,
                    0o644,
                ),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self._pid_file.write_text(f"{pid}\n")
        self._wait_until_ready(pid, timeout_s)

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM (a clean shutdown keeps the data dir consistent), SIGKILL after `timeout_s`.

        Returns False when no broker was running.
        """
        pid = self.pid()
        if pid is None:
            self._pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        if not self._wait_for_exit(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            if not self._wait_for_exit(pid, 10.0):
                raise LocalKafkaError(f"broker pid {pid} survived SIGKILL")
        self._pid_file.unlink(missing_ok=True)
        return True

    def restart(self, timeout_s: float = 90.0) -> None:
        self.stop()
        self.start(timeout_s)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no broker log)"

    def _controller_port(self) -> int:
        # Reusing the last controller port keeps the quorum address stable across restarts.
        port_file = self.home / "controller.port"
        try:
            port = int(port_file.read_text())
            if not port_is_open(port):
                return port
        except (OSError, ValueError):
            pass
        port = free_port()
        port_file.write_text(f"{port}\n")
        return port

    def _format_storage(self, java: Sequence[str]) -> None:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        command = [*java, "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}"]
        command += ["-c", str(self._properties_file)]
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise LocalKafkaError(
                f"formatting {self._data_dir} failed:\n{done.stdout[-3000:]}{done.stderr[-3000:]}"
            )

    def _wait_until_ready(self, pid: int, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                self._pid_file.unlink(missing_ok=True)
                raise LocalKafkaError(
                    f"the broker on port {self.port} exited during startup; "
                    f"log {self.log_file}:\n{self.log_tail()}"
                )
            if port_is_open(self.port) and serves_kafka(self.bootstrap):
                return
            time.sleep(0.25)
        self.stop()
        raise LocalKafkaError(
            f"the broker on port {self.port} was not ready after {timeout_s:.0f} s; "
            f"log {self.log_file}:\n{self.log_tail()}"
        )

    @staticmethod
    def _wait_for_exit(pid: int, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _is_alive(pid):
                return True
            time.sleep(0.1)
        return not _is_alive(pid)


def unique_topic_name(prefix: str = "topic") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def create_topic(
    bootstrap: str,
    name: str,
    partitions: int = 3,
    config: Mapping[str, str] | None = None,
    timeout_s: float = 30.0,
) -> None:
    """Create a topic and return once metadata shows a leader for every partition."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="metafix-local-kafka")
    try:
        spec = {
            "num_partitions": partitions,
            "replication_factor": 1,
            "configs": dict(config or {}),
        }
        admin.create_topics({name: spec}, timeout_ms=int(timeout_s * 1000))
        admin.wait_for_topics([name], timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()


def delete_topics(bootstrap: str, names: Sequence[str], timeout_s: float = 30.0) -> None:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, client_id="metafix-local-kafka")
    try:
        admin.delete_topics(list(names), timeout_ms=int(timeout_s * 1000))
    finally:
        admin.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m harness.local_kafka",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("command", choices=["up", "down", "jars"])
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--state-dir", type=Path, default=DEFAULT_STATE_DIR)
    parser.add_argument("--timeout", type=float, default=90.0, help="seconds to wait (default 90)")
    args = parser.parse_args(argv)
    broker = LocalKafka(port=args.port, state_dir=args.state_dir)
    try:
        if args.command == "jars":
            jars = resolve_classpath(args.state_dir).split(os.pathsep)
            print(f"Kafka classpath ready: {len(jars)} jars")
        elif args.command == "up":
            if broker.is_running() or (
                port_is_open(broker.port) and serves_kafka(broker.bootstrap)
            ):
                print(f"Kafka already running on {broker.bootstrap}")
                return 0
            broker.start(timeout_s=args.timeout)
            print(f"Kafka ready on {broker.bootstrap} (log: {broker.log_file})")
        elif broker.stop(timeout_s=args.timeout):
            print(f"Kafka on port {args.port} stopped")
        else:
            print(f"no broker from {broker.home} is running")
    except LocalKafkaError as error:
        print(error, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
