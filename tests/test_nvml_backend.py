"""The NVML backend against a scripted pynvml: every telemetry path, unsupported queries,
lost GPUs, NVML Xid events, and the kernel-log Xids mapped by PCI bus id."""

from __future__ import annotations

import time

import pytest

from navarch.agent.nvml_backend import NvmlBackend, NvmlUnavailable
from navarch.health.events import EventType
from navarch.health.kernel_log import parse_line
from navarch.health.policy import builtin_policy

from fake_pynvml import FakeGpu, FakeNvml, NVMLError_GpuIsLost, NVMLError_Unknown


def backend(gpus, **kw):
    return NvmlBackend(FakeNvml(gpus), **kw)


def by_type(events, kind):
    return [e for e in events if e.event_type is kind]


def test_inventory_names_uuids_pci_ids_and_driver():
    b = backend([FakeGpu(), FakeGpu()], watch_events=False)
    inv = b.inventory()
    assert [g.index for g in inv.gpus] == [0, 1]
    assert inv.gpus[1].pci_bus_id == "0000:19:00.0"
    assert inv.gpus[0].name == "NVIDIA H100 80GB HBM3" and inv.gpus[0].memory_total_mib == 81559
    assert (inv.driver_version, inv.cuda_driver_version, inv.backend) == ("550.54.15", "12.4", "nvml")


def test_missing_library_is_a_clear_error():
    with pytest.raises(NvmlUnavailable, match="NVML did not initialise"):
        NvmlBackend(FakeNvml([], library_missing=True))


def test_healthy_gpus_give_thermal_readings_the_policy_calls_healthy():
    b = backend([FakeGpu(temperature=55)] * 2, watch_events=False)
    events = b.current_events()
    assert [e.metrics for e in events] == [{"temperature": 55}, {"temperature": 55}]
    assert builtin_policy("default").evaluate(events).result.value == "healthy"


def test_telemetry_becomes_events_the_default_policy_judges():
    gpus = [
        FakeGpu(temperature=97),
        FakeGpu(ecc_uncorrected=2, ecc_corrected=150),
        FakeGpu(remapped=(0, 1, 0, 1), pages_pending=1),
        FakeGpu(throttle=0x80 | 0x4),
        FakeGpu(recovery_action=2),
    ]
    b = backend(gpus, watch_events=False)
    events = b.current_events()
    thermal = by_type(events, EventType.THERMAL)
    assert thermal[0].metrics == {"temperature": 97} and thermal[0].gpu_index == 0
    assert by_type(events, EventType.ECC_DBE)[0].metrics == {"ecc_dbe_count": 2,
                                                             "ecc_dbe_aggregate": 6}
    assert by_type(events, EventType.ECC_SBE)[0].metrics == {"ecc_sbe_count": 150}
    memory = by_type(events, EventType.MEMORY)
    assert memory[0].metrics["row_remap_failure"] is True
    assert memory[1].metrics == {"retired_pages_pending": True}
    power = by_type(events, EventType.POWER)[0]
    assert power.metrics == {"hw_power_brake": True, "sw_power_cap": True,
                             "power_draw_w": 120.0, "power_limit_w": 700.0}
    recovery = by_type(events, EventType.DRIVER_ERROR)[0]
    assert recovery.gpu_index == 4 and "Node Reboot Required" in recovery.message
    verdicts = {v.rule for v in builtin_policy("default").evaluate(events).events}
    assert {"thermal-critical", "ecc-uncorrectable", "row-remap-failed",
            "interconnect-or-power", "gpu-lost"} <= verdicts


@pytest.mark.parametrize(("reasons", "fault"), [
    (0x0, False),
    (0x1, False),  # gpu_idle
    (0x2, False),  # applications clocks setting
    (0x4, False),  # sw_power_cap: a busy GPU at its limit
    (0x1 | 0x2 | 0x4, False),
    (0x8, True),  # hw_slowdown
    (0x80, True),  # hw_power_brake
    (0x8 | 0x4, True),  # a hardware slowdown, with the cap noted beside it
])
def test_routine_throttle_reasons_under_load_are_not_faults(reasons, fault):
    b = backend([FakeGpu(temperature=60, throttle=reasons)], watch_events=False)
    power = by_type(b.current_events(), EventType.POWER)
    assert bool(power) is fault
    if power:
        assert power[0].metrics.get("sw_power_cap", False) is bool(reasons & 0x4)


def test_nvlink_and_pcie_counters_report_growth_since_start_and_links_down():
    gpu = FakeGpu(nvlink_states=[1, 1, 1, 1], nvlink_errors=5, pcie_replays=3)
    b = backend([gpu], watch_events=False)
    assert by_type(b.current_events(), EventType.NVLINK) == []
    gpu.nvlink_errors, gpu.pcie_replays, gpu.nvlink_states = 9, 10, [1, 0, 1, 1]
    events = b.current_events()
    assert by_type(events, EventType.NVLINK)[0].metrics == {"nvlink_replay_errors": 4,
                                                            "links_down": 1}
    assert by_type(events, EventType.PCIE)[0].metrics == {"pcie_replay_count": 7}


