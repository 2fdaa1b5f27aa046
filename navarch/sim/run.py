"""The record of one simulator run: what happened when, what was injected, the state
timeline, the last status of each node. The runner and the chaos both write into it."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from navarch.contracts.node import NodeStatus
from navarch.sim.scenario import Scenario


@dataclass
class Run:
    scenario: Scenario
    started: float = field(default_factory=time.monotonic)
    log: list[dict[str, Any]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    injections: list[dict[str, Any]] = field(default_factory=list)
    timeline: list[dict[str, Any]] = field(default_factory=list)
    latest: dict[str, NodeStatus] = field(default_factory=dict)  # the last sample
    replacements: dict[str, str] = field(default_factory=dict)  # replacement -> replaced
    cold_starts: list[float] = field(default_factory=list)  # seconds, each machine drawn
    metrics_every: float = 0.0  # stress.metrics_interval: seconds between timeline points
    diagnoses: list[asyncio.Task[None]] = field(default_factory=list)  # run_diagnostic
    notes: list[str] = field(default_factory=list)  # said at the start, kept in the report

    def t(self) -> float:
        return round(time.monotonic() - self.started, 3)

    def record(self, counts: dict[str, int]) -> None:
        """A point on the state timeline, at most one per `metrics_every` seconds."""
        now = self.t()
        if not self.timeline or now - self.timeline[-1]["t"] >= self.metrics_every:
            self.timeline.append({"t": now, **{k: v for k, v in counts.items() if v}})
