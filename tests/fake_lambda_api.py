"""A local HTTP server speaking the part of Lambda Cloud's API v1 that Navarch uses, with
faults: insufficient capacity, rate limiting, a bad API key."""

from __future__ import annotations

import itertools
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

API_KEY = "secret_lambda_key"


class FakeLambdaApi:
    def __init__(self) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.launches = 0
        self.fail_next: list[tuple[int, str]] = []  # (http status, error code) for launches
        self.seen_auth: list[str] = []
        self.last_launch: dict[str, Any] = {}
        self._ids = itertools.count(1)
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _send(self, status: int, payload: Any) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _error(self, status: int, code: str, message: str) -> None:
                self._send(status, {"error": {"code": code, "message": message}})

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
                if self.path.rstrip("/").endswith("/instances"):
                    self._send(200, {"data": list(api.instances.values())})
                elif "/instances/" in self.path:
                    inst = api.instances.get(self.path.rsplit("/", 1)[1])
                    if inst is None:
                        self._error(404, "global/object-does-not-exist", "no such instance")
                    else:
                        self._send(200, {"data": inst})
                else:
                    self._error(404, "global/not-found", self.path)

            def do_POST(self) -> None:
                if not self._authorized():
                    return
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
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
                    }
                    self._send(200, {"data": {"instance_ids": [iid]}})
                elif self.path.endswith("/instance-operations/terminate"):
                    done = []
                    for iid in body.get("instance_ids", []):
                        inst = api.instances.get(iid)
                        if inst is None:
                            self._error(404, "global/object-does-not-exist", iid)
                            return
                        inst["status"] = "terminated"
                        done.append(inst)
                    self._send(200, {"data": {"terminated_instances": done}})
                else:
                    self._error(404, "global/not-found", self.path)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v1"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeLambdaApi:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
