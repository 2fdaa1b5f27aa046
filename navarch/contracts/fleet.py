"""The contract between workflows and the fleet-lookup activities of the control plane."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

LIST_NODES = "fleet.list_nodes"
# The same nodes with the task queue each one's agent polls: {node_id: queue}.
AGENT_QUEUES = "fleet.agent_queues"


class ListNodesInput(BaseModel):
    model_config = ConfigDict(extra="ignore")

    pool: str
    state: str | None = None  # a NodeState value; None: every running node
