"""A codec server: the HTTP endpoint through which the Temporal UI and the `temporal` CLI
read (and write) payloads that Navarch's codec encrypted.

Temporal's remote-codec protocol: `POST {endpoint}/decode` and `POST {endpoint}/encode` with
a JSON body `{"payloads": [{"metadata": {...}, "data": "..."}]}` (the protobuf JSON form:
bytes in base64), answered in the same shape. The UI calls it from the browser, so the
server answers CORS preflights for the origins it is told to trust.

Every encode or decode must be authorised by one of the tokens in the tokens file, either
as `Authorization: Bearer TOKEN` (the `temporal` CLI's `--codec-auth`, scripts) or as the
first path segment of the endpoint (`http://host:port/TOKEN`: the Web UI, which cannot send
a header of its own without single sign-on). Tokens never appear in the log.
"""

from __future__ import annotations

import hmac
import json
import logging
import ssl
import threading
from collections.abc import Iterable, Sequence
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads

from navarch.temporal.codec import EncryptionCodec, UnknownKey

log = logging.getLogger("navarch.codec_server")

MAX_BODY = 8 * 1024 * 1024
MIN_TOKEN_CHARS = 16
ALLOWED_HEADERS = "Authorization, Content-Type, X-Namespace"


class TokenFileError(ValueError):
    pass


def read_tokens(path: str | Path) -> list[str]:
    """The tokens in `path`: one per line, `#` comments; each at least 16 characters."""
    try:
        lines = Path(path).expanduser().read_text().splitlines()
    except OSError as exc:
        raise TokenFileError(f"tokens file {path}: {exc.strerror}") from None
    tokens = [line.split("#", 1)[0].strip() for line in lines]
    tokens = [t for t in tokens if t]
    for number, token in enumerate(tokens, start=1):
        if len(token) < MIN_TOKEN_CHARS or any(c.isspace() or c == "/" for c in token):
            raise TokenFileError(f"tokens file {path}: token {number} must be at least "
                                 f"{MIN_TOKEN_CHARS} characters, without spaces or '/'")
    if not tokens:
        raise TokenFileError(f"tokens file {path} holds no token")
    return tokens


class CodecServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], codec: EncryptionCodec, *,
                 tokens: Sequence[str] | None, origins: Iterable[str] = ()) -> None:
        super().__init__(address, _Handler)
        self.codec = codec
        self.tokens = [t.encode() for t in tokens] if tokens is not None else None
        self.origins = {o.rstrip("/") for o in origins}

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        scheme = "https" if isinstance(self.socket, ssl.SSLSocket) else "http"
        return f"{scheme}://{host!s}:{port}"

    def allows(self, token: str | None) -> bool:
        if self.tokens is None:
            return True
        if not token:
            return False
        given = token.encode()
        return any(hmac.compare_digest(given, t) for t in self.tokens)

    def serve_in_thread(self) -> threading.Thread:
        thread = threading.Thread(target=self.serve_forever, name="codec-server", daemon=True)
        thread.start()
        return thread


def serve(host: str, port: int, codec: EncryptionCodec, *, tokens: Sequence[str] | None,
          origins: Iterable[str] = (), tls_cert: str | None = None,
          tls_key: str | None = None) -> CodecServer:
    server = CodecServer((host, port), codec, tokens=tokens, origins=origins)
    if tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls_cert, tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    return server


class _Handler(BaseHTTPRequestHandler):
    server: CodecServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass  # the default logs the path, which may hold a token

    def _route(self) -> tuple[str | None, str]:
        """(the token the request carries, the operation) from the header or the path."""
        parts = [p for p in self.path.split("?", 1)[0].split("/") if p]
        header = self.headers.get("Authorization", "")
        token = header[7:].strip() if header[:7].lower() == "bearer " else None
        if len(parts) == 2:
            return parts[0], parts[1]
        return token, parts[0] if parts else ""

    def _cors(self) -> None:
        origin = (self.headers.get("Origin") or "").rstrip("/")
        if origin and origin in self.server.origins:
            self.send_header("Access-Control-Allow-Origin", origin)
            self.send_header("Access-Control-Allow-Credentials", "true")
            self.send_header("Vary", "Origin")

    def _answer(self, status: HTTPStatus, body: dict[str, object]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self._cors()
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_OPTIONS(self) -> None:
        self.send_response(HTTPStatus.NO_CONTENT)
        self._cors()
        self.send_header("Access-Control-Allow-Methods", "POST, OPTIONS")
        self.send_header("Access-Control-Allow-Headers", ALLOWED_HEADERS)
        self.send_header("Access-Control-Max-Age", "600")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_GET(self) -> None:
        token, operation = self._route()
        if operation == "healthz" and token is None:
            self._answer(HTTPStatus.OK, {"status": "ok"})
            return
        self._answer(HTTPStatus.METHOD_NOT_ALLOWED, {"error": "POST /encode or /decode"})

    def do_POST(self) -> None:
        token, operation = self._route()
        status, body = self._handle(token, operation)
        log.info("%s %s -> %d", operation or "/", self.client_address[0], status)
        self._answer(status, body)

    def _handle(self, token: str | None, operation: str) -> tuple[HTTPStatus, dict[str, object]]:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.close_connection = True
            return HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": f"body over {MAX_BODY} bytes"}
        raw = self.rfile.read(length)
        if not self.server.allows(token):
            return HTTPStatus.UNAUTHORIZED, {"error": "a valid codec token is required"}
        if operation not in ("encode", "decode"):
            return HTTPStatus.NOT_FOUND, {"error": f"no operation {operation!r}: "
                                          "POST /encode or /decode"}
        try:
            payloads = json_format.Parse(raw or b"{}", Payloads())
        except (json_format.ParseError, UnicodeDecodeError) as exc:
            return HTTPStatus.BAD_REQUEST, {"error": f"body is not Payloads JSON: {exc}"}
        codec = self.server.codec
        try:
            changed = [codec.seal(p) if operation == "encode" else codec.open(p)
                       for p in payloads.payloads]
        except UnknownKey as exc:
            return HTTPStatus.BAD_REQUEST, {"error": str(exc)}
        answer: dict[str, object] = json_format.MessageToDict(Payloads(payloads=changed))
        answer.setdefault("payloads", [])
        return HTTPStatus.OK, answer
