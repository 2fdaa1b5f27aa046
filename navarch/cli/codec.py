"""`navarch codec-key` and `navarch codec-server`: payload encryption's keys, and the HTTP
endpoint through which the Temporal UI and CLI read encrypted histories."""

from __future__ import annotations

import logging
import secrets
import threading
from pathlib import Path
from typing import Annotated

import typer

from navarch.cli.common import fail
from navarch.cli.output import out
from navarch.temporal.codec import (
    KEYS_ENV,
    KEYS_FILE_ENV,
    CodecKeyError,
    EncryptionCodec,
    keys_from_environment,
    new_key,
    parse_keys,
)
from navarch.temporal.codec_server import TokenFileError, read_tokens, serve


def codec_key(
    key_id: Annotated[str, typer.Argument(help="the new key's id, e.g. 2026-12")],
) -> None:
    """Print a new 256-bit codec key as a `KEY_ID=BASE64` line for a keys file (put it
    first to encrypt with it; keep the old lines to read what they sealed)."""
    line = f"{key_id}={new_key()}"
    try:
        parse_keys(line, "the key id")
    except CodecKeyError as exc:
        fail(str(exc))
    out.print(line, markup=False, highlight=False, soft_wrap=True)


def codec_token() -> None:
    """Print a new random token for a codec server's tokens file."""
    out.print(secrets.token_urlsafe(32), markup=False, highlight=False, soft_wrap=True)


def codec_server(
    keys_file: Annotated[Path | None, typer.Option(
        help=f"codec keys (default: ${KEYS_FILE_ENV} or ${KEYS_ENV})")] = None,
    tokens_file: Annotated[Path | None, typer.Option(
        help="tokens allowed to encode and decode, one per line (`navarch codec-token`)")
    ] = None,
    no_auth: Annotated[bool, typer.Option(
        "--no-auth", help="serve anyone who reaches the port (a laptop, never shared)")] = False,
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8081,
    allow_origin: Annotated[list[str] | None, typer.Option(
        help="a Web UI origin allowed to call from the browser (repeatable), "
             "e.g. http://127.0.0.1:8233")] = None,
    tls_cert: Annotated[Path | None, typer.Option(help="serve HTTPS with this certificate")
                        ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="the certificate's private key")] = None,
) -> None:
    """Serve Temporal's remote-codec protocol (POST /encode, /decode) so the Temporal UI
    (`--ui-codec-endpoint`) and CLI (`--codec-endpoint`, `--codec-auth "Bearer TOKEN"`)
    show Navarch's encrypted payloads to those holding a token. The UI, which cannot send
    a header, uses the token as the endpoint's path: http://HOST:PORT/TOKEN."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    env = {KEYS_FILE_ENV: str(keys_file)} if keys_file else None
    try:
        keys = keys_from_environment(env)
    except CodecKeyError as exc:
        fail(str(exc))
    if not keys:
        fail(f"no codec keys: pass --keys-file or set {KEYS_FILE_ENV}")
    if tokens_file is None and not no_auth:
        fail("pass --tokens-file (or --no-auth to serve anyone who reaches the port)")
    try:
        tokens = read_tokens(tokens_file) if tokens_file else None
    except TokenFileError as exc:
        fail(str(exc))
    if bool(tls_cert) != bool(tls_key):
        fail("--tls-cert and --tls-key go together")
    try:
        server = serve(host, port, EncryptionCodec(keys), tokens=tokens,
                       origins=allow_origin or (),
                       tls_cert=str(tls_cert) if tls_cert else None,
                       tls_key=str(tls_key) if tls_key else None)
    except OSError as exc:
        fail(f"cannot listen on {host}:{port}: {exc.strerror or exc}")
    out.print(f"codec server on {server.url} (keys: {', '.join(keys)}; encrypting with "
              f"{next(iter(keys))}; "
              f"{'no authentication' if tokens is None else f'{len(tokens)} token(s)'})",
              markup=False, highlight=False)
    stopped = threading.Event()
    try:
        server.serve_in_thread()
        stopped.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        server.server_close()
