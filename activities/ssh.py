"""The SSH bootstrap (asyncssh): wait for the machine's SSH, upload files, run the setup
commands in order; the first failure ends it with the command's exit status and output.

The host key is trusted on first use (a new machine's key cannot be known in advance) and
its fingerprint is returned, so the node's history says which key answered.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import time
from collections.abc import Callable
from typing import Any

from navarch.config.setup_commands import render_command
from navarch.contracts.ssh import OUTPUT_KEPT, CommandRun, SshBootstrapInput, SshBootstrapResult
from navarch.redact import environment_values, scrub

RETRY_EVERY = 5.0  # seconds between SSH connection attempts while the machine boots


def ssh_client_available() -> bool:
    return importlib.util.find_spec("asyncssh") is not None


class BootstrapFailed(Exception):
    """The bootstrap cannot succeed (bad key, a command failed, SSH never answered)."""


def _tail(*texts: str | bytes | None) -> str:
    """What a command printed, as history keeps it: scrubbed of anything that looks like a
    credential and of every value in this worker's environment, then the last
    OUTPUT_KEPT characters."""
    joined = "\n".join((t.decode(errors="replace") if isinstance(t, bytes) else t).strip()
                       for t in texts if t)
    return scrub(joined[-OUTPUT_KEPT * 4:], environment_values())[-OUTPUT_KEPT:]


async def _connect(params: SshBootstrapInput, host: str, key: Any,
                   beat: Callable[[str], None]) -> tuple[Any, float]:
    import asyncssh

    start = time.monotonic()
    deadline = start + params.ssh_timeout.total_seconds()
    attempts, last = 0, ""
    while True:
        attempts += 1
        try:
            conn = await asyncssh.connect(
                host, port=params.port, username=params.user, client_keys=[key],
                known_hosts=None, agent_path=None, password=None, kbdint_auth=False,
                connect_timeout=params.connect_timeout.total_seconds())
            return conn, time.monotonic() - start
        except asyncssh.PermissionDenied as exc:
            raise BootstrapFailed(f"ssh {params.user}@{host}:{params.port} refused the key "
                                  f"{params.private_key_path}: {exc.reason}") from None
        except (OSError, asyncssh.Error, TimeoutError) as exc:
            last = str(exc) or type(exc).__name__
        if time.monotonic() + RETRY_EVERY > deadline:
            raise BootstrapFailed(f"no SSH on {host}:{params.port} after {attempts} "
                                  f"attempt(s) in {params.ssh_timeout}: {last}")
        beat(f"waiting for SSH on {host}:{params.port} ({attempts}: {last})")
        await asyncio.sleep(RETRY_EVERY)


def load_key(path: str) -> Any:
    import asyncssh

    try:
        return asyncssh.read_private_key(os.path.expanduser(path))
    except (OSError, asyncssh.KeyImportError) as exc:
        raise BootstrapFailed(f"ssh_private_key_path {path}: {exc}") from None


def _local_files(params: SshBootstrapInput) -> list[str]:
    """The uploads' local paths, each checked to be a file on this host (a stat each)."""
    paths = [os.path.expanduser(u.local) for u in params.uploads]
    for upload, path in zip(params.uploads, paths, strict=True):
        if not os.path.isfile(path):
            raise BootstrapFailed(f"file_uploads: {upload.local} is not a file on the "
                                  "control-plane host")
    return paths


async def run_bootstrap(params: SshBootstrapInput, host: str, values: dict[str, str],
                        beat: Callable[[str], None]) -> SshBootstrapResult:
    """Upload `params.uploads`, then run `params.commands` (rendered with `values`)."""
    import asyncssh

    rendered = [render_command(c, values) for c in params.commands]  # bad template: fail now
    locals_ = _local_files(params)
    key = load_key(params.private_key_path)
    conn, waited = await _connect(params, host, key, beat)
    result = SshBootstrapResult(host=host, ssh_wait_seconds=round(waited, 3))
    server_key = conn.get_server_host_key()
    if server_key is not None:
        result.host_key = server_key.get_fingerprint()
    step_timeout = params.command_timeout.total_seconds()
    async with conn:
        if params.uploads:
            async with conn.start_sftp_client() as sftp:
                for upload, local in zip(params.uploads, locals_, strict=True):
                    beat(f"uploading {upload.local} -> {upload.remote}")
                    try:
                        await asyncio.wait_for(
                            sftp.put(local, upload.remote),
                            step_timeout)
                        await sftp.chmod(upload.remote, int(upload.mode, 8))
                    except (asyncssh.SFTPError, OSError, TimeoutError) as exc:
                        raise BootstrapFailed(f"upload {upload.local} -> {upload.remote}: "
                                              f"{exc}") from None
                    result.uploaded.append(upload.remote)
        for number, (template, command) in enumerate(zip(params.commands, rendered,
                                                         strict=True), start=1):
            beat(f"setup command {number}/{len(rendered)}")
            started = time.monotonic()
            try:
                done = await conn.run(command, check=False, timeout=step_timeout)
            except asyncssh.TimeoutError as exc:
                result.commands.append(CommandRun(
                    command=template, exit_status=None, seconds=round(time.monotonic()
                                                                      - started, 3),
                    output=_tail(exc.stdout, exc.stderr)))
                raise BootstrapFailed(f"setup command {number} ({template!r}) did not finish "
                                      f"in {params.command_timeout}") from None
            run = CommandRun(command=template, exit_status=done.exit_status,
                             seconds=round(time.monotonic() - started, 3),
                             output=_tail(done.stdout, done.stderr))
            result.commands.append(run)
            if done.exit_status != 0:
                raise BootstrapFailed(
                    f"setup command {number} ({template!r}) exited {done.exit_status}: "
                    f"{run.output[-300:] or 'no output'}")
    return result
