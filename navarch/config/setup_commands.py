"""Setup commands: the Go Navarch's SSH bootstrap templates, and the defaults of the SSH
bootstrap. No dependencies, so config validation, the pool spec and the SSH activity can all
use it.

Setup commands are Go templates reduced to fields: `{{.ControlPlane}}` (the Temporal address
the agent should dial), `{{.Pool}}`, `{{.NodeID}}`, `{{.Provider}}`, `{{.Region}}`,
`{{.InstanceType}}`, plus Navarch's `{{.Namespace}}` (the Temporal namespace). Each value is
shell-quoted before it is put in, so a value can never run as code.
"""

from __future__ import annotations

import re
import shlex
from datetime import timedelta

from navarch.validation import StrictModel

TEMPLATE_VARS = ("ControlPlane", "Pool", "NodeID", "Provider", "Region", "InstanceType",
                 "Namespace")
_FIELD = re.compile(r"\{\{\s*\.(\w+)\s*\}\}")
_ANY_ACTION = re.compile(r"\{\{.*?\}\}", re.S)

# The Go Navarch's defaults (ip_wait_timeout is Navarch's: it never read that key).
DEFAULT_SSH_TIMEOUT = timedelta(minutes=10)
DEFAULT_SSH_CONNECT_TIMEOUT = timedelta(seconds=30)
DEFAULT_COMMAND_TIMEOUT = timedelta(minutes=5)
DEFAULT_IP_WAIT_TIMEOUT = timedelta(minutes=5)
DEFAULT_SSH_PORT = 22


class TemplateError(ValueError):
    pass


def template_problems(command: str) -> list[str]:
    """What is wrong with one setup command's template (empty: it renders)."""
    problems = []
    for action in _ANY_ACTION.findall(command):
        field = _FIELD.fullmatch(action)
        if field is None:
            problems.append(f"{action!r}: only {{{{.Name}}}} fields are supported")
        elif field.group(1) not in TEMPLATE_VARS:
            problems.append(f"unknown field {field.group(1)!r} (known: "
                            f"{', '.join(TEMPLATE_VARS)})")
    return problems


def render_command(command: str, values: dict[str, str]) -> str:
    problems = template_problems(command)
    if problems:
        raise TemplateError("; ".join(problems))
    return _FIELD.sub(lambda m: shlex.quote(values.get(m.group(1), "")), command)


class FileUpload(StrictModel):
    """A file copied from the control-plane worker's host to the machine before the setup
    commands run."""

    local: str
    remote: str
    mode: str = "0644"
