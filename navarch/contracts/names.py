"""Names that are stable API: task queues, workflow ids, search attributes."""

from __future__ import annotations

from temporalio.common import SearchAttributeKey

CONTROL_PLANE_TASK_QUEUE = "navarch"
NODE_TASK_QUEUE_PREFIX = "navarch-node-"


def node_task_queue(node_id: str) -> str:
    """The task queue a node's agent polls; its GPU-local activities go there."""
    return f"{NODE_TASK_QUEUE_PREFIX}{node_id}"


def pool_workflow_id(pool_name: str) -> str:
    return f"pool/{pool_name}"


def node_workflow_id(node_id: str) -> str:
    return f"node/{node_id}"


# The one orphan sweep of a namespace (OrphanSweepWorkflow).
SWEEP_WORKFLOW_ID = "orphan-sweep"


SA_POOL = SearchAttributeKey.for_keyword("NavarchPool")
SA_NODE_STATE = SearchAttributeKey.for_keyword("NavarchNodeState")
SA_HEALTH = SearchAttributeKey.for_keyword("NavarchHealth")
SA_PROVIDER = SearchAttributeKey.for_keyword("NavarchProvider")
SA_INSTANCE_TYPE = SearchAttributeKey.for_keyword("NavarchInstanceType")
SA_REGION = SearchAttributeKey.for_keyword("NavarchRegion")
# The sticky lifecycle decision (unhealthy until repaired or cleared); NavarchHealth is what
# the node's latest check says about its hardware now.
SA_VERDICT = SearchAttributeKey.for_keyword("NavarchVerdict")

SEARCH_ATTRIBUTES = (SA_POOL, SA_NODE_STATE, SA_HEALTH, SA_PROVIDER, SA_INSTANCE_TYPE, SA_REGION,
                     SA_VERDICT)


def search_attribute_flags() -> list[str]:
    """`temporal server start-dev` flags that register Navarch's search attributes at boot."""
    flags: list[str] = []
    for key in SEARCH_ATTRIBUTES:
        flags += ["--search-attribute", f"{key.name}=Keyword"]
    return flags
