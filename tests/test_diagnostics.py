"""Active diagnostics with scripted stand-ins for dcgmi, gpu_burn and all_reduce_perf on PATH:
a missing tool is skipped (never a pass), a failure is a health event the policy judges."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.contracts.agent import DiagnosticInput, WatchHealthInput
from navarch.health.events import HealthResult
from navarch.health.policy import builtin_policy
from navarch.sim.fakeworld import FakeWorld

from diag_outputs import DIAG_FAIL, DIAG_PASS


@pytest.fixture
def agent(tmp_path):
    return AgentActivities(FakeGpuBackend(FakeWorld(tmp_path / "w.db"), "n1", 8, "H100"))


async def run(agent, **kw):
    return await ActivityEnvironment().run(agent.run_diagnostic,
                                           DiagnosticInput(node_id="n1", **kw))


async def test_missing_tools_are_skipped_never_passed(tools, agent):
    for kind in ("dcgm", "gpu_burn", "nccl"):
        result = await run(agent, kind=kind)
        assert result.status == "skipped" and "not installed" in result.detail
    assert (await run(agent, kind="dcgm")).detail == "skipped: DCGM not installed (no dcgmi)"


async def test_dcgm_failure_becomes_an_unhealthy_event(tools, agent):
    tools("dcgmi", json.dumps(DIAG_FAIL), rc=226)
    result = await run(agent, kind="dcgm", level=2)
    assert result.status == "fail"
    assert "Memory (GPU 3): Memory errors detected" in result.detail
    assert result.metrics == {"diag_pass": 2, "diag_fail": 1, "diag_skip": 0, "diag_warn": 0}
    watch = await ActivityEnvironment().run(agent.watch_health, WatchHealthInput(
        node_id="n1", policy=builtin_policy("default").source,
        check_interval=timedelta(milliseconds=100)))
    assert watch.health is HealthResult.UNHEALTHY and watch.rule == "diagnostic-failed"


async def test_dcgm_pass_and_garbage(tools, agent):
    tools("dcgmi", "Error: unable to connect to host engine\n", rc=255)
    bad = await run(agent, kind="dcgm")
    assert bad.status == "fail" and "unable to connect" in bad.detail
    tools("dcgmi", json.dumps(DIAG_PASS))
    ok = await run(agent, kind="dcgm", level=1)
    assert ok.status == "pass" and ok.detail == "dcgmi diag -r 1: 1 passed, 1 skipped, 0 warnings"


async def test_gpu_burn_and_nccl(tools, agent):
    tools("gpu_burn", "100.0%  proc'd: 1000 (5000 Gflop/s)\nTested 8 GPUs:\n  GPU 0: OK\n"
                      "  GPU 1: FAULTY\n")
    burn = await run(agent, kind="gpu_burn", seconds=5)
    assert burn.status == "fail" and "GPU 1: FAULTY" in burn.detail
    tools("all_reduce_perf", "#  Out of bounds values : 0 OK\n# Avg bus bandwidth    : 152.4 \n")
    slow = await run(agent, kind="nccl", min_bus_gbps=300)
    assert slow.status == "fail" and slow.metrics == {"bus_bandwidth_gbps": 152.4}
    fast = await run(agent, kind="nccl", min_bus_gbps=100)
    assert fast.status == "pass"


async def test_simulated_hosts_answer_from_their_faults(tmp_path):
    """Where the world simulates diagnostics (the simulator), no tool runs: each kind fails
    on the faults its tests would find — an Xid only if the catalog calls it unhealthy."""
    world = FakeWorld(tmp_path / "w.db")
    world.simulate_diagnostics()
    agent = AgentActivities(FakeGpuBackend(world, "n1", 8, "H100"))
    assert (await run(agent, kind="dcgm")).detail == \
        "dcgmi diag -r 2 (simulated): all 8 GPUs passed"
    world.inject("n1", "xid", gpu_index=1, value=13)  # an application's fault, not the GPU's
    world.inject("n1", "temperature", gpu_index=2, value=80)
    world.inject("n1", "nvlink", gpu_index=3, value=2)
    assert (await run(agent, kind="gpu_burn")).status == "pass"
    nccl = await run(agent, kind="nccl")
    assert (nccl.status, nccl.detail) == ("fail", "all_reduce_perf (simulated): GPU 3 nvlink 2")
    world.inject("n1", "xid", gpu_index=4, value=79)
    world.inject("n1", "temperature", gpu_index=5, value=95)
    burn = await run(agent, kind="gpu_burn")
    assert burn.detail == "gpu_burn (simulated): GPU 4 xid 79; GPU 5 temperature 95"
    assert burn.metrics == {"simulated": True, "failed_gpus": 2}
    world.simulate_diagnostics(False)  # back to the real tools
    assert not world.diagnostics_simulated()
