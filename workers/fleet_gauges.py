"""The fleet's gauges, exported by every control-plane worker from each pool's own state.

`navarch_pool_nodes{pool,state,health,provider}`, `navarch_pool_gpus{pool,model}` and
`navarch_pool_target{pool}` were once set in the pool's workflow code. A workflow's metric
goes out from whichever worker ran that workflow task, and a gauge keeps its last value:
with several workers sharing a fleet, each pool had one right answer (the worker that ran
its latest task) and stale ones on every other worker that had run it before, until those
restarted. Now each worker reads every running pool on its task queue through the pool's
`status` query, every `FLEET_GAUGES_SECONDS`, and exports what the pool says. Every live
worker exports the same values, so Prometheus combines them with `max by (...)` over the
labels (the Grafana dashboard does); a worker that dies takes its series with it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.common import MetricMeter
from temporalio.runtime import Runtime

from navarch.contracts.pool import PoolStatus
from navarch.workflows.metrics import GaugeFamily, Labels

log = logging.getLogger(__name__)

FLEET_GAUGES_SECONDS = 10.0
QUERY_TIMEOUT = timedelta(seconds=5)


def pool_gauges(status: PoolStatus) -> dict[str, dict[Labels, float]]:
    """The gauge families' values for one pool, from its status (pure)."""
    nodes: dict[Labels, float] = {}
    for n in status.nodes:
        if n.state.is_terminal():
            continue
        key = (("pool", status.name), ("state", n.state.value), ("health", n.health.value),
               ("provider", n.provider or "-"))
        nodes[key] = nodes.get(key, 0) + 1
    return {
        "navarch_pool_nodes": nodes,
        "navarch_pool_gpus": {(("pool", status.name), ("model", model)): float(count)
                              for model, count in status.gpus.items()},
        "navarch_pool_target": {(("pool", status.name),): float(status.target)},
    }


class FleetGauges:
    def __init__(self, client: Client, task_queue: str, *,
                 every: float = FLEET_GAUGES_SECONDS) -> None:
        self.client, self.task_queue, self.every = client, task_queue, every
        self._last: dict[str, dict[str, dict[Labels, float]]] = {}
        runtime = client.service_client.config.runtime or Runtime.default()
        meter: MetricMeter = runtime.metric_meter
        self.families = {
            name: GaugeFamily(name, description, lambda: meter)
            for name, description in (
                ("navarch_pool_nodes", "nodes by state, health, provider"),
                ("navarch_pool_gpus", "GPUs of live nodes by model"),
                ("navarch_pool_target", "the pool's target size"))}

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:  # the next round tries again; say why once per round
                log.warning("fleet gauges not refreshed: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    async def refresh(self) -> None:
        """Read every running pool on this worker's queue and export what it says. A pool
        that does not answer this round keeps its last values; one no longer running drops
        to 0."""
        ids = [w.id async for w in self.client.list_workflows(
            f'WorkflowType="PoolWorkflow" AND ExecutionStatus="Running" AND '
            f'TaskQueue="{self.task_queue}"')]
        answers = await asyncio.gather(*(self._status(i) for i in ids))
        last, self._last = self._last, {}
        merged: dict[str, dict[Labels, float]] = {name: {} for name in self.families}
        for workflow_id, status in zip(ids, answers, strict=True):
            gauges = pool_gauges(status) if status is not None else last.get(workflow_id)
            if gauges is None:
                continue
            self._last[workflow_id] = gauges
            for name, values in gauges.items():
                merged[name].update(values)
        for name, family in self.families.items():
            family.update(merged[name])

    async def _status(self, workflow_id: str) -> PoolStatus | None:
        try:
            status: PoolStatus = await self.client.get_workflow_handle(workflow_id).query(
                "status", result_type=PoolStatus, rpc_timeout=QUERY_TIMEOUT)
        except Exception:
            return None
        return status
