"""A local HTTP server speaking the part of the Compute Engine REST API (v1) that Navarch
uses: instances insert/get/delete/aggregatedList, zone operations, machine types and
accelerator types (per zone and aggregated, with `name eq "regex"` filters), with faults
(zone exhausted, quota) reported the way GCE reports them, on the operation."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlparse

from local_http import JsonHandler, LocalServer

_PATH = re.compile(r"^/compute/v1/projects/(?P<project>[^/]+)/(?P<rest>.*)$")
_CATALOG_KEYS = {"machineTypes": "machine_types", "acceleratorTypes": "accelerator_types"}


def _machine(name: str, cpus: int, memory_mb: int, gpu: str | None = None,
             count: int = 0) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "guestCpus": cpus, "memoryMb": memory_mb}
    if gpu:
        entry["accelerators"] = [{"guestAcceleratorType": gpu,
                                  "guestAcceleratorCount": count}]
    return entry


DEFAULT_MACHINE_TYPES = {
    "us-central1-a": [_machine("a3-highgpu-8g", 208, 1916928, "nvidia-h100-80gb", 8),
                      _machine("g2-standard-4", 4, 16384, "nvidia-l4", 1),
                      _machine("n1-standard-8", 8, 30720)],
    "us-central1-b": [_machine("a3-highgpu-8g", 208, 1916928, "nvidia-h100-80gb", 8)],
}
DEFAULT_ACCELERATOR_TYPES = {
    "us-central1-a": [{"name": "nvidia-tesla-t4", "maximumCardsPerInstance": 4},
                      {"name": "nvidia-h100-80gb", "maximumCardsPerInstance": 8}],
    "us-central1-b": [{"name": "nvidia-tesla-t4", "maximumCardsPerInstance": 4}],
}


def _name_filter(query: dict[str, list[str]]) -> re.Pattern[str] | None:
    m = re.fullmatch(r'name eq "(.*)"', query.get("filter", [""])[0])
    return re.compile(m.group(1)) if m else None


class FakeGceApi(LocalServer):
    def __init__(self) -> None:
        self.instances: dict[tuple[str, str], dict[str, Any]] = {}  # (zone, name)
        self.operations: dict[str, dict[str, Any]] = {}
        self.by_request_id: dict[str, str] = {}
        self.fail_next: list[str] = []  # operation error codes for the next inserts
        # Inserts that make the machine and then answer 503, as a call lost after the cloud
        # acted: the caller never hears of the machine it made.
        self.lose_answers = 0
        self.resets: list[tuple[str, str]] = []
        self.inserts = 0
        self.machine_types = {z: list(v) for z, v in DEFAULT_MACHINE_TYPES.items()}
        self.accelerator_types = {z: list(v) for z, v in DEFAULT_ACCELERATOR_TYPES.items()}
        self.catalog_requests: list[str] = []
        self._ops = itertools.count(1)
        api = self

        class Handler(JsonHandler):
            def _error(self, status: int, reason: str, message: str) -> None:
                self.send_json(status, {"error": {"code": status, "message": message,
                                              "errors": [{"reason": reason,
                                                          "message": message}]}})

            def _route(self) -> tuple[str, list[str], dict[str, list[str]]] | None:
                url = urlparse(self.path)
                m = _PATH.match(url.path)
                if m is None:
                    self._error(404, "notFound", url.path)
                    return None
                return m.group("project"), m.group("rest").split("/"), parse_qs(url.query)

            def do_GET(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                _, parts, query = routed
                catalog = (parts[1] if parts[:1] == ["aggregated"] and len(parts) == 2
                           else parts[2] if len(parts) == 3 else "")
                if catalog in _CATALOG_KEYS:
                    api.catalog_requests.append(self.path)
                    table: dict[str, list[dict[str, Any]]] = getattr(api,
                                                                    _CATALOG_KEYS[catalog])
                    wanted = _name_filter(query)
                    pick = [i for i in table.get(parts[1], []) if not wanted
                            or wanted.fullmatch(i["name"])] if len(parts) == 3 else []
                    if len(parts) == 3:
                        self.send_json(200, {"items": pick})
                    else:
                        self.send_json(200, {"items": {
                            f"zones/{zone}": {catalog: [i for i in items if not wanted
                                                        or wanted.fullmatch(i["name"])]}
                            for zone, items in table.items()}})
                elif parts[:1] == ["aggregated"]:
                    want = re.findall(r'labels\.([\w-]+)\s*=\s*"?([\w-]+)"?',
                                      query.get("filter", [""])[0])
                    items: dict[str, Any] = {}
                    for (zone, _), inst in api.instances.items():
                        if all(inst.get("labels", {}).get(k) == v for k, v in want):
                            items.setdefault(f"zones/{zone}", {"instances": []})["instances"]\
                                .append(inst)
                    self.send_json(200, {"items": items})
                elif len(parts) == 4 and parts[0] == "zones" and parts[2] == "instances":
                    found = api.instances.get((parts[1], parts[3]))
                    if found is None:
                        self._error(404, "notFound", f"instance {parts[3]} not found")
                    else:
                        self.send_json(200, found)
                elif len(parts) == 4 and parts[2] == "operations":
                    self.send_json(200, api.operations[parts[3]])
                else:
                    self._error(404, "notFound", self.path)

            def do_POST(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                _, parts, query = routed
                body = self.read_json()
                if len(parts) == 3 and parts[2] == "instances":
                    zone = parts[1]
                    request_id = query.get("requestId", [""])[0]
                    if request_id in api.by_request_id:
                        self.send_json(200, api.operations[api.by_request_id[request_id]])
                        return
                    if (zone, body["name"]) in api.instances:
                        self._error(409, "alreadyExists", f"{body['name']} already exists")
                        return
                    api.inserts += 1
                    op = api._operation(zone, "insert")
                    if api.fail_next:
                        code = api.fail_next.pop(0)
                        op["error"] = {"errors": [{"code": code,
                                                   "message": f"{code} in {zone}"}]}
                    else:
                        api.instances[(zone, body["name"])] = {
                            **body, "status": "RUNNING", "zone": f"zones/{zone}",
                            "creationTimestamp": datetime.now(UTC).isoformat(),
                            "networkInterfaces": [{"networkIP": "10.128.0.2",
                                                   "accessConfigs": [{"natIP": "34.1.2.3"}]}],
                        }
                    api.by_request_id[request_id] = op["name"]
                    if api.lose_answers and not op.get("error"):
                        api.lose_answers -= 1
                        self._error(503, "backendError", "the answer was lost")
                        return
                    self.send_json(200, op)
                elif len(parts) == 5 and parts[2] == "instances" and parts[4] == "reset":
                    if (parts[1], parts[3]) not in api.instances:
                        self._error(404, "notFound", f"instance {parts[3]} not found")
                        return
                    api.resets.append((parts[1], parts[3]))
                    self.send_json(200, api._operation(parts[1], "reset"))
                elif len(parts) == 5 and parts[2] == "operations" and parts[4] == "wait":
                    self.send_json(200, api.operations[parts[3]])
                else:
                    self._error(404, "notFound", self.path)

            def do_DELETE(self) -> None:
                routed = self._route()
                if routed is None:
                    return
                _, parts, _ = routed
                key = (parts[1], parts[3])
                if key not in api.instances:
                    self._error(404, "notFound", f"instance {parts[3]} not found")
                    return
                del api.instances[key]
                self.send_json(200, api._operation(parts[1], "delete"))

        super().__init__(Handler)
        self.url = self.base_url

    def _operation(self, zone: str, kind: str) -> dict[str, Any]:
        name = f"operation-{next(self._ops)}"
        op = {"kind": "compute#operation", "name": name, "status": "DONE",
              "operationType": kind, "zone": f"zones/{zone}"}
        self.operations[name] = op
        return op

