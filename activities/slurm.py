"""Cordon and drain through Slurm: `scontrol`, `sinfo`, `squeue` run by the control-plane
worker against slurmctld (SLURM_CONF and the munge socket come from the worker's
environment; nothing about the cluster's access enters workflow history).

Navarch owns a drain only when its reason starts with the configured prefix (`navarch:`):
it never resumes a node an administrator or Slurm's own health check drained, and never
rewrites such a reason. A drain that is not Navarch's is reported as a foreign hold.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from navarch.config.schema import SlurmNotifierConfig, render_node_name
from navarch.contracts.notifier import DrainStatus, ForceDrainResult, SchedulerNode
from navarch.redact import excerpt

from .notifier import SchedulerUnreachable

# Base states a node still runs work in (sinfo %T, long form, flags stripped).
_BUSY = {"allocated", "mixed", "completing", "draining"}
_DRAINED = {"drained", "draining"}


@dataclass(frozen=True)
class SlurmNode:
    name: str
    state: str  # sinfo's long state, without its flag characters: "draining", "idle"
    reason: str  # the drain reason, "" when none
    user: str  # who set the reason

    @property
    def drain_flag(self) -> bool:
        return self.state in _DRAINED


class Slurm:
    def __init__(self, cfg: SlurmNotifierConfig) -> None:
        self.cfg = cfg

    def name(self, target: SchedulerNode) -> str:
        return render_node_name(self.cfg.node_name, {
            "Hostname": target.hostname, "NodeID": target.node_id,
            "InstanceID": target.instance_id, "Pool": target.pool}).strip()

    def _tool(self, tool: str) -> str:
        scontrol = self.cfg.scontrol
        if tool == "scontrol":
            return scontrol
        found = shutil.which(scontrol)
        return str(Path(found).with_name(tool)) if found else tool

    async def _run(self, tool: str, *args: str) -> str:
        try:
            proc = await asyncio.create_subprocess_exec(
                self._tool(tool), *args, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=os.environ.copy())
        except OSError as exc:
            raise SchedulerUnreachable(f"slurm: cannot run {tool}: {exc}") from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(),
                                              self.cfg.timeout.total_seconds())
        except TimeoutError:
            proc.kill()
            raise SchedulerUnreachable(f"slurm: {tool} {' '.join(args[:2])} took over "
                                       f"{self.cfg.timeout}") from None
        if proc.returncode != 0:
            raise SchedulerUnreachable(f"slurm: {tool} {' '.join(args[:3])}: "
                                       f"{excerpt(err.decode(errors='replace').strip(), [])}")
        return out.decode(errors="replace")

    async def show(self, name: str) -> SlurmNode | None:
        """The node as slurmctld sees it; None when it does not know the name."""
        if not name:
            return None
        text = await self._run("sinfo", "-h", "-N", "-n", name, "-o", "%N|%T|%u|%E")
        for line in text.splitlines():
            parts = line.split("|", 3)
            if len(parts) == 4 and parts[0] == name:
                state = re.sub(r"[^a-z_]+$", "", parts[1].strip().lower())
                reason = parts[3].strip()
                return SlurmNode(name, state, "" if reason == "none" else reason,
                                 parts[2].strip())
        return None

    def ours(self, node: SlurmNode) -> bool:
        return node.reason.startswith(self.cfg.reason_prefix)

    async def drain(self, target: SchedulerNode, reason: str) -> str:
        """Mark the node DRAIN with Navarch's reason: Slurm places no new job there and
        lets the running ones finish. A drain already set by someone else is kept as it is."""
        name = self.name(target)
        node = await self.show(name)
        if node is None:
            return self._unknown(name, target)
        if node.drain_flag and not self.ours(node):
            return (f"slurm node {name} already drained by {node.user or 'someone else'}: "
                    f"{node.reason!r} (left as it is)")
        text = f"{self.cfg.reason_prefix} {reason}".strip()[:200]
        await self._run("scontrol", "update", f"nodename={name}", "state=drain",
                        f"reason={text}")
        return f"slurm node {name} draining: {text}"

    async def resume(self, target: SchedulerNode) -> str:
        name = self.name(target)
        node = await self.show(name)
        if node is None:
            return self._unknown(name, target)
        if not node.drain_flag:
            return f"slurm node {name} is {node.state}: nothing to resume"
        if not self.ours(node):
            return (f"slurm node {name} is drained by {node.user or 'someone else'} "
                    f"({node.reason!r}): not Navarch's to resume")
        await self._run("scontrol", "update", f"nodename={name}", "state=resume")
        return f"slurm node {name} resumed"

    async def jobs(self, name: str) -> list[str]:
        """Ids of the jobs placed on the node (running, completing, ...). Listed whole and
        filtered here: `squeue -w` refuses some valid names (`localhost`)."""
        text = await self._run("squeue", "-h", "-t", "all", "-o", "%i|%T|%N")
        found = []
        for line in text.splitlines():
            job, _, rest = line.strip().partition("|")
            state, _, nodes = rest.partition("|")
            if state in ("PENDING", "COMPLETED", "CANCELLED", "FAILED", "TIMEOUT",
                         "PREEMPTED", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE"):
                continue
            if name in await self._hostnames(nodes):
                found.append(job)
        return found

    async def _hostnames(self, nodes: str) -> list[str]:
        if not nodes or "[" not in nodes:
            return [n for n in nodes.split(",") if n]
        return (await self._run("scontrol", "show", "hostnames", nodes)).split()

    async def status(self, target: SchedulerNode, probe_only: bool = False) -> DrainStatus:
        name = self.name(target)
        node = await self.show(name)
        if node is None:
            return DrainStatus(drained=False, known=False, message=self._unknown(name, target))
        foreign = (f"{node.reason} (set by {node.user or 'someone else'} in slurm)"
                   if node.drain_flag and not self.ours(node) else "")
        jobs = await self.jobs(name)
        busy = node.state in _BUSY or bool(jobs)
        return DrainStatus(
            drained=not busy, remaining=len(jobs), foreign_hold=foreign,
            message=(f"slurm node {name} {node.state}, {len(jobs)} job(s) on it" if busy
                     else f"slurm node {name} {node.state}, no jobs"))

    async def force(self, target: SchedulerNode) -> ForceDrainResult:
        name = self.name(target)
        jobs = await self.jobs(name) if name else []
        if self.cfg.on_grace_end == "wait" or not jobs:
            return ForceDrainResult(action="none", count=0, detail=f"{len(jobs)} job(s) left")
        if self.cfg.on_grace_end == "requeue":
            await self._run("scontrol", "requeue", ",".join(jobs))
            return ForceDrainResult(action="requeued", count=len(jobs),
                                    detail=f"requeued job(s) {', '.join(jobs)} from {name}")
        await self._run("scancel", *jobs)
        return ForceDrainResult(action="cancelled", count=len(jobs),
                                detail=f"cancelled job(s) {', '.join(jobs)} on {name}")

    @staticmethod
    def _unknown(name: str, target: SchedulerNode) -> str:
        if not name:
            return (f"slurm: no node name for {target.node_id} yet (its agent has not "
                    "reported a hostname)")
        return f"slurm does not know node {name} (still joining, or removed from slurm.conf)"
