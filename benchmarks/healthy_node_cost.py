"""What a healthy node costs in Temporal, measured from a run (not estimated): history
events and billable actions per node-day, counting the activity heartbeats that reach the
server (read from the dev server's own metrics), with the pool's production defaults
(heartbeat_timeout 90 s; the agent beats every timeout/3 and the SDK throttles what it
forwards).

    python benchmarks/healthy_node_cost.py [--nodes 20] [--seconds 300] [--heartbeat-timeout 90]
"""

from __future__ import annotations

import argparse
import asyncio
import urllib.request
from collections import Counter
from datetime import timedelta

from harness import Fleet, fleet, pool_spec, report, run_and_exit, until

from navarch.config.schema import DEFAULT_HEALTH_CHECK_INTERVAL
from navarch.contracts.names import node_workflow_id
from navarch.temporal.devserver import free_port

DAY = 86400.0
# History events that Temporal Cloud bills as actions (the ones a healthy node can produce).
BILLED = {"EVENT_TYPE_ACTIVITY_TASK_SCHEDULED", "EVENT_TYPE_TIMER_STARTED",
          "EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED",
          "EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED",
          "EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES", "EVENT_TYPE_MARKER_RECORDED"}



def heartbeat_rpcs(port: int) -> dict[str, float]:
    """RecordActivityTaskHeartbeat requests by the server service that counted them (the dev
    server runs frontend and history in one process; each may count the same call)."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10).read().decode()
    by_service: dict[str, float] = {}
    for line in text.splitlines():
        if (line.startswith("service_requests{")
                and 'operation="RecordActivityTaskHeartbeat"' in line):
            service = line.split('service_name="', 1)[1].split('"', 1)[0]
            by_service[service] = by_service.get(service, 0.0) + float(line.rsplit(" ", 1)[1])
    return by_service


async def events(f: Fleet, node_ids: list[str]) -> Counter[str]:
    from temporalio.api.enums.v1 import EventType

    counts: Counter[str] = Counter()
    for node_id in node_ids:
        history = await f.client.get_workflow_handle(node_workflow_id(node_id)).fetch_history()
        for event in history.events:
            counts[EventType.Name(event.event_type)] += 1
    return counts


async def main(nodes: int, seconds: float, heartbeat_timeout: float) -> None:
    port = free_port()
    async with fleet(metrics_port=port) as f:
        # The pool's production defaults, not the harness's fast ones.
        spec = pool_spec(nodes, heartbeat_timeout=timedelta(seconds=heartbeat_timeout),
                         health_check_interval=DEFAULT_HEALTH_CHECK_INTERVAL)
        await f.start_pool(spec)
        status = await until(lambda: f.pool(spec.name), lambda s: s.ready == nodes, within=300)
        node_ids = [n.node_id for n in status.nodes]
        await asyncio.sleep(10)  # past start-up
        before, hb_before = await events(f, node_ids), heartbeat_rpcs(port)
        await asyncio.sleep(seconds)
        after, hb_after = await events(f, node_ids), heartbeat_rpcs(port)
        still = await f.pool(spec.name)
    scale = DAY / seconds / nodes
    delta = after - before
    history = sum(delta.values()) * scale
    billed = sum(v for k, v in delta.items() if k in BILLED) * scale
    # The client-facing count: what the frontend received (billing counts those).
    heartbeats = (hb_after.get("frontend", 0.0) - hb_before.get("frontend", 0.0)) * scale
    per_service = {k: round((v - hb_before.get(k, 0.0)) * scale, 1) for k, v in hb_after.items()}
    figures = {
        "nodes": nodes, "window_s": seconds, "heartbeat_timeout_s":
            spec.heartbeat_timeout.total_seconds(), "all_ready_at_end": still.ready == nodes,
        "history_events_per_node_day": round(history, 1),
        "history_events_by_type_in_window": dict(delta),
        "heartbeats_reaching_server_per_node_day": round(heartbeats, 1),
        "heartbeat_requests_per_node_day_by_server_service": per_service,
        "billable_actions_per_node_day": round(billed + heartbeats, 1),
    }
    report("healthy_node_cost", figures)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=300)
    parser.add_argument("--heartbeat-timeout", type=float, default=90.0,
                        help="the pool's heartbeat_timeout in seconds (default: the pool "
                             "default, 90)")
    args = parser.parse_args()
    run_and_exit(main(args.nodes, args.seconds, args.heartbeat_timeout))
