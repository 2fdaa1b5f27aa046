"""The SSH bootstrap contract: `setup_commands` and `file_uploads` run on a new machine over
SSH, for images or clouds where user data is not enough (templates: navarch.config.setup_commands).
The activity runs in the control-plane worker, which holds the private key file; workflows
pass only the key's path.
"""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field
from temporalio import activity

from navarch.config.setup_commands import (
    DEFAULT_COMMAND_TIMEOUT,
    DEFAULT_IP_WAIT_TIMEOUT,
    DEFAULT_SSH_CONNECT_TIMEOUT,
    DEFAULT_SSH_PORT,
    DEFAULT_SSH_TIMEOUT,
    FileUpload,
)
from navarch.contracts.base import StoredModel
from navarch.contracts.spec import ProviderChoice
from navarch.durations import GoDuration

SSH_BOOTSTRAP = "cloud.ssh_bootstrap"
OUTPUT_KEPT = 2000  # characters of each command's output kept in the result (and history)


class SshBootstrapInput(StoredModel):
    node_id: str
    pool: str
    provider: ProviderChoice
    instance_id: str
    region: str = ""
    instance_type: str = ""
    host: str | None = None  # None: wait for the instance to get an address
    port: int = DEFAULT_SSH_PORT
    user: str = "ubuntu"
    private_key_path: str  # read by the worker; the key itself never enters history
    commands: list[str] = Field(default_factory=list)
    uploads: list[FileUpload] = Field(default_factory=list)
    ip_wait_timeout: GoDuration = DEFAULT_IP_WAIT_TIMEOUT
    ssh_timeout: GoDuration = DEFAULT_SSH_TIMEOUT
    connect_timeout: GoDuration = DEFAULT_SSH_CONNECT_TIMEOUT
    command_timeout: GoDuration = DEFAULT_COMMAND_TIMEOUT

    def deadline(self) -> timedelta:
        """The longest the whole bootstrap can legitimately take."""
        per_step = self.command_timeout * (len(self.commands) + len(self.uploads))
        return self.ip_wait_timeout + self.ssh_timeout + per_step + timedelta(minutes=1)


class CommandRun(StoredModel):
    command: str  # as written in the config (the template, not the rendered text)
    exit_status: int | None
    seconds: float
    output: str = ""  # the last OUTPUT_KEPT characters of stdout and stderr


class SshBootstrapResult(StoredModel):
    host: str
    host_key: str = ""  # the server's key fingerprint, trusted on first use
    ssh_wait_seconds: float = 0.0
    commands: list[CommandRun] = Field(default_factory=list)
    uploaded: list[str] = Field(default_factory=list)


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=SSH_BOOTSTRAP)
async def ssh_bootstrap(params: SshBootstrapInput) -> SshBootstrapResult:
    """Upload files and run the setup commands on a new machine over SSH."""
    raise NotImplementedError
