"""A throwaway certificate authority and a broker certificate for 127.0.0.1, made with openssl.

    pki = make_test_pki(Path("/tmp/pki"))
    pki.ca            # the CA certificate clients trust (--ssl-cafile)
    pki.keystore      # the broker's PKCS#8 key + certificate chain (Kafka's PEM keystore)
    pki.other_ca      # a CA that signed nothing the broker has: a client trusting it must fail
    pki.elsewhere     # a keystore from the right CA for another host (broker.invalid) only

The broker certificate names DNS:localhost and IP:127.0.0.1, so clients connect with
hostname verification on, as they do against a production cluster.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

DAYS = "2"


@dataclass(frozen=True)
class LocalPki:
    ca: Path
    keystore: Path
    other_ca: Path
    elsewhere: Path


def _openssl(*args: str, cwd: Path) -> None:
    done = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


def _make_ca(directory: Path, name: str) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.pem",
             "-days", DAYS, "-subj", f"/CN={name}", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)


def _issue(directory: Path, stem: str, subject_alt_name: str) -> Path:
    """A key and a certificate from the test CA, as one PEM keystore (key, certificate, CA)."""
    (directory / f"{stem}.ext").write_text(
        f"subjectAltName={subject_alt_name}\n"
        "extendedKeyUsage=serverAuth\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
    )
    # openssl 3 writes new keys as unencrypted PKCS#8, the form Kafka's PEM keystore reads.
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{stem}.key", "-out", f"{stem}.csr",
             "-subj", f"/CN={stem}", cwd=directory)
    _openssl("x509", "-req", "-in", f"{stem}.csr", "-CA", "metafix-test-ca.pem", "-CAkey", "metafix-test-ca.key",
             "-CAcreateserial", "-out", f"{stem}.pem", "-days", DAYS, "-extfile", f"{stem}.ext", cwd=directory)
    keystore = directory / f"{stem}-keystore.pem"
    keystore.write_text("".join((directory / name).read_text()
                                for name in (f"{stem}.key", f"{stem}.pem", "metafix-test-ca.pem")))
    return keystore


def make_test_pki(directory: Path) -> LocalPki:
    directory.mkdir(parents=True, exist_ok=True)
    _make_ca(directory, "metafix-test-ca")
    _make_ca(directory, "metafix-other-ca")
    return LocalPki(
        ca=directory / "metafix-test-ca.pem",
        keystore=_issue(directory, "broker", "DNS:localhost,IP:127.0.0.1"),
        other_ca=directory / "metafix-other-ca.pem",
        elsewhere=_issue(directory, "elsewhere", "DNS:broker.invalid"),
    )
