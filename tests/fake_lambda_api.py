"""A local HTTP server speaking the part of Lambda Cloud's API v1 that Navarch uses, with
faults: insufficient capacity, rate limiting, a bad API key."""

from __future__ import annotations

import itertools
from typing import Any

from local_http import JsonHandler, LocalServer

API_KEY = "secret_lambda_key"


class FakeLambdaApi(LocalServer):
    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.launches = 0
        self.fail_next: list[tuple[int, str]] = []  # (http status, error code) for launches
        self.seen_auth: list[str] = []
        self.last_launch: dict[str, Any] = {}
        self.capacity_regions = ["us-west-2"]
        self.lose_answers = 0  # launches that make the machine and then answer 503
        self.restarts: list[str] = []
        self._ids = itertools.count(1)
        api = self

        class Handler(JsonHandler):
            def _error(self, status: int, code: str, message: str) -> None:
                self.send_json(status, {"error": {"code": code, "message": message}})

            def _authorized(self) -> bool:
                auth = self.headers.get("Authorization", "")
                api.seen_auth.append(auth)
                if auth != f"Bearer {API_KEY}":
                    self._error(401, "global/invalid-api-key", "API key was invalid")
                    return False
                return True

            def do_GET(self) -> None:
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/instance-types"):
                    self.send_json(200, {"data": {
                        "gpu_8x_h100_sxm5": {
                            "instance_type": {"name": "gpu_8x_h100_sxm5",
                                              "price_cents_per_hour": 2392,
                                              "gpu_description": "H100 (80 GB SXM5)",
                                              "specs": {"gpus": 8, "vcpus": 208,
                                                        "memory_gib": 1800}},
                            "regions_with_capacity_available": [
                                {"name": r} for r in api.capacity_regions]},
                        "gpu_1x_a10": {
                            "instance_type": {"name": "gpu_1x_a10",
                                              "price_cents_per_hour": 75,
                                              "gpu_description": "A10 (24 GB PCIe)",
                                              "specs": {"gpus": 1, "vcpus": 30,
                                                        "memory_gib": 200}},
                            "regions_with_capacity_available": []},
                    }})
                elif self.path.rstrip("/").endswith("/instances"):
                    self.send_json(200, {"data": list(api.instances.values())})
                elif "/instances/" in self.path:
                    inst = api.instances.get(self.path.rsplit("/", 1)[1])
                    if inst is None:
                        self._error(404, "global/object-does-not-exist", "no such instance")
                    else:
                        self.send_json(200, {"data": inst})
                else:
                    self._error(404, "global/not-found", self.path)

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = self.read_json()
                if self.path.endswith("/instance-operations/launch"):
                    if api.fail_next:
                        status, code = api.fail_next.pop(0)
                        self._error(status, code, "refused by the test")
                        return
                    api.launches += 1
                    api.last_launch = body
                    iid = f"inst-{next(api._ids):04d}"
                    api.instances[iid] = {
                        "id": iid, "name": body.get("name"), "status": "booting",
                        "ip": "10.0.0.1", "region": {"name": body["region_name"]},
                        "instance_type": {"name": body["instance_type_name"]},
                        "tags": list(body.get("tags") or []),
                    }
                    if api.lose_answers:
                        api.lose_answers -= 1
                        self._error(503, "global/unavailable", "the answer was lost")
                        return
                    self.send_json(200, {"data": {"instance_ids": [iid]}})
                elif self.path.endswith("/instance-operations/restart"):
                    done = []
                    for iid in body.get("instance_ids", []):
                        inst = api.instances.get(iid)
                        if inst is None or inst["status"] == "terminated":
                            self._error(404, "global/object-does-not-exist", iid)
                            return
                        inst["status"] = "booting"
                        api.restarts.append(iid)
                        done.append(inst)
                    self.send_json(200, {"data": {"restarted_instances": done}})
                elif self.path.endswith("/instance-operations/terminate"):
                    done = []
                    for iid in body.get("instance_ids", []):
                        inst = api.instances.get(iid)
                        if inst is None:
                            self._error(404, "global/object-does-not-exist", iid)
                            return
                        inst["status"] = "terminated"
                        done.append(inst)
                    self.send_json(200, {"data": {"terminated_instances": done}})
                else:
                    self._error(404, "global/not-found", self.path)

        super().__init__(Handler)
        self.url = f"{self.base_url}/api/v1"
