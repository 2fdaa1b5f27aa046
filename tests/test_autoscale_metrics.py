"""The metrics activity's other sources, over real HTTP: a local server speaking
Prometheus's `/api/v1/query` and a scheduler's JSON endpoint."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from temporalio.testing import ActivityEnvironment

from navarch.activities.autoscale_metrics import AutoscaleMetricsActivities
from navarch.config.schema import QueueSource, UtilizationSource
from navarch.contracts.autoscale import MetricsRequest

from local_http import JsonHandler, LocalServer


class Endpoints(LocalServer):
    def __init__(self) -> None:
        self.series: dict[str, Any] = {}  # PromQL -> Prometheus "data"
        self.queue: Any = {"queue_depth": 42, "stats": {"pending": 7}}
        self.auth: list[str] = []
        api = self

        class Handler(JsonHandler):
            def do_GET(self) -> None:
                url = urlparse(self.path)
                api.auth.append(self.headers.get("Authorization", ""))
                if url.path == "/api/v1/query":
                    query = parse_qs(url.query)["query"][0]
                    if query not in api.series:
                        self.send_json(400, {"status": "error", "error": f"bad query {query}"})
                    else:
                        self.send_json(200, {"status": "success", "data": api.series[query]})
                elif url.path == "/queue":
                    self.send_json(200, api.queue)
                else:
                    self.send_json(404, {})

        super().__init__(Handler)


def vector(*values: float) -> dict[str, Any]:
    return {"resultType": "vector",
            "result": [{"metric": {"gpu": str(i)}, "value": [0, str(v)]}
                       for i, v in enumerate(values)]}


@pytest.fixture
def endpoints():
    with Endpoints() as server:
        yield server


async def gather(request: MetricsRequest):
    activities = AutoscaleMetricsActivities(client=None)  # type: ignore[arg-type]
    return await ActivityEnvironment().run(activities.gather_metrics, request)


async def test_prometheus_utilization_and_queue(endpoints):
    endpoints.series = {"avg(DCGM_FI_DEV_GPU_UTIL)": vector(60, 80),
                        "sum(queue_jobs)": {"resultType": "scalar", "result": [0, "31"]},
                        "sum(queue_pending)": vector(5)}
    got = await gather(MetricsRequest(
        pool="p",
        utilization=UtilizationSource(source="prometheus", url=endpoints.base_url,
                                      query="avg(DCGM_FI_DEV_GPU_UTIL)"),
        queue=QueueSource(source="prometheus", url=endpoints.base_url, query="sum(queue_jobs)",
                          pending_query="sum(queue_pending)")))
    assert (got.utilization, got.queue_depth, got.pending_jobs, got.errors) == (70.0, 31, 5, [])


async def test_http_queue_with_dotted_fields_and_header_from_env(endpoints, monkeypatch):
    monkeypatch.setenv("SCHED_TOKEN", "s3cret")
    got = await gather(MetricsRequest(pool="p", queue=QueueSource(
        source="http", url=f"{endpoints.base_url}/queue", pending_field="stats.pending",
        headers={"Authorization": "Bearer ${SCHED_TOKEN}"})))
    assert (got.queue_depth, got.pending_jobs) == (42, 7)
    assert endpoints.auth[-1] == "Bearer s3cret"


async def test_sources_that_fail_are_reported_not_raised(endpoints):
    endpoints.queue = {"queue_depth": "lots"}
    got = await gather(MetricsRequest(
        pool="p",
        utilization=UtilizationSource(source="prometheus", url=endpoints.base_url,
                                      query="nope"),
        queue=QueueSource(source="http", url=f"{endpoints.base_url}/queue")))
    assert got.utilization is None and got.queue_depth is None
    assert got.errors[0].startswith("utilization: ") and "HTTP 400" in got.errors[0]
    assert got.errors[1] == (f"queue: {endpoints.base_url}/queue: field 'queue_depth' is "
                             "'lots', not a count")
    missing = await gather(MetricsRequest(pool="p", queue=QueueSource(
        source="http", url=f"{endpoints.base_url}/queue", headers={"X": "${NOT_SET_VAR}"})))
    assert "NOT_SET_VAR" in missing.errors[0]
    dead = await gather(MetricsRequest(pool="p", queue=QueueSource(
        source="http", url="http://127.0.0.1:9/queue")))
    assert dead.errors and dead.errors[0].startswith("queue: http://127.0.0.1:9/queue:")
