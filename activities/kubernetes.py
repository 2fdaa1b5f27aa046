"""Cordon and drain through the Kubernetes API, with the official client (in-cluster
credentials, else the kubeconfig, from the control-plane worker's environment; nothing of
them enters workflow history).

A Navarch node is the Node with its `navarch.io/node-id` label, else the one whose
`spec.providerID` is its machine's. Cordon: `spec.unschedulable`, a NoSchedule taint, a
`NavarchCordoned` condition with the reason, and an annotation saying Navarch did it; only
such a cordon is lifted by Navarch. Drain: the Eviction API for the node's pods (not
DaemonSet or mirror pods), a PodDisruptionBudget's 429 waited out; drained when no
evictable pod is left. At the grace's end, the pods left are deleted (or waited for).
"""

from __future__ import annotations

import asyncio
import os
from datetime import UTC, datetime
from typing import Any

from navarch.config.schema import KubernetesNotifierConfig
from navarch.contracts.notifier import DrainStatus, ForceDrainResult, SchedulerNode
from navarch.redact import excerpt

from .notifier import SchedulerUnreachable

ANN_CORDONED = "navarch.io/cordoned-by"
ANN_REASON = "navarch.io/cordon-reason"
CONDITION = "NavarchCordoned"
MERGE = "application/merge-patch+json"
_DONE = ("Succeeded", "Failed")