def test_unsupported_queries_are_skipped():
    gpu = FakeGpu(unsupported={"nvmlDeviceGetTemperature", "nvmlDeviceGetTotalEccErrors",
                               "nvmlDeviceGetRemappedRows", "nvmlDeviceGetFieldValues",
                               "nvmlDeviceGetPcieReplayCounter"})
    b = backend([gpu], watch_events=False)
    assert b.current_events() == []
    sample = b.sample()[0]
    assert sample.temperature_c is None
    assert (sample.power_w, sample.sm_clock_mhz) == (120.0, 1980.0)


@pytest.mark.parametrize("error", [NVMLError_GpuIsLost("GPU is lost"),
                                   NVMLError_Unknown("Unknown Error")])
def test_a_gpu_that_stops_answering_is_an_unhealthy_event(error):
    gpus = [FakeGpu(), FakeGpu()]
    b = backend(gpus, watch_events=False)
    gpus[1].broken = error
    events = b.current_events()
    lost = by_type(events, EventType.DRIVER_ERROR)
    assert len(lost) == 1 and lost[0].gpu_index == 1 and str(error) in lost[0].message
    assert builtin_policy("default").evaluate(events).result.value == "unhealthy"


def test_nvml_xid_events_arrive_through_the_event_thread():
    nvml = FakeNvml([FakeGpu(), FakeGpu(), FakeGpu(unsupported={"events"})])
    b = NvmlBackend(nvml)
    try:
        assert nvml.registered == [0, 1]
        nvml.xid(1, 79)
        deadline = time.monotonic() + 3
        while not by_type(b.current_events(), EventType.XID) and time.monotonic() < deadline:
            time.sleep(0.02)
        xids = by_type(b.current_events(), EventType.XID)
        assert xids[0].metrics == {"xid_code": 79} and xids[0].gpu_index == 1
        assert xids[0].gpu_uuid == nvml.gpus[1].uuid
    finally:
        b.close()
    assert nvml.shutdown


def test_one_shot_events_expire_after_the_window():
    now = [1000.0]
    b = backend([FakeGpu()], watch_events=False, recent_window=60, clock=lambda: now[0])
    line = parse_line("[ 9.1] NVRM: Xid (PCI:0000:18:00): 13, pid=7, name=a, Graphics Exception")
    assert line is not None
    b.record_kernel_event(line)
    xids = by_type(b.current_events(), EventType.XID)
    assert xids[0].gpu_index == 0 and xids[0].metrics["xid_code"] == 13
    now[0] += 61
    assert by_type(b.current_events(), EventType.XID) == []


def test_compute_processes():
    b = backend([FakeGpu(processes=[4242]), FakeGpu()], watch_events=False)
    procs = b.compute_processes()
    assert [(p.gpu_index, p.pid) for p in procs] == [(0, 4242)]


def test_a_reset_is_planned_from_the_gpus_processes_and_closes_nvml_around_the_command(
        monkeypatch):
    """The NVML backend's reset: refused while a process holds the GPU (nothing run); else
    NVML's session is closed, `nvidia-smi --gpu-reset -i N` runs, NVML is opened again, and
    the GPU's one-shot events are forgotten."""
    from navarch.agent import host_repair
    from navarch.health.events import HealthEvent

    b = backend([FakeGpu(processes=[77]), FakeGpu()], watch_events=False)
    monkeypatch.setattr("navarch.agent.nvml_backend.shutil.which", lambda _: "/usr/bin/nvidia-smi")
    monkeypatch.setattr(host_repair, "is_root", lambda: True)
    monkeypatch.setattr(host_repair, "on_fabric", lambda *_: False)
    ran: list[list[str]] = []

    def run_reset(plan):
        ran.extend(host_repair.reset_argv(plan))
        return True, "ok"

    monkeypatch.setattr(host_repair, "run_reset", run_reset)
    refused = b.reset_gpus([0])
    assert (refused.outcome, refused.detail) == ("refused",
                                                 "processes still hold the GPU: GPU 0: pid 77")
    assert ran == []
    b.record(HealthEvent(event_type=EventType.XID, gpu_index=1, metrics={"xid_code": 119}))
    b.record(HealthEvent(event_type=EventType.XID, gpu_index=0, metrics={"xid_code": 13}))
    done = b.reset_gpus([1])
    assert (done.outcome, done.gpus) == ("reset", [1])
    assert ran == [["nvidia-smi", "--gpu-reset", "-i", "1"]]
    assert [e.gpu_index for e in b.current_events() if e.event_type is EventType.XID] == [0]
    assert b.inventory().gpus[1].uuid  # NVML answers again after the reset
