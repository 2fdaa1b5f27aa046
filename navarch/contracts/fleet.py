"""The contract between workflows and the fleet-lookup activities of the control plane."""

from __future__ import annotations

from temporalio import activity

from navarch.contracts.base import StoredModel
from navarch.contracts.pool import PoolNode

LIST_NODES = "fleet.list_nodes"
# The same nodes with the task queue each one's agent polls: {node_id: queue}.
AGENT_QUEUES = "fleet.agent_queues"
# The same nodes as a pool records them (state, health, holds, ...), for a pool that starts
# while node workflows of its name still run: it adopts them instead of starting new ones.
LIVE_NODES = "fleet.live_nodes"


class ListNodesInput(StoredModel):
    pool: str
    state: str | None = None  # a NodeState value; None: every running node


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=LIST_NODES)
async def list_nodes(params: ListNodesInput) -> list[str]:
    """The running nodes of a pool (from visibility), optionally in one state."""
    raise NotImplementedError


@activity.defn(name=AGENT_QUEUES)
async def agent_queues(params: ListNodesInput) -> dict[str, str]:
    """The same nodes with the task queue each one's agent polls."""
    raise NotImplementedError


@activity.defn(name=LIVE_NODES)
async def live_nodes(params: ListNodesInput) -> list[PoolNode]:
    """The same nodes, each as its pool records it (from the node's own status)."""
    raise NotImplementedError
