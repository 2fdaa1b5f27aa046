"""`navarch agent-credentials`: the bundle a new machine's agent fetches, printed from this
shell's own Temporal settings, for storing where `server.agent.credentials` points."""

from __future__ import annotations

import json

from navarch.bootstrap.credentials import CredentialsError, bundle_from_environment
from navarch.cli.common import fail
from navarch.cli.output import out


def agent_credentials() -> None:
    """Print, as JSON, the agent credentials bundle made of this shell's Temporal settings
    (TEMPORAL_API_KEY, the TEMPORAL_TLS_* files read into their *_DATA forms,
    NAVARCH_CODEC_KEYS). Store it as the secret server.agent.credentials names, e.g.
    `navarch agent-credentials > b.json && aws ssm put-parameter --name /navarch/agent
    --type SecureString --value file://b.json`."""
    try:
        bundle = bundle_from_environment()
    except CredentialsError as exc:
        fail(str(exc))
    if not bundle:
        fail("no Temporal credentials in this environment: set TEMPORAL_API_KEY or the "
             "TEMPORAL_TLS_CLIENT_CERT_PATH/_KEY_PATH (and SERVER_CA_CERT_PATH) the agents "
             "should use")
    out.print(json.dumps(bundle, indent=2, sort_keys=True), markup=False, highlight=False,
              soft_wrap=True)
