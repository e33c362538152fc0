"""The local schema registry: which Java it runs on, and that it listens on 127.0.0.1 only."""

from __future__ import annotations

import psutil
import pytest

from harness import local_registry
from harness.local_registry import LocalRegistryError, find_java, java_version


def _jdk(root, name: str, version: str):
    home = root / name
    (home / "bin").mkdir(parents=True)
    (home / "bin" / "java").write_text("")
    (home / "release").write_text(f'IMPLEMENTOR="test"\nJAVA_VERSION="{version}"\n')
    return home


def test_the_newest_java_21_or_later_is_found(tmp_path, monkeypatch):
    jvms = tmp_path / "jvm"
    _jdk(jvms, "jdk-17", "17.0.12")
    _jdk(jvms, "jdk-25", "25.0.1")
    _jdk(jvms, "jdk-21", "21.0.5")
    monkeypatch.setattr(local_registry, "JVM_DIR", jvms)
    monkeypatch.setenv("JAVA_HOME", str(jvms / "jdk-17"))
    assert find_java() == jvms / "jdk-25" / "bin" / "java"
    # JAVA_HOME wins when it is recent enough.
    monkeypatch.setenv("JAVA_HOME", str(jvms / "jdk-21"))
    assert find_java() == jvms / "jdk-21" / "bin" / "java"
    assert java_version(_jdk(tmp_path, "old", "1.8.0_402")) == 8


def test_without_java_21_it_fails_with_one_line(tmp_path, monkeypatch):
    jvms = tmp_path / "jvm"
    _jdk(jvms, "jdk-17", "17.0.12")
    monkeypatch.setattr(local_registry, "JVM_DIR", jvms)
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(LocalRegistryError) as info:
        find_java()
    assert str(info.value) == f"Apicurio Registry needs Java 21 or newer: none in JAVA_HOME or {jvms}"


@pytest.mark.registry
@pytest.mark.slow
def test_http_and_management_ports_listen_on_loopback_only(registry_server):
    listening = [c for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
    [pid] = {c.pid for c in listening if c.laddr.port == registry_server.port}
    addresses = {c.laddr.ip for c in listening if c.pid == pid}
    ports = {c.laddr.port for c in listening if c.pid == pid}
    assert len(ports) == 2 and registry_server.port in ports  # the API and the management interface
    assert addresses <= {"127.0.0.1", "::ffff:127.0.0.1"}
