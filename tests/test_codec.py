"""The payload codec (AES-GCM with key ids and rotation) and the codec server that lets the
Temporal UI and CLI read what it sealed: the key syntax, sealing and opening, the HTTP
protocol with its authentication and CORS, and a workflow whose history is encrypted."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
import uuid
from datetime import timedelta
from typing import Any

import pytest
from temporalio import workflow
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowFailureError
from temporalio.exceptions import ApplicationError
from temporalio.worker import Worker

with workflow.unsafe.imports_passed_through():  # the test workflow's sandbox re-imports this
    from navarch.temporal.client import data_converter
    from navarch.temporal.codec import (
        ENCODING,
        KEY_ID,
        CodecKeyError,
        EncryptionCodec,
        UnknownKey,
        keys_from_environment,
        new_key,
        parse_keys,
    )
    from navarch.temporal.codec_server import TokenFileError, read_tokens, serve

K1 = base64.b64encode(b"1" * 32).decode()
K2 = base64.b64encode(b"2" * 16).decode()


@pytest.mark.parametrize(("text", "expected"), [
    (f"k1={K1}", ["k1"]),
    (f"k2={K2}, k1={K1}", ["k2", "k1"]),
    (f"# rotated 2026-12\nk2={K2}\n\nk1={K1}  # old\n", ["k2", "k1"]),
])
def test_keys_parse_in_order(text, expected):
    assert list(parse_keys(text, "f")) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("k1", "'k1' is not KEY_ID=BASE64_KEY"),
    (f"bad id={K1}", "'bad id' is not KEY_ID=BASE64_KEY"),
    ("k1=not*base64", "key 'k1' is not valid base64"),
    (f"k1={base64.b64encode(b'short').decode()}", "key 'k1' is 5 bytes"),
    (f"k1={K1}\nk1={K2}", "key id 'k1' is listed twice"),
])
def test_bad_keys_are_named(text, message):
    with pytest.raises(CodecKeyError, match="keys.txt: " + message.replace("*", r"\*")):
        parse_keys(text, "keys.txt")


def test_keys_come_from_the_file_or_the_variable(tmp_path):
    path = tmp_path / "keys"
    path.write_text(f"k1={K1}\n")
    assert list(keys_from_environment({"NAVARCH_CODEC_KEYS_FILE": str(path),
                                       "NAVARCH_CODEC_KEYS": f"k2={K2}"})) == ["k1"]
    assert list(keys_from_environment({"NAVARCH_CODEC_KEYS": f"k2={K2}"})) == ["k2"]
    assert keys_from_environment({}) == {}
    with pytest.raises(CodecKeyError, match=r"NAVARCH_CODEC_KEYS_FILE=.*missing: No such file"):
        keys_from_environment({"NAVARCH_CODEC_KEYS_FILE": str(tmp_path / "missing")})
    path.write_text("# nothing yet\n")
    with pytest.raises(CodecKeyError, match="holds no key"):
        keys_from_environment({"NAVARCH_CODEC_KEYS_FILE": str(path)})


def _payload(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(text).encode())


def test_sealed_payloads_open_after_a_rotation_and_not_without_their_key():
    old = EncryptionCodec(parse_keys(f"k1={K1}", "t"))
    sealed = old.seal(_payload("pool spec"))
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
    assert b"pool spec" not in sealed.data
    assert old.seal(_payload("pool spec")).data != sealed.data  # a fresh nonce each time

    rotated = EncryptionCodec(parse_keys(f"k2={K2},k1={K1}", "t"))
    assert rotated.open(sealed) == _payload("pool spec")
    assert rotated.seal(_payload("x")).metadata[KEY_ID] == b"k2"

    only_new = EncryptionCodec(parse_keys(f"k2={K2}", "t"))
    with pytest.raises(UnknownKey, match="key 'k1', which this process does not hold"):
        only_new.open(sealed)
    tampered = Payload(metadata=dict(sealed.metadata), data=sealed.data[:-1] + b"\0")
    with pytest.raises(UnknownKey, match="does not open"):
        old.open(tampered)
    assert old.open(_payload("plain")) == _payload("plain")  # unencrypted: passes through


def test_codec_key_makes_a_usable_key():
    assert len(parse_keys(f"k={new_key()}", "t")["k"]) == 32


# ---------------------------------------------------------------------- the codec server

TOKEN = "t0ken-for-the-codec-server"


@pytest.fixture
def codec_server(tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"# people allowed to read histories\n{TOKEN}\n")
    server = serve("127.0.0.1", 0, EncryptionCodec(parse_keys(f"k1={K1}", "t")),
                   tokens=read_tokens(tokens), origins=["http://127.0.0.1:8233"])
    server.serve_in_thread()
    yield server
    server.shutdown()
    server.server_close()


def _post(url: str, body: object, headers: dict[str, str] | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json",
                                              **(headers or {})})
    try:
        with urllib.request.urlopen(request, timeout=5) as answer:
            return answer.status, json.loads(answer.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _wire(payload: Payload) -> dict[str, object]:
    return {"metadata": {k: base64.b64encode(v).decode() for k, v in payload.metadata.items()},
            "data": base64.b64encode(payload.data).decode()}


def test_the_codec_server_encodes_and_decodes_for_token_holders(codec_server):
    plain = {"payloads": [_wire(_payload("readable"))]}
    status, encoded = _post(codec_server.url + "/encode", plain,
                            {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200
    sealed = encoded["payloads"][0]
    assert base64.b64decode(sealed["metadata"]["encoding"]) == ENCODING
    for url, headers in [(codec_server.url + "/decode", {"Authorization": f"Bearer {TOKEN}"}),
                         (f"{codec_server.url}/{TOKEN}/decode", {})]:  # the UI's way
        status, decoded = _post(url, encoded, headers)
        assert (status, decoded) == (200, plain)


@pytest.mark.parametrize(("path", "headers"), [
    ("/decode", {}),
    ("/decode", {"Authorization": "Bearer wrong-token-of-enough-length"}),
    ("/wrong-token-of-enough-length/decode", {}),
    ("/decode", {"Authorization": f"Basic {TOKEN}"}),
])
def test_the_codec_server_refuses_without_a_valid_token(codec_server, path, headers):
    status, answer = _post(codec_server.url + path, {"payloads": []}, headers)
    assert status == 401
    assert answer == {"error": "a valid codec token is required"}


def test_the_codec_server_names_bad_requests(codec_server):
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert _post(codec_server.url + "/decode", {"payloads": "x"}, auth)[0] == 400
    status, answer = _post(codec_server.url + "/transcode", {}, auth)
    assert (status, answer["error"]) == (404, "no operation 'transcode': POST /encode or /decode")
    sealed_elsewhere = EncryptionCodec(parse_keys(f"other={K2}", "t")).seal(_payload("x"))
    status, answer = _post(codec_server.url + "/decode", {"payloads": [_wire(sealed_elsewhere)]},
                           auth)
    assert status == 400 and "codec key 'other'" in answer["error"]


def test_the_codec_server_answers_cors_for_the_ui_origin_only(codec_server):
    def preflight(origin: str) -> dict[str, str]:
        request = urllib.request.Request(f"{codec_server.url}/{TOKEN}/decode", method="OPTIONS",
                                         headers={"Origin": origin,
                                                  "Access-Control-Request-Method": "POST"})
        with urllib.request.urlopen(request, timeout=5) as answer:
            return dict(answer.headers)

    allowed = preflight("http://127.0.0.1:8233")
    assert allowed["Access-Control-Allow-Origin"] == "http://127.0.0.1:8233"
    assert "X-Namespace" in allowed["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Origin" not in preflight("http://evil.example")


@pytest.mark.parametrize(("text", "message"), [
    ("", "holds no token"),
    ("short\n", "token 1 must be at least 16 characters"),
    (f"{TOKEN}\nhas a space in it, long enough\n", "token 2 must be"),
])
def test_bad_token_files_are_named(tmp_path, text, message):
    path = tmp_path / "tokens"
    path.write_text(text)
    with pytest.raises(TokenFileError, match=message):
        read_tokens(path)


# --------------------------------------------------- a workflow with its history sealed


@workflow.defn(name="CodecEcho")
class CodecEcho:
    @workflow.run
    async def run(self, text: str) -> str:
        if text == "fail":
            raise ApplicationError("secret failure detail", non_retryable=True)
        return text.upper()


async def test_a_workflow_on_the_codec_keeps_its_history_sealed(dev_env, monkeypatch):
    monkeypatch.setenv("NAVARCH_CODEC_KEYS", f"k1={K1}")
    target = dev_env.client.service_client.config.target_host
    client = await Client.connect(target, data_converter=data_converter())
    queue = f"codec-{uuid.uuid4().hex[:8]}"
    async with Worker(client, task_queue=queue, workflows=[CodecEcho]):
        handle = await client.start_workflow(CodecEcho.run, "readable pool spec",
                                             id=f"codec-{queue}", task_queue=queue,
                                             execution_timeout=timedelta(seconds=30))
        assert await handle.result() == "READABLE POOL SPEC"
        failing = await client.start_workflow(CodecEcho.run, "fail", id=f"codec-fail-{queue}",
                                              task_queue=queue,
                                              execution_timeout=timedelta(seconds=30))
        with pytest.raises(WorkflowFailureError) as failed:
            await failing.result()
        assert str(failed.value.cause) == "secret failure detail"  # readable with the keys
    for wf in (handle, failing):
        raw = (await dev_env.client.get_workflow_handle(wf.id).fetch_history()).to_json()
        assert "readable pool spec" not in raw.lower()
        assert "secret failure detail" not in raw
        assert base64.b64encode(ENCODING).decode() in raw
    # A client without the keys sees sealed payloads, not the text.
    plain = dev_env.client.get_workflow_handle(handle.id)
    with pytest.raises(Exception):  # noqa: B017
        await plain.result()
