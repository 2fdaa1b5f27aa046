"""The Slurm notifier against real daemons (munged, slurmctld, slurmd from Debian's
packages): Navarch drains with its own reason, waits for the jobs, requeues at the grace's
end, and never resumes or rewrites a drain it did not set."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from navarch.activities.notifier import drain_status, force_drain, notify
from navarch.config.schema import NotifierConfig, SlurmNotifierConfig
from navarch.contracts.notifier import (
    DrainStatusInput,
    ForceDrainInput,
    NotifyInput,
    SchedulerNode,
)

NODE = SchedulerNode(node_id="n-1", hostname="localhost")


def config(**kw) -> NotifierConfig:
    return NotifierConfig(type="slurm", slurm=SlurmNotifierConfig(**kw))


async def tell(cfg: NotifierConfig, event: str, reason: str = "", node=NODE) -> bool:
    return await notify(NotifyInput(notifier=cfg, event=event, node_id=node.node_id,
                                    reason=reason, timestamp=datetime.now(UTC), target=node))


async def status(cfg: NotifierConfig, node=NODE):
    return await drain_status(DrainStatusInput(notifier=cfg, node_id=node.node_id, target=node))


async def test_a_drain_waits_for_the_running_job_then_reads_drained(slurm):
    cfg = config()
    job = slurm.submit(3)
    await slurm.running(job)
    await tell(cfg, "drain", "rule xid-fatal: Xid 79")
    state, reason = slurm.state()
    assert state == "draining" and reason == "navarch: rule xid-fatal: Xid 79"
    busy = await status(cfg)
    assert not busy.drained and busy.remaining == 1 and busy.known
    for _ in range(100):
        done = await status(cfg)
        if done.drained:
            break
        await asyncio.sleep(0.2)
    assert done.drained and done.remaining == 0 and not done.foreign_hold
    assert slurm.state()[0] == "drained"
    await tell(cfg, "uncordon", "repaired")  # Navarch's own drain: resumed
    assert slurm.state()[0] == "idle"


async def test_an_administrators_drain_is_never_resumed_or_rewritten(slurm):
    cfg = config()
    slurm.run("scontrol", "update", "nodename=localhost", "state=drain", "reason=bad fan")
    await tell(cfg, "cordon", "rule xid-fatal")  # kept as the administrator set it
    await tell(cfg, "uncordon", "recovered")  # not Navarch's to resume
    assert slurm.state() == ("drained", "bad fan")
    held = await status(cfg)
    assert held.foreign_hold.startswith("bad fan (set by root")


async def test_at_the_grace_end_the_jobs_are_requeued_or_cancelled(slurm):
    cfg = config(on_grace_end="requeue")
    job = slurm.submit(60)
    await slurm.running(job)
    await tell(cfg, "drain", "operator")
    done = await force_drain(ForceDrainInput(notifier=cfg, target=NODE))
    assert (done.action, done.count) == ("requeued", 1)
    # Requeued: the job waits to run again elsewhere; the drained node takes none.
    for _ in range(100):
        if slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "PENDING":
            break
        await asyncio.sleep(0.1)
    assert slurm.run("squeue", "-h", "-j", job, "-o", "%T").strip() == "PENDING"
    assert (await status(cfg)).drained
    slurm.reset()
    cancel = config(on_grace_end="cancel")
    job = slurm.submit(60)
    await slurm.running(job)
    await tell(cancel, "drain", "operator")
    assert (await force_drain(ForceDrainInput(notifier=cancel, target=NODE))).action == \
        "cancelled"
    wait = config(on_grace_end="wait")
    assert (await force_drain(ForceDrainInput(notifier=wait, target=NODE))).action == "none"


async def test_a_node_slurm_does_not_know_is_said_plainly_and_never_drained(slurm):
    cfg = config(node_name="gpu-{{.NodeID}}")
    unknown = await status(cfg)
    assert not unknown.drained and not unknown.known
    assert "slurm does not know node gpu-n-1" in unknown.message
    nameless = await status(config(), SchedulerNode(node_id="n-2"))
    assert not nameless.known and "no node name for n-2 yet" in nameless.message


async def test_slurmctld_unreachable_is_an_error_never_drained(slurm, monkeypatch, tmp_path):
    conf = tmp_path / "slurm.conf"
    conf.write_text(slurm.conf.read_text().replace("SlurmctldPort=", "SlurmctldPort=1"))
    monkeypatch.setenv("SLURM_CONF", str(conf))
    with pytest.raises(Exception) as info:
        await status(config(timeout="5s"))
    assert type(info.value).__name__ == "SchedulerUnreachable"
