"""The orphan sweep's one activity: list what Navarch made at one provider and region, and
compare it with the live node workflows, both ways.

Cheap in the common case: one cloud listing and one visibility listing per target. Only
the exceptions are checked strongly, one workflow at a time: a machine whose node does not
show as running (describe: visibility may lag), several machines tagged with one node id,
and a running node none of whose machines is listed (the cloud is asked about its
instance directly, in its own region, before it is called gone).
"""

from __future__ import annotations

import re
from collections import Counter

from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from navarch.contracts.cloud import CloudErrorType, Instance, InstanceState
from navarch.contracts.names import SA_REGION, node_workflow_id
from navarch.contracts.node import NodeState, NodeStatus
from navarch.contracts.sweep import (
    RECONCILE,
    GoneMachine,
    Orphan,
    ReconcileRequest,
    ReconcileResult,
)

from .cloud import CloudActivities, CloudProvider, ProviderError, to_application_error

_SAFE = re.compile(r"^[A-Za-z0-9_.-]+$")
_GONE = (InstanceState.TERMINATED, InstanceState.STOPPING)
# A node in these states has no machine to lose, or is already letting it go.
_NOT_WATCHED = {NodeState.PROVISIONING, NodeState.TERMINATING, NodeState.TERMINATED,
                NodeState.FAILED}


class SweepActivities:
    def __init__(self, cloud: CloudActivities) -> None:
        self._cloud = cloud

    @activity.defn(name=RECONCILE)
    async def reconcile(self, request: ReconcileRequest) -> ReconcileResult:
        target = request.target
        if not _SAFE.match(target.provider.name):
            raise ApplicationError(f"not a provider name: {target.provider.name!r}",
                                   type=CloudErrorType.INVALID_REQUEST.value,
                                   non_retryable=True)
        provider = self._cloud.provider(target.provider)
        cluster = await self._cloud.cluster_id(request.cluster_id)
        try:
            listed = await provider.list_managed(target.region)
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        client = activity.client()
        live = await _running_nodes(client, target.provider.name)
        result = ReconcileResult(target=target.key(), cluster_id=cluster, listed=len(listed))
        per_node = Counter(i.node_id for i in listed if i.node_id)
        for inst in listed:
            if inst.cluster != cluster:
                result.others += 1
                continue
            if inst.node_id in live and per_node[inst.node_id] == 1:
                result.owned += 1  # the fast path: one machine, its node running
                continue
            why = await _why_unowned(client, inst)
            if why is None:
                result.owned += 1
            else:
                result.orphans.append(_orphan(inst, why))
            activity.heartbeat(inst.instance_id)
        seen = set(per_node)
        for node_id, region in sorted(live.items()):
            if node_id in seen or (target.region and region and region != target.region):
                continue
            gone = await _gone(client, node_id, provider, target.provider.name)
            if gone is not None:
                result.gone.append(gone)
            activity.heartbeat(node_id)
        return result



async def _gone(client: Client, node_id: str, provider: CloudProvider,
                provider_name: str) -> GoneMachine | None:
    """Whether the cloud still runs this node's machine, asked where it lives. None when it
    does, when the node has no machine (yet) or is leaving, and whenever the answer is
    unsure: an error never reads as gone."""
    try:
        st = await client.get_workflow_handle(node_workflow_id(node_id)).query(
            "status", result_type=NodeStatus)
    except Exception:
        return None
    if st.state in _NOT_WATCHED or not st.instance_id:
        return None
    try:
        inst = await provider.get(st.instance_id, st.region or None)
    except ProviderError as exc:
        activity.logger.info("%s: could not look up %s: %s", node_id, st.instance_id, exc)
        return None
    if inst is not None and inst.state not in _GONE:
        return None
    return GoneMachine(node_id=node_id, instance_id=st.instance_id, provider=provider_name,
                       region=st.region, state=inst.state.value if inst else "absent")


async def _running_nodes(client: Client, provider: str) -> dict[str, str]:
    """Running node workflows on this provider, from visibility: {node id: region}."""
    query = (f'WorkflowType="NodeWorkflow" AND ExecutionStatus="Running" '
             f'AND NavarchProvider="{provider}"')
    found: dict[str, str] = {}
    async for wf in client.list_workflows(query):
        found[wf.id.removeprefix("node/")] = wf.typed_search_attributes.get(SA_REGION) or ""
    return found


async def _why_unowned(client: Client, inst: Instance) -> str | None:
    """Why no live node owns this machine; None when one does (or may: a running node
    that does not answer keeps its machine)."""
    if not inst.node_id:
        return "it has no node-id tag"
    handle = client.get_workflow_handle(node_workflow_id(inst.node_id))
    try:
        described = await handle.describe()
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            return f"no workflow node/{inst.node_id} exists"
        raise
    if described.status != WorkflowExecutionStatus.RUNNING:
        status = described.status.name.lower() if described.status else "closed"
        return f"node/{inst.node_id} has ended ({status})"
    try:
        st = await handle.query("status", result_type=NodeStatus)
    except Exception:
        return None
    if not st.instance_id or st.instance_id == inst.instance_id:
        return None
    return f"node/{inst.node_id} runs {st.instance_id}, not this machine"


def _orphan(inst: Instance, why: str) -> Orphan:
    return Orphan(provider=inst.provider, region=inst.region, zone=inst.zone,
                  instance_id=inst.instance_id, node_id=inst.node_id, pool=inst.pool,
                  state=inst.state.value, created_at=inst.created_at, why=why)
