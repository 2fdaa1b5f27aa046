"""Fleet lookups for workflows: which nodes a pool has, from Temporal's visibility store
(the search attributes every node keeps current)."""

from __future__ import annotations

import re

from temporalio import activity
from temporalio.exceptions import ApplicationError

from navarch.contracts.fleet import AGENT_QUEUES, LIST_NODES, LIVE_NODES, ListNodesInput
from navarch.contracts.names import SA_NODE_STATE, SA_POOL, node_task_queue, node_workflow_id
from navarch.contracts.node import NodeStatus
from navarch.contracts.pool import PoolNode

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@activity.defn(name=LIST_NODES)
async def list_nodes(params: ListNodesInput) -> list[str]:
    """Node ids of the pool's running node workflows (in a given state, if asked)."""
    _check(params)
    query = (f'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running" '
             f'AND {SA_POOL.name}="{params.pool}"')
    if params.state:
        query += f' AND {SA_NODE_STATE.name}="{params.state}"'
    return sorted([wf.id.removeprefix("node/")
                   async for wf in activity.client().list_workflows(query)])


@activity.defn(name=AGENT_QUEUES)
async def agent_queues(params: ListNodesInput) -> dict[str, str]:
    """The nodes `list_nodes` finds, each with the task queue its agent polls (from the
    node's own record: simulated hosts may share a queue)."""
    queues: dict[str, str] = {}
    client = activity.client()
    for node_id in await list_nodes(params):
        try:
            status = await client.get_workflow_handle(node_workflow_id(node_id)).query(
                "status", result_type=NodeStatus)
            queues[node_id] = status.agent_queue()
        except Exception:  # gone since the listing, or not answering: its own queue
            queues[node_id] = node_task_queue(node_id)
    return queues


@activity.defn(name=LIVE_NODES)
async def live_nodes(params: ListNodesInput) -> list[PoolNode]:
    """The pool's running nodes as a pool records them, from each node's `status`. A node
    that does not answer (ended since the listing) is left out: its workflow is gone."""
    client = activity.client()
    found: list[PoolNode] = []
    for node_id in await list_nodes(params):
        try:
            st = await client.get_workflow_handle(node_workflow_id(node_id)).query(
                "status", result_type=NodeStatus)
        except Exception as exc:
            activity.logger.info("node %s not adopted: %s", node_id, exc)
            continue
        if st.state.is_terminal() or not st.transitions:
            continue
        first, last = st.transitions[0], st.transitions[-1]
        found.append(PoolNode(
            node_id=st.node_id, state=st.state, health=st.health, reason=last.reason,
            provider=st.provider, region=st.region, since=last.at, created_at=first.at,
            awaiting_repair=st.awaiting_repair, cordon_source=st.cordon_source(),
            holds=st.owners(), verdict=st.verdict, replacement_of=st.replacement_of,
            seq=st.report_seq))
        activity.heartbeat(len(found))
    return found


def _check(params: ListNodesInput) -> None:
    for value in (params.pool, params.state):
        if value is not None and not _SAFE.match(value):
            raise ApplicationError(f"not a pool or state name: {value!r}",
                                   type="InvalidRequestError", non_retryable=True)
