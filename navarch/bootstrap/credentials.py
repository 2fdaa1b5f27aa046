"""What a new machine's agent needs to reach a secured Temporal, as one bundle, and where it
comes from.

A bundle is a JSON object of the agent's connection settings, each under its standard
environment variable name (`BUNDLE_KEYS`): an API key, or a client certificate and key
(PEM), the server's CA, and the payload codec's keys. The machine's user data never holds
it; it holds a *reference* (`NAVARCH_AGENT_CREDENTIALS`), which the agent resolves at start
with the machine's own cloud identity:

    aws-ssm:/navarch/agent                  an SSM SecureString parameter (instance profile)
    aws-secretsmanager:navarch/agent        a Secrets Manager secret (name or ARN)
    gcp-secretmanager:projects/P/secrets/S  a Secret Manager secret (the VM's service account)
    inline:BASE64                           the bundle itself (`worker-env`: rendered by the
                                            launching activity from the worker's environment)

Only the reference, never the bundle, is part of the pool spec and so of history.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
from collections.abc import Mapping
from pathlib import Path

KEYS_ENV, KEYS_FILE_ENV = "NAVARCH_CODEC_KEYS", "NAVARCH_CODEC_KEYS_FILE"  # navarch.temporal.codec

REFERENCE_ENV = "NAVARCH_AGENT_CREDENTIALS"
WORKER_ENV = "worker-env"  # the config's word for "render the worker's own settings inline"
SCHEMES = ("aws-ssm", "aws-secretsmanager", "gcp-secretmanager", "inline")
BUNDLE_KEYS = (
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_DATA",
    KEYS_ENV,
)
# A worker's file settings and the bundle key each one's content becomes.
_FILES = {
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH": "TEMPORAL_TLS_SERVER_CA_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_CERT_PATH": "TEMPORAL_TLS_CLIENT_CERT_DATA",
    "TEMPORAL_TLS_CLIENT_KEY_PATH": "TEMPORAL_TLS_CLIENT_KEY_DATA",
    KEYS_FILE_ENV: KEYS_ENV,
}


class CredentialsError(ValueError):
    """A reference or bundle that cannot be used; the message names which and why."""


def check_reference(reference: str) -> str:
    """`reference` if it is one the agent can resolve (or `worker-env`), else why not."""
    if reference == WORKER_ENV:
        return reference
    scheme, sep, rest = reference.partition(":")
    if not sep or scheme not in SCHEMES or not rest.strip():
        raise CredentialsError(
            f"agent credentials {reference!r}: expected {WORKER_ENV} or SCHEME:NAME with "
            f"SCHEME one of {', '.join(s for s in SCHEMES if s != 'inline')}")
    if scheme == "gcp-secretmanager" and not rest.startswith("projects/"):
        raise CredentialsError(f"agent credentials {reference!r}: a Secret Manager name "
                               "starts with projects/PROJECT/secrets/")
    if any(c.isspace() or c in "\"'$`\\" for c in reference):
        raise CredentialsError(f"agent credentials {reference!r}: no spaces or quotes")
    return reference


def parse_bundle(text: str, source: str) -> dict[str, str]:
    """A bundle's settings, checked: a JSON object of strings under `BUNDLE_KEYS` only."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CredentialsError(f"{source}: not a JSON object ({exc.msg})") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{source}: not a JSON object")
    unknown = sorted(set(data) - set(BUNDLE_KEYS))
    if unknown:
        raise CredentialsError(f"{source}: unknown setting(s) {', '.join(unknown)}; a bundle "
                               f"holds {', '.join(BUNDLE_KEYS)}")
    bad = sorted(k for k, v in data.items() if not isinstance(v, str))
    if bad:
        raise CredentialsError(f"{source}: {', '.join(bad)} must be strings")
    return {k: v for k, v in data.items() if v}


def bundle_from_environment(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The bundle of this process's own Temporal settings: values as they are, files read
    into their inline forms. Fails naming a file it cannot read."""
    env = os.environ if env is None else env
    bundle = {k: env[k] for k in BUNDLE_KEYS if env.get(k)}
    for path_key, data_key in _FILES.items():
        path = env.get(path_key)
        if path and data_key not in bundle:
            try:
                bundle[data_key] = Path(path).expanduser().read_text()
            except OSError as exc:
                raise CredentialsError(f"{path_key}={path}: {exc.strerror}") from None
    return bundle


def inline_reference(bundle: Mapping[str, str]) -> str:
    """A reference that carries the bundle itself (for clouds without a machine identity)."""
    return "inline:" + base64.b64encode(json.dumps(dict(bundle)).encode()).decode()


def inline_bundle(rest: str) -> dict[str, str]:
    try:
        text = base64.b64decode(rest, validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise CredentialsError(f"{REFERENCE_ENV}: the inline bundle is not base64") from None
    return parse_bundle(text, f"{REFERENCE_ENV} (inline)")
