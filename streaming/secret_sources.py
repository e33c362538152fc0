"""Where the Kafka SASL password comes from, so that no command line ever carries it.

In order of precedence (streaming/options.py ``kafka_settings``):

    --sasl-plain-password-file /run/secrets/kafka          # read at start, one trailing newline dropped
    --sasl-plain-password-secret projects/P/secrets/S      # Secret Manager, read where a client is made
    METAFIX_SASL_PLAIN_PASSWORD=...                        # the environment (systemd, Kubernetes)
    sasl.jaas.config / sasl.password in --kafka-config     # the client.properties file

A Secret Manager name travels with the pipeline instead of the password: each worker (and
the Dataflow launcher's preflight) reads the secret once per process, when it first makes
a Kafka client. That needs google-cloud-secret-manager, which Beam's GCP extra brings (the
Dataflow worker image has it).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

try:
    from google.cloud import secretmanager
except ImportError:  # only the Secret Manager source needs it
    secretmanager = None

PASSWORD_ENV = "METAFIX_SASL_PLAIN_PASSWORD"
_SECRET_NAME = re.compile(r"projects/[^/\s]+/secrets/[^/\s]+(/versions/[^/\s]+)?")


class SecretError(ValueError):
    """A secret could not be read; the message names its source, never its value."""


def read_secret_file(path: str | Path) -> str:
    """The file's text without its trailing newline (``echo pw > file`` adds one)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise SecretError(f"cannot read the password file {path}: {getattr(e, 'strerror', None) or e}") from e
    secret = text.removesuffix("\n").removesuffix("\r")
    if not secret:
        raise SecretError(f"the password file {path} is empty")
    return secret


def secret_version_name(name: str) -> str:
    """A Secret Manager version name; a bare secret name means its latest version.

    >>> secret_version_name("projects/p/secrets/kafka")
    'projects/p/secrets/kafka/versions/latest'
    """
    if not _SECRET_NAME.fullmatch(name):
        raise SecretError(f"not a Secret Manager name (projects/P/secrets/S[/versions/V]): {name!r}")
    return name if "/versions/" in name else f"{name}/versions/latest"


@functools.cache
def secret_manager_value(name: str) -> str:
    """The secret's payload, read once per process."""
    if secretmanager is None:
        raise SecretError(f"reading {name} needs google-cloud-secret-manager: pip install google-cloud-secret-manager")
    try:
        response = secretmanager.SecretManagerServiceClient().access_secret_version(name=secret_version_name(name))
        return response.payload.data.decode("utf-8")
    except Exception as e:  # auth, permission and API errors all end here as one line
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise SecretError(f"cannot read {name} from Secret Manager: {type(e).__name__}: {first_line}"[:300]) from e
