"""The agent's Temporal credentials, fetched at start with the machine's own cloud identity
from the secret its user data names (`NAVARCH_AGENT_CREDENTIALS`; the forms are in
`navarch.bootstrap.credentials`). A machine's identity may not be ready the moment it boots
(an instance profile's first credentials, the metadata server), so a fetch is retried for a
while before the agent gives up and systemd starts it again."""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping

from navarch.bootstrap.credentials import (
    REFERENCE_ENV,
    CredentialsError,
    check_reference,
    inline_bundle,
    parse_bundle,
)

log = logging.getLogger("navarch.agent.credentials")

GCP_METADATA = "http://metadata.google.internal/computeMetadata/v1"
GCP_SECRET_MANAGER = "https://secretmanager.googleapis.com/v1"


class NotFound(CredentialsError):
    """The secret does not exist or this machine may not read it: retrying will not help."""


def _aws_client(service: str) -> object:
    try:
        import boto3
    except ImportError:
        raise CredentialsError(f"{REFERENCE_ENV} names an AWS secret but boto3 is not "
                               "installed (install navarch[agent,aws])") from None
    return boto3.client(service, endpoint_url=os.environ.get("NAVARCH_AWS_ENDPOINT_URL"))


def _aws_fetch(reference: str, fetch: Callable[[object], str]) -> str:
    from botocore.exceptions import BotoCoreError, ClientError

    client = _aws_client(reference.split(":", 1)[0].removeprefix("aws-"))
    try:
        return fetch(client)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code, message = error.get("Code", ""), error.get("Message", "")
        if code in ("ParameterNotFound", "ResourceNotFoundException", "AccessDeniedException",
                    "AccessDenied", "ParameterVersionNotFound"):
            raise NotFound(f"{reference}: {code}: {message}") from None
        raise CredentialsError(f"{reference}: {code}: {message}") from None
    except BotoCoreError as exc:  # no credentials yet, no endpoint: retried
        raise CredentialsError(f"{reference}: {exc}") from None


def _ssm(reference: str) -> str:
    name = reference.split(":", 1)[1]

    def get(client: object) -> str:
        answer = client.get_parameter(Name=name, WithDecryption=True)  # type: ignore[attr-defined]
        return str(answer["Parameter"]["Value"])

    return _aws_fetch(reference, get)


def _secrets_manager(reference: str) -> str:
    name = reference.split(":", 1)[1]

    def get(client: object) -> str:
        answer = client.get_secret_value(SecretId=name)  # type: ignore[attr-defined]
        if "SecretString" not in answer:
            raise NotFound(f"{reference}: the secret holds binary data, not a JSON bundle")
        return str(answer["SecretString"])

    return _aws_fetch(reference, get)


def _http_json(request: urllib.request.Request, reference: str) -> dict[str, object]:
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            data = json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        detail = f"{reference}: HTTP {exc.code} from {request.full_url.split('?')[0]}"
        raise (NotFound(detail) if exc.code in (403, 404) else CredentialsError(detail)) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise CredentialsError(f"{reference}: {exc}") from None
    if not isinstance(data, dict):
        raise CredentialsError(f"{reference}: unexpected answer")
    return data


def _gcp_secret_manager(reference: str) -> str:
    import base64

    name = reference.split(":", 1)[1]
    if "/versions/" not in name:
        name += "/versions/latest"
    metadata = os.environ.get("NAVARCH_GCP_METADATA_URL", GCP_METADATA)
    api = os.environ.get("NAVARCH_GCP_SECRET_MANAGER_URL", GCP_SECRET_MANAGER)
    token = _http_json(urllib.request.Request(
        f"{metadata}/instance/service-accounts/default/token",
        headers={"Metadata-Flavor": "Google"}), reference).get("access_token")
    if not isinstance(token, str):
        raise CredentialsError(f"{reference}: the metadata server gave no access token")
    answer = _http_json(urllib.request.Request(
        f"{api}/{urllib.parse.quote(name)}:access",
        headers={"Authorization": f"Bearer {token}"}), reference)
    payload = answer.get("payload")
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, str):
        raise CredentialsError(f"{reference}: the secret version has no data")
    return base64.b64decode(data).decode()


_FETCHERS: dict[str, Callable[[str], str]] = {
    "aws-ssm": _ssm,
    "aws-secretsmanager": _secrets_manager,
    "gcp-secretmanager": _gcp_secret_manager,
}


def fetch(reference: str) -> dict[str, str]:
    """The bundle `reference` names, fetched once."""
    check_reference(reference)
    scheme, _, rest = reference.partition(":")
    if scheme == "inline":
        return inline_bundle(rest)
    return parse_bundle(_FETCHERS[scheme](reference), reference)


def fetch_with_retry(reference: str, *, within: float = 120.0,
                     sleep: Callable[[float], None] = time.sleep) -> dict[str, str]:
    """`fetch`, retried with backoff for `within` seconds while the failure may pass."""
    check_reference(reference)  # a malformed reference fails at once
    deadline = time.monotonic() + within
    wait = 1.0
    while True:
        try:
            return fetch(reference)
        except NotFound:
            raise
        except CredentialsError as exc:
            if time.monotonic() + wait > deadline:
                raise
            log.warning("credentials not readable yet (%s); again in %.0f s", exc, wait)
        sleep(wait)
        wait = min(wait * 2, 15.0)


def load_into(env: os._Environ[str] | dict[str, str], *, within: float = 120.0) -> list[str]:
    """Resolve `NAVARCH_AGENT_CREDENTIALS` (when set) into `env`; the names it set."""
    reference = env.get(REFERENCE_ENV)
    if not reference:
        return []
    bundle = fetch_with_retry(reference, within=within)
    env.update(bundle)
    return sorted(bundle)


def describe(env: Mapping[str, str]) -> str:
    """Where the credentials came from, for the log (an inline bundle is not printed)."""
    reference = env.get(REFERENCE_ENV, "")
    return "inline bundle" if reference.startswith("inline:") else reference
