"""DCGM's passive health checks (`dcgmi health --check`) as a health-event source.

When `dcgmi` is installed, the agent turns on all health watches for the default GPU group
once, then checks every minute in a background thread. Each incident DCGM reports (a
Warning or a Failure of a subsystem: PCIe, NVLink, memory, thermal, power, InfoROM,
driver, SM, PMU, MCU, NVSwitch) becomes an event with `system` set to the DCGM watch name
and `metrics.dcgm_health` = "warning" | "failure". The JSON is read tolerantly: DCGM
releases lay it out differently, so any object carrying a health verdict counts.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from typing import Any

from navarch.health.events import EventType, HealthEvent

log = logging.getLogger(__name__)

CHECK_SECONDS = 60.0
_BAD = {"warning": "warning", "warn": "warning", "failure": "failure", "fail": "failure"}
_GPU_KEY = re.compile(r"gpu\s*(?:id)?\s*:?\s*(\d+)", re.IGNORECASE)
# DCGM subsystem (as the report names it) -> (watch name, event type)
_SYSTEMS: dict[str, tuple[str, EventType]] = {
    "pcie": ("DCGM_HEALTH_WATCH_PCIE", EventType.PCIE),
    "nvlink": ("DCGM_HEALTH_WATCH_NVLINK", EventType.NVLINK),
    "memory": ("DCGM_HEALTH_WATCH_MEM", EventType.MEMORY),
    "mem": ("DCGM_HEALTH_WATCH_MEM", EventType.MEMORY),
    "thermal": ("DCGM_HEALTH_WATCH_THERMAL", EventType.THERMAL),
    "power": ("DCGM_HEALTH_WATCH_POWER", EventType.POWER),
    "inforom": ("DCGM_HEALTH_WATCH_INFOROM", EventType.DRIVER_ERROR),
    "driver": ("DCGM_HEALTH_WATCH_DRIVER", EventType.DRIVER_ERROR),
    "sm": ("DCGM_HEALTH_WATCH_SM", EventType.DRIVER_ERROR),
    "pmu": ("DCGM_HEALTH_WATCH_PMU", EventType.DRIVER_ERROR),
    "mcu": ("DCGM_HEALTH_WATCH_MCU", EventType.DRIVER_ERROR),
    "nvswitch": ("DCGM_HEALTH_WATCH_NVSWITCH_FATAL", EventType.SXID),
}


def parse_health(doc: Any) -> list[HealthEvent]:
    """Incidents in a `dcgmi health --check -j` document."""
    return list(_walk(doc, gpu=-1, system=""))


def _verdict(node: dict[str, Any]) -> str | None:
    for key in ("health", "Health", "status", "Status", "overall_health", "value"):
        value = node.get(key)
        if isinstance(value, str) and value.strip().lower() in _BAD:
            return _BAD[value.strip().lower()]
    return None


def _system_of(text: str) -> tuple[str, EventType] | None:
    lowered = text.lower().replace(" ", "")
    for name, mapped in _SYSTEMS.items():
        if name in lowered:
            return mapped
    return None


def _walk(node: Any, gpu: int, system: str) -> Iterator[HealthEvent]:
    if isinstance(node, dict):
        for key in ("gpu_id", "entity_id", "gpuId"):
            if isinstance(node.get(key), int):
                gpu = node[key]
        named = node.get("system") or node.get("System") or node.get("name") or ""
        if isinstance(named, str) and _system_of(named):
            system = named
        verdict = _verdict(node)
        mapped = _system_of(system) if system else None
        if verdict and mapped:
            message = next((str(node[k]) for k in ("message", "error", "info", "details")
                            if node.get(k)), f"DCGM {system}: {verdict}")
            yield HealthEvent(event_type=mapped[1], system=mapped[0], gpu_index=gpu,
                              metrics={"dcgm_health": verdict}, message=message)
        for key, value in node.items():
            match = _GPU_KEY.search(str(key))
            child_gpu = int(match.group(1)) if match else gpu
            child_system = str(key) if _system_of(str(key)) else system
            yield from _walk(value, child_gpu, child_system)
    elif isinstance(node, list):
        for item in node:
            yield from _walk(item, gpu, system)


class DcgmHealthWatcher:
    """Runs `dcgmi health --check` periodically; `events` holds the latest incidents."""

    def __init__(self, dcgmi: str, *, every: float = CHECK_SECONDS, group: str = "0") -> None:
        self.dcgmi = dcgmi
        self.every = every
        self.group = group
        self.events: list[HealthEvent] = []
        self.last_error = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dcgm-health", daemon=True)

    @classmethod
    def if_installed(cls, **kwargs: Any) -> DcgmHealthWatcher | None:
        path = shutil.which("dcgmi")
        return cls(path, **kwargs) if path else None

    def start(self) -> DcgmHealthWatcher:
        self._call("health", "-g", self.group, "-s", "a")  # watch every subsystem
        self._thread.start()
        return self

    def _call(self, *args: str) -> str | None:
        try:
            proc = subprocess.run([self.dcgmi, *args], capture_output=True, text=True,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired) as exc:
            self.last_error = str(exc)
            return None
        if proc.returncode != 0 and "{" not in proc.stdout:
            self.last_error = (proc.stderr or proc.stdout).strip()[:200]
            return None
        return proc.stdout

    def check_once(self) -> None:
        out = self._call("health", "-g", self.group, "-c", "-j")
        if out is None:
            return
        try:
            doc = json.loads(out[out.find("{"): out.rfind("}") + 1])
        except (json.JSONDecodeError, ValueError):
            self.last_error = f"unreadable dcgmi health output: {out[:200]!r}"
            return
        self.events = parse_health(doc)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.check_once()
            self._stop.wait(self.every)

    def stop(self) -> None:
        self._stop.set()