class Kubernetes:
    def __init__(self, cfg: KubernetesNotifierConfig) -> None:
        self.cfg = cfg

    # ------------------------------------------------------------------ plumbing

    def _api(self) -> Any:
        from kubernetes import client, config  # the control plane's [kubernetes] extra

        # A client of its own (not the library's global default): the worker's environment
        # as it is now, in-cluster credentials first, else the kubeconfig.
        untyped: Any = config
        if os.environ.get("KUBERNETES_SERVICE_HOST"):
            configuration = client.Configuration()
            untyped.load_incluster_config(client_configuration=configuration)
            return client.CoreV1Api(client.ApiClient(configuration))
        return client.CoreV1Api(untyped.new_client_from_config(
            config_file=os.environ.get("KUBECONFIG") or None))

    async def _call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            from kubernetes.client.exceptions import ApiException
            from urllib3.exceptions import HTTPError

            try:
                return fn(self._api(), *args, **kwargs)
            except ApiException:
                raise
            except (HTTPError, OSError) as exc:
                raise SchedulerUnreachable(f"kubernetes: {excerpt(str(exc), [])}") from None
            except Exception as exc:  # no kubeconfig, a bad one
                raise SchedulerUnreachable(f"kubernetes: {type(exc).__name__}: "
                                           f"{excerpt(str(exc), [])}") from None

        try:
            return await asyncio.wait_for(asyncio.to_thread(run),
                                          4 * self.cfg.timeout.total_seconds())
        except TimeoutError:
            raise SchedulerUnreachable(f"kubernetes: no answer in {4 * self.cfg.timeout}"
                                       ) from None

    @staticmethod
    def _error(exc: Any) -> SchedulerUnreachable:
        return SchedulerUnreachable(f"kubernetes: {exc.status} {exc.reason}: "
                                    f"{excerpt(str(exc.body or ''), [])}")

    async def _node(self, target: SchedulerNode) -> Any | None:
        from kubernetes.client.exceptions import ApiException

        def find(api: Any) -> Any | None:
            found = api.list_node(label_selector=f"{self.cfg.node_label}={target.node_id}")
            if found.items:
                return found.items[0]
            wanted = target.provider_id()
            if wanted:
                return next((n for n in api.list_node().items
                             if (n.spec and n.spec.provider_id) == wanted), None)
            return None

        try:
            return await self._call(find)
        except ApiException as exc:
            raise self._error(exc) from None

    def _ours(self, node: Any) -> bool:
        return (node.metadata.annotations or {}).get(ANN_CORDONED) == "navarch"

    @staticmethod
    def _unknown(target: SchedulerNode) -> str:
        return (f"kubernetes has no Node for {target.node_id} (label or providerID "
                f"{target.provider_id() or '-'}): still joining, or removed")

    def _taints(self, node: Any, add: bool) -> list[dict[str, Any]]:
        kept = [{"key": t.key, "value": t.value, "effect": t.effect}
                for t in (node.spec.taints or []) if t.key != self.cfg.taint_key]
        if add:
            kept.append({"key": self.cfg.taint_key, "value": "true", "effect": "NoSchedule"})
        return kept

    async def _patch(self, node: Any, body: dict[str, Any], status: dict[str, Any]) -> None:
        from kubernetes.client.exceptions import ApiException

        name = node.metadata.name

        def patch(api: Any) -> None:
            api.patch_node(name, body, _content_type=MERGE)
            api.patch_node_status(name, {"status": status})

        try:
            await self._call(patch)
        except ApiException as exc:
            raise self._error(exc) from None

    # ------------------------------------------------------------------ operations

    async def drain(self, target: SchedulerNode, reason: str) -> str:
        node = await self._node(target)
        if node is None:
            return self._unknown(target)
        name = node.metadata.name
        if node.spec.unschedulable and not self._ours(node):
            return f"kubernetes node {name} was cordoned by someone else (left as it is)"
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        await self._patch(node, {
            "metadata": {"resourceVersion": node.metadata.resource_version,
                         "annotations": {ANN_CORDONED: "navarch", ANN_REASON: reason[:250]}},
            "spec": {"unschedulable": True, "taints": self._taints(node, add=True)},
        }, {"conditions": [{"type": CONDITION, "status": "True", "reason": CONDITION,
                            "message": reason[:1000], "lastTransitionTime": now}]})
        return f"kubernetes node {name} cordoned: {reason}"

    async def resume(self, target: SchedulerNode) -> str:
        node = await self._node(target)
        if node is None:
            return self._unknown(target)
        name = node.metadata.name
        if not self._ours(node):
            return (f"kubernetes node {name}: no cordon of Navarch's to lift"
                    + (" (someone else cordoned it)" if node.spec.unschedulable else ""))
        now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        await self._patch(node, {
            "metadata": {"resourceVersion": node.metadata.resource_version,
                         "annotations": {ANN_CORDONED: None, ANN_REASON: None}},
            "spec": {"unschedulable": None, "taints": self._taints(node, add=False)},
        }, {"conditions": [{"type": CONDITION, "status": "False", "reason": "Uncordoned",
                            "message": "", "lastTransitionTime": now}]})
        return f"kubernetes node {name} uncordoned"

    async def _pods(self, name: str) -> list[Any]:
        from kubernetes.client.exceptions import ApiException

        try:
            pods = await self._call(lambda api: api.list_pod_for_all_namespaces(
                field_selector=f"spec.nodeName={name}").items)
        except ApiException as exc:
            raise self._error(exc) from None
        return [p for p in pods if _evictable(p)]

    async def status(self, target: SchedulerNode, probe_only: bool = False) -> DrainStatus:
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        node = await self._node(target)
        if node is None:
            return DrainStatus(drained=False, known=False, message=self._unknown(target))
        name = node.metadata.name
        foreign = (f"kubernetes node {name} cordoned by someone else"
                   if node.spec.unschedulable and not self._ours(node) else "")
        pods = await self._pods(name)
        if probe_only:
            return DrainStatus(drained=not pods, remaining=len(pods), foreign_hold=foreign,
                               message=f"kubernetes node {name}: {len(pods)} pod(s)")
        blocked = 0
        for pod in pods:
            if pod.metadata.deletion_timestamp is not None:
                continue  # evicted, still terminating
            eviction = client.V1Eviction(metadata=client.V1ObjectMeta(
                name=pod.metadata.name, namespace=pod.metadata.namespace))
            try:
                # The answer (a Status) is not read: the client would parse it as an
                # Eviction. Refusals still raise (429, 404).
                await self._call(lambda api, p=pod, e=eviction: api.create_namespaced_pod_eviction(
                    p.metadata.name, p.metadata.namespace, e, _preload_content=False))
            except ApiException as exc:
                if exc.status == 404:
                    continue
                if exc.status == 429:  # a PodDisruptionBudget says not now: ask again later
                    blocked += 1
                    continue
                raise self._error(exc) from None
        left = await self._pods(name)
        return DrainStatus(
            drained=not left, remaining=len(left), foreign_hold=foreign,
            message=(f"kubernetes node {name}: {len(left)} pod(s) left"
                     + (f", {blocked} held by a PodDisruptionBudget" if blocked else "")
                     if left else f"kubernetes node {name}: no pods left to evict"))

    async def force(self, target: SchedulerNode) -> ForceDrainResult:
        from kubernetes.client.exceptions import ApiException

        node = await self._node(target)
        if node is None:
            return ForceDrainResult(action="none", detail=self._unknown(target))
        pods = await self._pods(node.metadata.name)
        if self.cfg.on_grace_end == "wait" or not pods:
            return ForceDrainResult(action="none", detail=f"{len(pods)} pod(s) left")
        for pod in pods:
            try:
                await self._call(lambda api, p=pod: api.delete_namespaced_pod(
                    p.metadata.name, p.metadata.namespace, _preload_content=False))
            except ApiException as exc:
                if exc.status != 404:
                    raise self._error(exc) from None
        names = ", ".join(f"{p.metadata.namespace}/{p.metadata.name}" for p in pods)
        return ForceDrainResult(action="deleted", count=len(pods),
                                detail=f"deleted pod(s) {names}")


def _evictable(pod: Any) -> bool:
    """A pod a drain must move: not finished, not a mirror pod, not a DaemonSet's."""
    if (pod.status and pod.status.phase) in _DONE:
        return False
    meta = pod.metadata
    if "kubernetes.io/config.mirror" in (meta.annotations or {}):
        return False
    return not any(o.kind == "DaemonSet" for o in (meta.owner_references or []))
