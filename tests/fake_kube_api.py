"""A local HTTP server speaking the part of the Kubernetes API that Navarch's notifier uses:
nodes (list by label, get, JSON merge patch with resourceVersion checks, status patch
merging conditions by type), pods (list by spec.nodeName), the Eviction subresource (429
while a PodDisruptionBudget allows no disruption) and pod deletion. No API server binary can
be installed on these machines; the official client talks to this one."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from local_http import JsonHandler, LocalServer


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: maps merge, null deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merge_patch(out.get(key), value)
    return out


class FakeKubeApi(LocalServer):
    def __init__(self) -> None:
        self.nodes: dict[str, dict[str, Any]] = {}
        self.pods: dict[tuple[str, str], dict[str, Any]] = {}  # (namespace, name)
        self.pdb_blocks: dict[tuple[str, str], int] = {}  # evictions refused, per pod
        self.evictions: list[tuple[str, str]] = []
        self.deleted: list[tuple[str, str]] = []
        self.down = False  # answer 503 to everything (the API server unreachable)
        self._versions = itertools.count(1)
        api = self

        class Handler(JsonHandler):
            def _status(self, code: int, reason: str, message: str) -> None:
                self.send_json(code, {"kind": "Status", "apiVersion": "v1",
                                      "status": "Failure", "reason": reason,
                                      "message": message, "code": code})

            def _route(self) -> tuple[list[str], dict[str, list[str]]] | None:
                if api.down:
                    self._status(503, "ServiceUnavailable", "the API server is down")
                    return None
                url = urlparse(self.path)
                return [p for p in url.path.split("/") if p], parse_qs(url.query)

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, query = routed
                if parts == ["api", "v1", "nodes"]:
                    wanted = query.get("labelSelector", [""])[0]
                    key, _, value = wanted.partition("=")
                    items = [n for n in api.nodes.values() if not wanted
                             or n["metadata"].get("labels", {}).get(key) == value]
                    self.send_json(200, {"kind": "NodeList", "apiVersion": "v1",
                                         "metadata": {}, "items": items})
                elif parts[:3] == ["api", "v1", "nodes"] and len(parts) == 4:
                    node = api.nodes.get(parts[3])
                    if node is None:
                        self._status(404, "NotFound", f"nodes {parts[3]!r} not found")
                    else:
                        self.send_json(200, node)
                elif parts == ["api", "v1", "pods"]:
                    field = query.get("fieldSelector", [""])[0].removeprefix("spec.nodeName=")
                    items = [p for p in api.pods.values() if p["spec"].get("nodeName") == field]
                    api._finish_terminating()
                    self.send_json(200, {"kind": "PodList", "apiVersion": "v1",
                                         "metadata": {}, "items": items})
                else:
                    self._status(404, "NotFound", self.path)

            def do_PATCH(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, _ = routed
                body = self.read_json()
                if parts[:3] != ["api", "v1", "nodes"] or parts[3] not in api.nodes:
                    self._status(404, "NotFound", self.path)
                    return
                node = api.nodes[parts[3]]
                if len(parts) == 5 and parts[4] == "status":
                    conditions = {c["type"]: c for c in node["status"].get("conditions", [])}
                    for c in body.get("status", {}).get("conditions", []):
                        conditions[c["type"]] = {**conditions.get(c["type"], {}), **c}
                    node["status"]["conditions"] = list(conditions.values())
                    self.send_json(200, node)
                    return
                if self.headers.get("Content-Type") != "application/merge-patch+json":
                    self._status(415, "UnsupportedMediaType", "this server takes merge patches")
                    return
                wanted = body.get("metadata", {}).get("resourceVersion")
                if wanted and wanted != node["metadata"]["resourceVersion"]:
                    self._status(409, "Conflict", "the object has been modified")
                    return
                body.get("metadata", {}).pop("resourceVersion", None)
                merged = merge_patch(node, body)
                merged["metadata"]["resourceVersion"] = str(next(api._versions))
                api.nodes[parts[3]] = merged
                self.send_json(200, merged)

            def do_POST(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, _ = routed
                if len(parts) == 7 and parts[2] == "namespaces" and parts[6] == "eviction":
                    key = (parts[3], parts[5])
                    pod = api.pods.get(key)
                    if pod is None:
                        self._status(404, "NotFound", f"pods {parts[5]!r} not found")
                    elif api.pdb_blocks.get(key, 0) > 0:
                        api.pdb_blocks[key] -= 1
                        self._status(429, "TooManyRequests", "Cannot evict pod as it would "
                                     "violate the pod's disruption budget.")
                    else:
                        api.evictions.append(key)
                        pod["metadata"]["deletionTimestamp"] = datetime.now(UTC).isoformat()
                        self.send_json(201, {"kind": "Status", "status": "Success"})
                else:
                    self._status(404, "NotFound", self.path)

            def do_DELETE(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                parts, _ = routed
                key = (parts[3], parts[5]) if len(parts) == 6 else ("", "")
                if api.pods.pop(key, None) is None:
                    self._status(404, "NotFound", self.path)
                else:
                    api.deleted.append(key)
                    self.send_json(200, {"kind": "Status", "status": "Success"})

        super().__init__(Handler)

    def _finish_terminating(self) -> None:
        """Pods evicted before this listing are gone by the next one."""
        for key, pod in list(self.pods.items()):
            if pod["metadata"].get("deletionTimestamp") and pod.get("_listed_terminating"):
                del self.pods[key]
            elif pod["metadata"].get("deletionTimestamp"):
                pod["_listed_terminating"] = True

    def add_node(self, name: str, *, node_id: str = "", provider_id: str = "",
                 unschedulable: bool = False) -> None:
        labels = {"kubernetes.io/hostname": name}
        if node_id:
            labels["navarch.io/node-id"] = node_id
        self.nodes[name] = {
            "kind": "Node", "apiVersion": "v1",
            "metadata": {"name": name, "labels": labels, "annotations": {},
                         "resourceVersion": str(next(self._versions))},
            "spec": {"providerID": provider_id, "unschedulable": unschedulable,
                     **({} if not unschedulable else {"taints": [
                         {"key": "node.kubernetes.io/unschedulable",
                          "effect": "NoSchedule"}]})},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]},
        }

    def add_pod(self, namespace: str, name: str, node: str, *, owner: str = "ReplicaSet",
                mirror: bool = False, phase: str = "Running") -> None:
        self.pods[(namespace, name)] = {
            "kind": "Pod", "apiVersion": "v1",
            "metadata": {"name": name, "namespace": namespace,
                         "annotations": {"kubernetes.io/config.mirror": "x"} if mirror else {},
                         "ownerReferences": [{"apiVersion": "apps/v1", "kind": owner,
                                              "name": f"{name}-owner", "uid": name}]},
            "spec": {"nodeName": node, "containers": [{"name": "c", "image": "busybox"}]},
            "status": {"phase": phase},
        }

    def kubeconfig(self, folder: Path) -> Path:
        path = folder / "kubeconfig"
        path.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: local, cluster: {{server: "{self.base_url}"}}}}]
users: [{{name: navarch, user: {{token: not-a-real-token}}}}]
contexts: [{{name: local, context: {{cluster: local, user: navarch}}}}]
current-context: local
""")
        return path
