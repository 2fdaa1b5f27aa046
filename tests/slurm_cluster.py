"""A real one-node Slurm cluster for tests: munged, slurmctld and slurmd from Debian's
packages, started as root in a temp folder (no systemd), stopped by their pid files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

DAEMONS = ("munged", "slurmctld", "slurmd", "sinfo", "scontrol", "sbatch", "squeue")


def missing() -> str:
    """Why a Slurm cluster cannot be started here ("" when it can)."""
    absent = [d for d in DAEMONS if shutil.which(d) is None
              and not Path("/usr/sbin", d).exists()]
    if absent:
        return (f"Slurm is not installed ({', '.join(absent)} missing): apt-get install "
                "slurmctld slurmd slurm-client munge")
    if os.geteuid() != 0:
        return "the Slurm daemons run as root here (SlurmUser=root)"
    return ""


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _bin(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


@dataclass
class SlurmCluster:
    folder: Path
    node: str = "localhost"

    @property
    def conf(self) -> Path:
        return self.folder / "slurm.conf"

    def env(self) -> dict[str, str]:
        return {**os.environ, "SLURM_CONF": str(self.conf)}

    def run(self, *args: str) -> str:
        return subprocess.run(list(args), env=self.env(), capture_output=True, text=True,
                              check=True, timeout=30).stdout

    def start(self) -> None:
        f = self.folder
        key = f / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        sock = f / "munge.socket"
        subprocess.run([_bin("munged"), "--force", f"--key-file={key}", f"--socket={sock}",
                        f"--pid-file={f / 'munged.pid'}", f"--log-file={f / 'munged.log'}",
                        f"--seed-file={f / 'munge.seed'}"], check=True, timeout=30)
        for sub in ("state", "spool"):
            (f / sub).mkdir(exist_ok=True)
        self.conf.write_text(f"""ClusterName=navarch-test
SlurmctldHost=localhost
SlurmctldPort={_port()}
SlurmdPort={_port()}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={sock}
StateSaveLocation={f / 'state'}
SlurmdSpoolDir={f / 'spool'}
SlurmctldPidFile={f / 'slurmctld.pid'}
SlurmdPidFile={f / 'slurmd.pid'}
SlurmUser=root
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
ReturnToService=2
MpiDefault=none
JobRequeue=1
SchedulerParameters=defer_batch=0
NodeName={self.node} CPUs=2 State=UNKNOWN
PartitionName=gpu Nodes={self.node} Default=YES MaxTime=INFINITE State=UP
""")
        subprocess.run([_bin("slurmctld"), "-f", str(self.conf), "-L", str(f / "ctld.log")],
                       env=self.env(), check=True, timeout=30)
        subprocess.run([_bin("slurmd"), "-f", str(self.conf), "-L", str(f / "d.log")],
                       env=self.env(), check=True, timeout=30)
        deadline = time.monotonic() + 30
        while True:
            try:
                state = self.run("sinfo", "-h", "-N", "-o", "%T").strip()
                if state.startswith("idle"):
                    return
            except subprocess.CalledProcessError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"slurm did not come up: {(f / 'ctld.log').read_text()}")
            time.sleep(0.3)

    def state(self) -> tuple[str, str]:
        """(state, reason) of the node, as sinfo says, without the flag characters (`*`:
        not responding for a moment, as right after slurmd runs a job)."""
        line = self.run("sinfo", "-h", "-N", "-n", self.node, "-o", "%T|%E").strip()
        state, _, reason = line.partition("|")
        return state.rstrip("*~#!%$@^-"), reason

    def submit(self, seconds: float) -> str:
        out = self.run("sbatch", "--parsable", "--requeue", "--output=/dev/null",
                       "--wrap", f"sleep {seconds}")
        return out.strip().split(";")[0]

    async def running(self, job: str) -> None:
        """Wait until the job runs on the node."""
        import asyncio

        for _ in range(100):
            if self.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "RUNNING":
                return
            await asyncio.sleep(0.1)
        raise AssertionError(f"job {job} never ran")

    def reset(self) -> None:
        """No jobs, the node resumed: a clean slate for the next test."""
        subprocess.run(["scancel", "--user=root"], env=self.env(), capture_output=True,
                       timeout=30)
        subprocess.run(["scontrol", "update", f"nodename={self.node}", "state=resume"],
                       env=self.env(), capture_output=True, timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if not self.run("squeue", "-h", "-o", "%i").strip() and self.state()[0] == "idle":
                return
            time.sleep(0.2)
        raise RuntimeError(f"slurm node not idle after reset: {self.state()}")

    def stop(self) -> None:
        for pid_file in ("slurmd.pid", "slurmctld.pid", "munged.pid"):
            path = self.folder / pid_file
            with contextlib.suppress(OSError, ValueError):
                os.kill(int(path.read_text().strip()), signal.SIGTERM)
        subprocess.run(["pkill", "-f", f"slurmstepd.*{self.folder}"], capture_output=True)
        subprocess.run(["pkill", "-x", "slurmstepd"], capture_output=True)
