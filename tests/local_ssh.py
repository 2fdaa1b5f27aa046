"""A real SSH server on 127.0.0.1 for the bootstrap tests (asyncssh's server side): public-key
auth against one client key, commands run by /bin/sh on this host, SFTP into a folder."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncssh


@dataclass
class LocalSsh:
    port: int
    user: str
    key_path: Path  # the client's private key (what a pool's ssh_private_key_path names)
    commands: list[str] = field(default_factory=list)  # as the server received them


async def _run(process: asyncssh.SSHServerProcess[str], seen: list[str]) -> None:
    command = process.command or ""
    seen.append(command)
    proc = await asyncio.create_subprocess_shell(
        command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        start_new_session=True)
    out, err = await proc.communicate()
    process.stdout.write(out.decode(errors="replace"))
    process.stderr.write(err.decode(errors="replace"))
    process.exit(proc.returncode or 0)


@contextlib.asynccontextmanager
async def local_ssh_server(tmp_path: Path, user: str = "navarch") -> AsyncIterator[LocalSsh]:
    host_key = asyncssh.generate_private_key("ssh-ed25519")
    client_key = asyncssh.generate_private_key("ssh-ed25519")
    key_path = tmp_path / "id_ed25519"
    client_key.write_private_key(str(key_path))
    key_path.chmod(0o600)
    authorized = asyncssh.import_authorized_keys(
        client_key.export_public_key().decode())
    seen: list[str] = []
    running: set[asyncio.Task[None]] = set()

    def process_factory(process: asyncssh.SSHServerProcess[str]) -> None:
        task = asyncio.ensure_future(_run(process, seen))
        running.add(task)
        task.add_done_callback(running.discard)

    server = await asyncssh.listen(
        "127.0.0.1", 0, server_host_keys=[host_key], authorized_client_keys=authorized,
        process_factory=process_factory, sftp_factory=True, encoding="utf-8",
        allow_scp=False)
    port = server.sockets[0].getsockname()[1]
    try:
        yield LocalSsh(port=port, user=user, key_path=key_path, commands=seen)
    finally:
        server.close()
        await server.wait_closed()
