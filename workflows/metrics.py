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
| `pool_nodes`, `pool_gpus`, `pool_target` | gauge | see `navarch.workers.fleet_gauges` |
| `autoscaler_decisions` | counter | pool, autoscaler, direction |
| `orphan_instances` | gauge | provider, region (from the one orphan sweep) |
| `orphans_terminated` | counter | provider, region |
| `scheduler_errors` | counter | notifier, kind (unreachable, node_unknown, notify) |
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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


Labels = tuple[tuple[str, str], ...]


class GaugeFamily:
    """A family of gauges set as a whole: label sets missing from the latest values drop to
    0 instead of keeping their last value (a metric meter cannot remove a series). Workflow
    code sets them through the workflow's meter (`gauge_set`); the worker's fleet gauges
    through the runtime's."""

    def __init__(self, name: str, description: str, meter: Callable[[], MetricMeter]) -> None:
        self.name, self.description, self._meter = name, description, meter
        self._seen: set[Labels] = set()

    def update(self, values: Mapping[Labels, float]) -> None:
        gauge = self._meter().create_gauge_float(self.name, self.description)
        for key in self._seen - set(values):
            gauge.set(0, dict(key))
        for key, value in values.items():
            gauge.set(value, dict(key))
        self._seen = set(values)


def gauge_set(name: str, description: str = "") -> GaugeFamily:
    """Gauges a workflow sets as a whole (vanished label sets drop to 0)."""
    return GaugeFamily(PREFIX + name, description, _meter)
