"""The autoscaler's metrics, gathered once per evaluation; only the aggregate goes back to
the pool's history.

- Utilization from the agents: every running node of the pool (visibility query), and for
  each the heartbeat details of its `watch_health` activity (the summary the agent beats:
  GPU utilization and its GPU process count). Details are as fresh as the last heartbeat
  the SDK sent (at most every 0.8 x the heartbeat timeout).
- Or from Prometheus: `GET <url>/api/v1/query?query=...`, the mean of the vector.
- Queue depth from an HTTP URL answering JSON, or from Prometheus. (A scheduler that
  pushes uses the pool's `report_queue_depth` signal instead; nothing is fetched.)

A source that does not answer is reported in `errors`; the pool keeps its size for what
that source decides.
"""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from temporalio import activity
from temporalio.client import Client
from temporalio.exceptions import ApplicationError

from navarch.config.schema import QueueSource, UtilizationSource
from navarch.contracts import agent as agent_api
from navarch.contracts.agent import HealthSummary
from navarch.contracts.autoscale import (
    GATHER_METRICS,
    MAX_IDLE_REPORTED,
    MetricsRequest,
    PoolMetrics,
)
from navarch.contracts.names import SA_POOL, node_workflow_id

from .notifier import expand_headers

HTTP_TIMEOUT = 10.0
DESCRIBE_CONCURRENCY = 32


class SourceError(Exception):
    pass


def _get_json(url: str, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT) as resp:
            return json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        raise SourceError(f"{url}: HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise SourceError(f"{url}: {exc}") from None


def prometheus_value(base_url: str, query: str) -> float | None:
    """The mean of a PromQL instant query (vector or scalar); None when it is empty."""
    url = f"{base_url.rstrip('/')}/api/v1/query?{urllib.parse.urlencode({'query': query})}"
    answer = _get_json(url)
    if not isinstance(answer, dict) or answer.get("status") != "success":
        said = answer.get("error") if isinstance(answer, dict) else answer
        raise SourceError(f"prometheus: {said}")
    data = answer.get("data") or {}
    kind, result = data.get("resultType"), data.get("result") or []
    try:
        if kind == "scalar":
            return float(result[1])
        if kind == "vector":
            values = [float(sample["value"][1]) for sample in result]
            return sum(values) / len(values) if values else None
    except (TypeError, ValueError, IndexError, KeyError):
        pass
    raise SourceError(f"prometheus: cannot read a {kind} result for {query!r}")


def _field(payload: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(payload, dict):
            return None
        payload = payload.get(part)
    return payload


def queue_from_http(source: QueueSource) -> tuple[int, int | None]:
    assert source.url is not None
    payload = _get_json(source.url, expand_headers(source.headers))
    depth, pending = _field(payload, source.depth_field), _field(payload, source.pending_field)
    if not isinstance(depth, int | float) or isinstance(depth, bool) or depth < 0:
        raise SourceError(f"{source.url}: field {source.depth_field!r} is {depth!r}, not a "
                          "count")
    ok = isinstance(pending, int | float) and not isinstance(pending, bool) and pending >= 0
    return int(depth), int(pending) if ok else None


async def _node_summary(client: Client, node_id: str) -> HealthSummary | None:
    try:
        desc = await client.get_workflow_handle(node_workflow_id(node_id)).describe()
    except Exception:  # the node ended meanwhile
        return None
    for pending in desc.raw_description.pending_activities:
        if pending.activity_type.name != agent_api.WATCH_HEALTH:
            continue
        if not pending.heartbeat_details.payloads:
            return None
        try:
            decoded = await client.data_converter.decode(
                pending.heartbeat_details.payloads, [HealthSummary])
        except Exception:
            return None
        summary = decoded[0] if decoded else None
        return summary if isinstance(summary, HealthSummary) else None
    return None


async def utilization_from_agents(client: Client, pool: str) -> PoolMetrics:
    query = (f'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running" '
             f'AND {SA_POOL.name}="{pool}"')
    node_ids = [wf.id.removeprefix("node/") async for wf in client.list_workflows(query)]
    gate = asyncio.Semaphore(DESCRIBE_CONCURRENCY)

    async def one(node_id: str) -> tuple[str, HealthSummary | None]:
        async with gate:
            return node_id, await _node_summary(client, node_id)

    values: list[float] = []
    out = PoolMetrics()
    for node_id, summary in await asyncio.gather(*(one(n) for n in node_ids)):
        if summary is None:
            continue
        readings = [g.utilization_pct for g in summary.gpus if g.utilization_pct is not None]
        if not readings:
            continue
        out.nodes += 1
        values.extend(readings)
        if summary.processes == 0 and len(out.idle_nodes) < MAX_IDLE_REPORTED:
            out.idle_nodes.append(node_id)
    out.gpus = len(values)
    out.utilization = round(sum(values) / len(values), 2) if values else None
    out.idle_nodes.sort()
    return out


class AutoscaleMetricsActivities:
    def __init__(self, client: Client) -> None:
        self._client = client

    @activity.defn(name=GATHER_METRICS)
    async def gather_metrics(self, request: MetricsRequest) -> PoolMetrics:
        out = PoolMetrics()
        util: UtilizationSource | None = request.utilization
        if util is not None and util.source == "agents":
            out = await utilization_from_agents(self._client, request.pool)
        elif util is not None:
            assert util.url is not None and util.query is not None
            try:
                value = await asyncio.to_thread(prometheus_value, util.url, util.query)
                out.utilization = round(value, 2) if value is not None else None
            except SourceError as exc:
                out.errors.append(f"utilization: {exc}")
        queue = request.queue
        try:
            if queue is not None and queue.source == "http":
                out.queue_depth, out.pending_jobs = await asyncio.to_thread(queue_from_http,
                                                                            queue)
            elif queue is not None and queue.source == "prometheus":
                assert queue.url is not None and queue.query is not None
                depth = await asyncio.to_thread(prometheus_value, queue.url, queue.query)
                out.queue_depth = int(depth) if depth is not None else None
                if queue.pending_query:
                    pending = await asyncio.to_thread(prometheus_value, queue.url,
                                                      queue.pending_query)
                    out.pending_jobs = int(pending) if pending is not None else None
        except (SourceError, ApplicationError) as exc:  # incl. a header's unset ${VAR}
            out.errors.append(f"queue: {exc}")
        return out

    def activities(self) -> list[Any]:
        return [self.gather_metrics]
