"""On a real NVIDIA GPU: NVML inventory and telemetry, the CUDA memory check, and
watch_health judging real GPUs. Skipped where no GPU answers NVML."""

from __future__ import annotations

import pytest
from temporalio.testing import ActivityEnvironment

from navarch.agent.activities import AgentActivities
from navarch.agent.cuda_check import memory_check
from navarch.contracts.agent import BootCheckInput, WatchHealthInput
from navarch.health.events import HealthResult
from navarch.health.policy import builtin_policy

pytestmark = pytest.mark.gpu


@pytest.fixture(scope="module")
def nvml_backend():
    from navarch.agent.nvml_backend import NvmlBackend, NvmlUnavailable

    try:
        backend = NvmlBackend()
    except NvmlUnavailable as exc:
        pytest.skip(f"no GPU here: {exc}")
    if not backend.gpus:
        pytest.skip("NVML answers but sees no GPU")
    yield backend
    backend.close()


def test_inventory_and_telemetry(nvml_backend):
    inv = nvml_backend.inventory()
    print("GPUs:", [(g.index, g.name, g.pci_bus_id, g.memory_total_mib) for g in inv.gpus],
          "driver", inv.driver_version, "cuda", inv.cuda_driver_version)
    assert inv.gpus and all(g.uuid.startswith("GPU-") for g in inv.gpus)
    samples = nvml_backend.sample()
    print("samples:", [s.model_dump() for s in samples])
    assert all(s.temperature_c is not None and 0 < s.temperature_c < 120 for s in samples)
    events = nvml_backend.current_events()
    print("events:", [(e.event_type.value, e.gpu_index, e.metrics) for e in events])
    verdict = builtin_policy("default").evaluate(events)
    print("policy:", verdict.result.value, verdict.rule)


def test_cuda_memory_check_on_each_gpu(nvml_backend):
    for gpu in nvml_backend.gpus:
        result = memory_check(gpu.index, gpu.info.pci_bus_id)
        print(result)
        assert result.status == "pass", result.detail


async def test_boot_check_and_watch_health_on_real_gpus(nvml_backend):
    agent = AgentActivities(nvml_backend)
    env = ActivityEnvironment()
    boot = await env.run(agent.boot_check, BootCheckInput(
        node_id="gpu-test", expected_gpu_count=len(nvml_backend.gpus)))
    print("boot checks:", [(c.name, c.status, c.detail) for c in boot.checks])
    assert boot.passed
    # Told the node was unhealthy, watch_health answers at once with what it sees now.
    result = await env.run(agent.watch_health, WatchHealthInput(
        node_id="gpu-test", policy=builtin_policy("default").source,
        last_health=HealthResult.UNHEALTHY))
    print("watch_health:", result.health.value, result.rule, result.summary)
    assert result.health in (HealthResult.HEALTHY, HealthResult.DEGRADED)


def test_the_reset_paths_preconditions_on_a_real_gpu_touch_nothing(nvml_backend):
    """The reset's checks (the processes on each GPU, vGPU mode, an NVSwitch fabric, root,
    nvidia-smi) on real hardware. Only the plan is made: nothing is reset (the machine may
    be shared)."""
    from navarch.agent import host_repair

    before = [g.info.uuid for g in nvml_backend.gpus]
    fabric = host_repair.on_fabric(nvml_backend.nvml, [g.handle for g in nvml_backend.gpus])
    plan = nvml_backend.reset_plan([0])
    print("fabric:", fabric, "root:", host_repair.is_root(), "plan:", plan,
          "processes:", nvml_backend.compute_processes(), "boot id:", nvml_backend.boot_id())
    assert nvml_backend.boot_id() == nvml_backend.inventory().boot_id != ""
    if plan.refusal:
        assert not plan.gpus
    else:  # it could run: one GPU, or every GPU of a fabric machine, and no process on them
        assert plan.gpus == ([0] if not fabric else list(range(len(before))))
        busy = {p.gpu_index for p in nvml_backend.compute_processes()}
        assert not busy & set(plan.gpus)
    assert [g.info.uuid for g in nvml_backend.gpus] == before  # nothing was touched
