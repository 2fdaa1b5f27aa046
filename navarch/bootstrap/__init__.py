"""The agent's bootstrap: cloud-init user data that installs `navarch[agent]` and starts the
agent as a systemd unit with the node id the control plane chose.

The files are also in deploy/ (cloud-init/agent-user-data.yaml, systemd/navarch-agent.service).
"""

from __future__ import annotations

from importlib import resources
from string import Template

from navarch import __version__

DEFAULT_PACKAGE = f"navarch[agent]=={__version__}"


def _read(name: str) -> str:
    return resources.files("navarch.bootstrap").joinpath(name).read_text("utf-8")


def systemd_unit() -> str:
    return _read("navarch-agent.service")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else "" for line in text.rstrip("\n").splitlines())


def render_user_data(*, node_id: str, pool: str, temporal_address: str,
                     temporal_namespace: str = "default", package: str = DEFAULT_PACKAGE,
                     extra_env: dict[str, str] | None = None) -> str:
    """Cloud-init user data for one node. `extra_env` adds lines to the agent's environment
    file (e.g. TLS paths); it is written with mode 0600 and never logged."""
    for name, value in (("node_id", node_id), ("pool", pool),
                        ("temporal_address", temporal_address)):
        if not value or any(c in value for c in "\n\r\"'$ "):
            raise ValueError(f"{name} {value!r} cannot go into the agent's environment file")
    env_lines = "\n".join(f"{k}={v}" for k, v in (extra_env or {}).items())
    return Template(_read("cloud-init.yaml")).substitute(
        node_id=node_id, pool=pool, temporal_address=temporal_address,
        temporal_namespace=temporal_namespace, package=package,
        extra_env=_indent(env_lines, 6) if env_lines else "",
        systemd_unit=_indent(systemd_unit(), 6),
    )
