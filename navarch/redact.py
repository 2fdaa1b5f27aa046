"""Remote answers, scrubbed before they reach history or a log.

What a webhook, a cloud API or a scheduler answers may echo what it was sent: an
Authorization header in a 401, a token in a URL. `excerpt` removes anything that looks like
a credential (and every secret the caller names) and keeps a short, one-line excerpt.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping

REDACTED = "[redacted]"
EXCERPT_CHARS = 200

_PATTERNS = [
    # PEM private keys (RSA, EC, OpenSSH, PKCS#8), whole blocks, and a block cut short
    (re.compile(r"-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE "
                r"KEY-----|\Z)", re.DOTALL), REDACTED),
    # "Authorization: Bearer abc", "proxy-authorization=Basic abc"
    (re.compile(r"(?i)\b((?:proxy-)?authorization)([\"']?\s*[:=]\s*[\"']?)"
                r"(?:(?:bearer|basic|token|digest)\s+)?[^\s\"',;}&]+"), r"\1\2" + REDACTED),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 " + REDACTED),
    # token=..., "api_key": "...", password: ..., X-Api-Key: ...
    (re.compile(r"(?i)\b([\w-]*(?:token|api[_-]?key|secret|password|passwd|signature|"
                r"access[_-]?key|credential)s?)([\"']?\s*[:=]\s*[\"']?)[^\s\"',;}&]+"),
     r"\1\2" + REDACTED),
    (re.compile(r"://[^/\s:@]+:[^/\s@]+@"), "://" + REDACTED + "@"),  # user:pass@host
    (re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"), REDACTED),  # AWS access key ids
    (re.compile(r"\b[A-Za-z0-9+/_-]{40,}={0,2}"), REDACTED),  # long opaque strings
]


# Variables whose values are not secrets and are common in command output (paths, names).
_PLAIN_VARIABLES = {"PATH", "HOME", "PWD", "OLDPWD", "SHELL", "USER", "LOGNAME", "HOSTNAME",
                    "LANG", "LANGUAGE", "TERM", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH", "_",
                    "SHLVL", "MAIL", "EDITOR", "PAGER", "TZ"}
MIN_ENV_SECRET = 8


def environment_values(env: Mapping[str, str] | None = None) -> list[str]:
    """The values of this process's environment that output must not repeat: all of them
    (long enough to be a secret), except a few plain settings such as PATH and HOME."""
    env = os.environ if env is None else env
    return [value for name, value in env.items()
            if len(value) >= MIN_ENV_SECRET and name not in _PLAIN_VARIABLES
            and not name.startswith("LC_")]


def scrub(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` without the given secrets and without anything that looks like one."""
    for secret in sorted((s for s in secrets if len(s) >= 4), key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


def excerpt(data: bytes | str, secrets: Iterable[str] = (), limit: int = EXCERPT_CHARS) -> str:
    """A short, one-line, scrubbed excerpt of what a remote service answered."""
    text = data.decode(errors="replace") if isinstance(data, bytes) else data
    text = " ".join(scrub(text[: limit * 20], secrets).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."
