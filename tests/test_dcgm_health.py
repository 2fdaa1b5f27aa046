"""DCGM's passive health check as an event source, with a scripted `dcgmi`."""

from __future__ import annotations

import json
import stat

from navarch.agent.dcgm_health import DcgmHealthWatcher, parse_health
from navarch.health.events import EventType
from navarch.health.policy import builtin_policy

REPORT = {"body": {
    "Overall Health": {"value": "Failure"},
    "GPU ID: 0": {"children": {"Overall Health": {"value": "Healthy"}}},
    "GPU ID: 2": {"children": {
        "PCIe system": {"health": "Warning", "message": "PCIe replay rate is high"},
        "Memory system": {"health": "Failure", "message": "A DBE has occurred on GPU 2"},
        "NVLink": {"health": "Healthy"},
    }},
}}


def test_incidents_become_events_with_dcgm_watch_names():
    events = parse_health(REPORT)
    assert [(e.event_type, e.system, e.gpu_index, e.metrics["dcgm_health"]) for e in events] == [
        (EventType.PCIE, "DCGM_HEALTH_WATCH_PCIE", 2, "warning"),
        (EventType.MEMORY, "DCGM_HEALTH_WATCH_MEM", 2, "failure"),
    ]
    assert events[1].message == "A DBE has occurred on GPU 2"
    verdicts = [builtin_policy("default").evaluate_event(e) for e in events]
    assert [(v.rule, v.result.value) for v in verdicts] == [
        ("interconnect-or-power", "degraded"), ("dcgm-failure", "unhealthy")]
    go = [builtin_policy("go-default").evaluate_event(e).rule for e in events]
    assert go == ["pcie-error", "default"]  # the Go rules key memory on ecc_dbe_count


def test_entity_list_layout_and_garbage():
    doc = {"incidents": [{"entity_id": 5, "system": "NVLink", "health": "Fail",
                          "error": "link 3 down"}]}
    (event,) = parse_health(doc)
    assert (event.event_type, event.gpu_index, event.message) == (EventType.NVLINK, 5,
                                                                   "link 3 down")
    assert parse_health({"nothing": ["here", 1, None]}) == []
    assert parse_health("not even a dict") == []


def test_watcher_runs_dcgmi_and_keeps_latest_incidents(tmp_path):
    out = tmp_path / "out.json"
    out.write_text(json.dumps(REPORT))
    calls = tmp_path / "calls"
    script = tmp_path / "dcgmi"
    script.write_text(f'#!/bin/sh\necho "$@" >> {calls}\ncat {out}\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    watcher = DcgmHealthWatcher(str(script), every=3600)
    watcher.check_once()
    assert len(watcher.events) == 2
    out.write_text("Error: host engine not running")
    watcher.check_once()
    assert len(watcher.events) == 2 and "unreadable" in watcher.last_error
    assert calls.read_text().splitlines() == ["health -g 0 -c -j", "health -g 0 -c -j"]


def test_nvml_backend_includes_dcgm_incidents(tmp_path):
    from navarch.agent.nvml_backend import NvmlBackend

    from fake_pynvml import FakeGpu, FakeNvml

    watcher = DcgmHealthWatcher("/nonexistent/dcgmi", every=3600)
    watcher.events = parse_health(REPORT)
    backend = NvmlBackend(FakeNvml([FakeGpu()]), watch_events=False, dcgm=watcher)
    systems = [e.system for e in backend.current_events() if e.system]
    assert systems == ["DCGM_HEALTH_WATCH_PCIE", "DCGM_HEALTH_WATCH_MEM"]
