"""Fleet lookups for workflows: which nodes a pool has, from Temporal's visibility store
(the search attributes every node keeps current)."""

from __future__ import annotations

import re

from temporalio import activity
from temporalio.exceptions import ApplicationError

from navarch.fleet_api import LIST_NODES, ListNodesInput
from navarch.ids import SA_NODE_STATE, SA_POOL

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")


@activity.defn(name=LIST_NODES)
async def list_nodes(params: ListNodesInput) -> list[str]:
    """Node ids of the pool's running node workflows (in a given state, if asked)."""
    for value in (params.pool, params.state):
        if value is not None and not _SAFE.match(value):
            raise ApplicationError(f"not a pool or state name: {value!r}",
                                   type="InvalidRequestError", non_retryable=True)
    query = (f'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running" '
             f'AND {SA_POOL.name}="{params.pool}"')
    if params.state:
        query += f' AND {SA_NODE_STATE.name}="{params.state}"'
    return sorted([wf.id.removeprefix("node/")
                   async for wf in activity.client().list_workflows(query)])
