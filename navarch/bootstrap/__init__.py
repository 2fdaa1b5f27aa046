"""The agent's bootstrap: cloud-init user data that installs `navarch[agent]` and starts the
agent as a systemd unit with the node id the control plane chose.

The files are also in deploy/ (cloud-init/agent-user-data.yaml, systemd/navarch-agent.service).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from string import Template

from navarch import __version__

VENV = "/opt/navarch/venv"
REQUIREMENT_FILE = "/opt/navarch/agent-requirement.txt"


@dataclass(frozen=True)
class AgentSource:
    """Where a machine's bootstrap gets the agent: a pinned version from an index (the
    public one unless named) or a wheel (a URL, or a path on the machine's image), with
    its sha256 where given, which pip checks before it installs anything."""

    version: str = __version__
    index_url: str | None = None
    wheel: str | None = None
    sha256: str | None = None
    extras: tuple[str, ...] = ("agent",)

    def requirement(self, *, extras: bool = True) -> str:
        name = f"navarch[{','.join(self.extras)}]" if extras and self.extras else "navarch"
        if self.wheel:
            url = self.wheel if "://" in self.wheel else f"file://{self.wheel}"
            return f"{name} @ {url}"
        return f"{name}=={self.version}"

    def commands(self) -> list[str]:
        """Shell commands that install the agent into the bootstrap's venv."""
        pip = f"{VENV}/bin/pip install --quiet" + (
            f" --index-url {self.index_url}" if self.index_url else "")
        if not self.sha256:
            return [f"{pip} '{self.requirement()}'"]
        # Hash-checking mode covers every package it installs, so the verified package is
        # installed alone; its dependencies follow by name, navarch itself already there.
        installed = (f"$({VENV}/bin/python -c 'import navarch; print(navarch.__version__)')")
        extras = ",".join(self.extras)
        return [
            f"printf '%s\\n' '{self.requirement(extras=False)} --hash=sha256:{self.sha256}' "
            f"> {REQUIREMENT_FILE}",
            f"{pip} --no-deps --require-hashes -r {REQUIREMENT_FILE}",
            f'{pip} "navarch[{extras}]=={installed}"',
        ]


DEFAULT_SOURCE = AgentSource()


def _read(name: str) -> str:
    return resources.files("navarch.bootstrap").joinpath(name).read_text("utf-8")


def systemd_unit() -> str:
    return _read("navarch-agent.service")


def _indent(text: str, spaces: int) -> str:
    pad = " " * spaces
    return "\n".join(pad + line if line else "" for line in text.rstrip("\n").splitlines())


def _env_lines(node_id: str, pool: str, temporal_address: str, temporal_namespace: str,
               extra_env: dict[str, str] | None) -> list[str]:
    values = {"NAVARCH_NODE_ID": node_id, "NAVARCH_POOL": pool,
              "TEMPORAL_ADDRESS": temporal_address, "TEMPORAL_NAMESPACE": temporal_namespace,
              **(extra_env or {})}
    for name, value in values.items():
        if not value or any(c in value for c in "\n\r\"'$ `\\"):
            raise ValueError(f"{name} {value!r} cannot go into the agent's environment file")
    return [f"{k}={v}" for k, v in values.items()]


def render_startup_script(*, node_id: str, pool: str, temporal_address: str,
                          temporal_namespace: str = "default",
                          source: AgentSource = DEFAULT_SOURCE,
                          extra_env: dict[str, str] | None = None) -> str:
    """The same bootstrap as a shell script, for images that run a startup script instead
    of cloud-init (GCE's `startup-script` metadata). Safe to run on every boot."""
    env = "\n".join(_env_lines(node_id, pool, temporal_address, temporal_namespace, extra_env))
    return "\n".join([
        "#!/bin/sh",
        "# Navarch bootstrap: install and start the node agent (runs on every boot).",
        "set -eu",
        "mkdir -p /etc/navarch",
        "umask 077",
        "cat > /etc/navarch/agent.env <<'NAVARCH_ENV'",
        env,
        "NAVARCH_ENV",
        "umask 022",
        "cat > /etc/systemd/system/navarch-agent.service <<'NAVARCH_UNIT'",
        systemd_unit().rstrip("\n"),
        "NAVARCH_UNIT",
        f"if [ ! -x {VENV}/bin/navarch-agent ]; then",
        "  command -v python3 >/dev/null || (apt-get update && apt-get install -y python3 "
        "python3-venv)",
        f"  python3 -m venv {VENV}",
        *(f"  {command}" for command in source.commands()),
        "fi",
        "systemctl daemon-reload",
        "systemctl enable --now navarch-agent.service",
        "",
    ])


def render_user_data(*, node_id: str, pool: str, temporal_address: str,
                     temporal_namespace: str = "default", source: AgentSource = DEFAULT_SOURCE,
                     extra_env: dict[str, str] | None = None) -> str:
    """Cloud-init user data for one node. `extra_env` adds lines to the agent's environment
    file (e.g. TLS paths); it is written with mode 0600 and never logged."""
    _env_lines(node_id, pool, temporal_address, temporal_namespace, extra_env)  # validates
    env_lines = "\n".join(f"{k}={v}" for k, v in (extra_env or {}).items())
    return Template(_read("cloud-init.yaml")).substitute(
        node_id=node_id, pool=pool, temporal_address=temporal_address,
        temporal_namespace=temporal_namespace,
        install="\n".join(f"  - [sh, -c, {json.dumps(c)}]" for c in source.commands()),
        extra_env=_indent(env_lines, 6) if env_lines else "",
        systemd_unit=_indent(systemd_unit(), 6),
    )
