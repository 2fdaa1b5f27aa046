"""Plumbing shared by the tests' local HTTP servers (the workload scheduler, the Lambda and
Compute Engine API stand-ins): a quiet JSON request handler and a server run in a thread."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self


class JsonHandler(BaseHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass

    def send_json(self, status: int, payload: Any) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def read_json(self) -> Any:
        return json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")


class LocalServer:
    """A ThreadingHTTPServer on 127.0.0.1 (a free port), served while in a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.base_url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


class LossyProxy(LocalServer):
    """A pass-through HTTP proxy in front of a cloud API that, for the next `lose` requests
    whose body contains `marker`, forwards the request (the cloud acts) and then answers
    503: the caller never hears of what it made."""

    def __init__(self, upstream: str, marker: bytes) -> None:
        import urllib.error
        import urllib.request

        self.lose = 0
        self.lost = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(upstream + self.path, data=body or None,
                                             headers=headers, method=self.command)
                try:
                    with urllib.request.urlopen(req, timeout=30) as resp:
                        status, data, kind = resp.status, resp.read(), resp.headers.get(
                            "Content-Type", "text/xml")
                except urllib.error.HTTPError as exc:
                    status, data, kind = exc.code, exc.read(), exc.headers.get(
                        "Content-Type", "text/xml")
                if marker in body and proxy.lose > 0:
                    proxy.lose -= 1
                    proxy.lost += 1
                    status, kind = 503, "text/xml"
                    data = (b"<Response><Errors><Error><Code>ServiceUnavailable</Code>"
                            b"<Message>the answer was lost</Message></Error></Errors>"
                            b"</Response>")
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_DELETE = _forward

        super().__init__(Handler)
