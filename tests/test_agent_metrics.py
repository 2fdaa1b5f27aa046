from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.agent.metrics import AgentCollector
from navarch.health.events import HealthResult
from navarch.sim.fakeworld import FakeWorld


def scrape(agent: AgentActivities) -> str:
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent, "n1"))
    return generate_latest(registry).decode()


def test_gpu_gauges_use_dcgm_exporter_names_and_health_per_gpu(tmp_path):
    world = FakeWorld(tmp_path / "w.db")
    world.inject("n1", "temperature", gpu_index=1, value=91)
    world.inject("n1", "xid", gpu_index=1, value=79)
    world.add_process("n1", 7, gpu_index=0)
    agent = AgentActivities(FakeGpuBackend(world, "n1", 2, "H100"))
    agent.gpu_health = {1: HealthResult.UNHEALTHY}
    text = scrape(agent)
    assert 'DCGM_FI_DEV_GPU_TEMP{Hostname=' in text
    assert 'gpu="1"' in text and 'modelName="NVIDIA H100 (simulated)"' in text
    lines = {line.split("{")[0] + "/" + line.split('gpu="')[1][0]: line.rsplit(" ", 1)[1]
             for line in text.splitlines() if 'gpu="' in line and not line.startswith("#")}
    assert lines["DCGM_FI_DEV_GPU_TEMP/1"] == "91.0"
    assert lines["DCGM_FI_DEV_GPU_UTIL/0"] == "90.0"
    assert lines["DCGM_FI_DEV_XID_ERRORS/1"] == "79.0"
    assert lines["navarch_gpu_health/1"] == "2.0" and lines["navarch_gpu_health/0"] == "0.0"
    assert 'navarch_agent_backend_up{backend="fake",node_id="n1"} 1.0' in text


def test_backend_down_is_reported_not_raised(tmp_path):
    world = FakeWorld(tmp_path / "w.db")
    world.inject("n1", "nvml_failure")
    text = scrape(AgentActivities(FakeGpuBackend(world, "n1", 2, "H100")))
    assert 'navarch_agent_backend_up{backend="fake",node_id="n1"} 0.0' in text
    assert "DCGM_FI_DEV_GPU_TEMP{" not in text
