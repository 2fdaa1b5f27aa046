"""Fleet metrics emitted by the workflows through the Temporal SDK's metric meter, so they
reach whatever the worker's runtime exports (`navarch-worker --metrics-port`: Prometheus,
next to the SDK's own metrics). The SDK does not emit during replay, so a metric counts
what happened once, however often a history is replayed.

Names and labels (all `navarch_`):

| metric | kind | labels |
|---|---|---|
| `node_transitions` | counter | pool, to_state, reason |
| `provisioning_seconds` | histogram | provider, instance_type |
| `capacity_errors` | counter | provider, zone |
| `fault_to_cordon_seconds` | histogram | pool |
| `fault_to_terminate_seconds` | histogram | pool |
| `fault_to_replacement_ready_seconds` | histogram | pool |
| `pool_nodes` | gauge | pool, state, health, provider |
| `pool_gpus` | gauge | pool, model |
| `pool_target` | gauge | pool |
| `autoscaler_decisions` | counter | pool, autoscaler, direction |
| `orphan_instances` | gauge | provider, region (from the one orphan sweep) |
| `orphans_terminated` | counter | provider, region |
| `scheduler_errors` | counter | notifier, kind (unreachable, node_unknown, notify) |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta

from temporalio import workflow
from temporalio.common import MetricMeter

PREFIX = "navarch_"


def _meter() -> MetricMeter:
    return workflow.metric_meter()


def count(name: str, labels: Mapping[str, str], description: str = "") -> None:
    _meter().create_counter(PREFIX + name, description).add(1, dict(labels))


def observe_seconds(name: str, value: timedelta, labels: Mapping[str, str],
                    description: str = "") -> None:
    seconds = max(0.0, value.total_seconds())
    _meter().create_histogram_float(PREFIX + name, description, "s").record(seconds,
                                                                           dict(labels))


def set_gauge(name: str, value: float, labels: Mapping[str, str], description: str = "") -> None:
    _meter().create_gauge_float(PREFIX + name, description).set(value, dict(labels))


class GaugeSet:
    """A family of gauges a workflow sets as a whole: label sets that disappear drop to 0
    instead of keeping their last value."""

    def __init__(self, name: str, description: str = "") -> None:
        self.name, self.description = name, description
        self._seen: set[tuple[tuple[str, str], ...]] = set()

    def update(self, values: Mapping[tuple[tuple[str, str], ...], float]) -> None:
        for key in self._seen - set(values):
            set_gauge(self.name, 0, dict(key), self.description)
        for key, value in values.items():
            set_gauge(self.name, value, dict(key), self.description)
        self._seen = set(values)
