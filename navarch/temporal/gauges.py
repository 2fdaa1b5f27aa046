"""A family of gauges set as a whole: label sets missing from the latest values drop to 0
instead of keeping their last value (a metric meter cannot remove a series). Used by
workflow code (through the workflow's meter) and by the worker's fleet gauges."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from temporalio.common import MetricMeter

Labels = tuple[tuple[str, str], ...]


class GaugeFamily:
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
