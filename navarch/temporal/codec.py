"""Payload encryption: an AES-GCM payload codec, on by configuration in every process.

With codec keys configured (`NAVARCH_CODEC_KEYS_FILE`, a file of `KEY_ID=BASE64_KEY` lines,
or `NAVARCH_CODEC_KEYS`, the same pairs separated by commas), every Navarch client and worker
encrypts each payload it sends to Temporal (workflow and activity inputs and results,
signals, updates, queries, memos, failure messages and stack traces) and decrypts what it
reads. The first key encrypts; every key listed decrypts, so a key is rotated by putting a
new one first and keeping the old ones until no running history holds payloads they
sealed.

An encrypted payload carries `encoding: binary/encrypted` and `encryption-key-id` in its
metadata (both plain, so a codec server knows which key to use) and, as data, a 12-byte
nonce followed by the AES-GCM sealing of the original payload (its metadata and data), with
the key id as associated data. A payload without that encoding passes through decoding
unchanged: what the `temporal` CLI starts without a codec still runs.

What stays plain: workflow ids and types, activity types, task queues, timers, search
attributes (the NavarchPool/NavarchNodeState/... keywords, so lists and queries keep
working), and the metadata above.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from temporalio.api.common.v1 import Payload
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_BYTES = 12
KEY_BYTES = (16, 24, 32)  # AES-128, AES-192, AES-256
KEYS_ENV = "NAVARCH_CODEC_KEYS"
KEYS_FILE_ENV = "NAVARCH_CODEC_KEYS_FILE"


class CodecKeyError(ValueError):
    """Codec keys that cannot be used (bad syntax, wrong length, duplicate id)."""


class UnknownKey(ValueError):
    """A payload sealed with a key this process does not hold."""


def parse_keys(text: str, source: str) -> dict[str, bytes]:
    """`KEY_ID=BASE64_KEY` pairs (lines or commas; `#` comments) → {id: key}, in order.
    `source` names where they came from, for the error."""
    keys: dict[str, bytes] = {}
    items = [item.strip() for line in text.splitlines()
             for item in line.split("#", 1)[0].split(",")]
    for item in filter(None, items):
        key_id, sep, encoded = item.partition("=")
        key_id = key_id.strip()
        if not sep or not key_id or not key_id.replace("-", "").replace("_", "").isalnum():
            raise CodecKeyError(f"{source}: {item.split('=', 1)[0]!r} is not KEY_ID=BASE64_KEY "
                                "(a key id of letters, digits, - and _)")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except binascii.Error:
            raise CodecKeyError(f"{source}: key {key_id!r} is not valid base64") from None
        if len(key) not in KEY_BYTES:
            raise CodecKeyError(f"{source}: key {key_id!r} is {len(key)} bytes; AES-GCM takes "
                                "16, 24 or 32 (`navarch codec-key` makes one)")
        if key_id in keys:
            raise CodecKeyError(f"{source}: key id {key_id!r} is listed twice")
        keys[key_id] = key
    return keys


def keys_from_environment(env: Mapping[str, str] | None = None) -> dict[str, bytes]:
    """The codec keys this process is configured with; empty: no encryption."""
    env = os.environ if env is None else env
    path = env.get(KEYS_FILE_ENV)
    if path:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise CodecKeyError(f"{KEYS_FILE_ENV}={path}: {exc.strerror}") from None
        return _non_empty(parse_keys(text, f"{KEYS_FILE_ENV}={path}"), path)
    listed = env.get(KEYS_ENV)
    if listed:
        return _non_empty(parse_keys(listed, KEYS_ENV), KEYS_ENV)
    return {}


def _non_empty(keys: dict[str, bytes], source: str) -> dict[str, bytes]:
    if not keys:
        raise CodecKeyError(f"{source} holds no key")
    return keys


def new_key() -> str:
    """A fresh 256-bit key, base64, for a keys file."""
    return base64.b64encode(os.urandom(32)).decode()


class EncryptionCodec(PayloadCodec):
    """AES-GCM with key ids; see the module docstring for the format."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if not keys:
            raise CodecKeyError("an encryption codec needs at least one key")
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys.items()}
        self.key_id = next(iter(keys))

    def seal(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[self.key_id].encrypt(nonce, payload.SerializeToString(),
                                                    self.key_id.encode())
        return Payload(metadata={"encoding": ENCODING, KEY_ID: self.key_id.encode()},
                       data=nonce + sealed)

    def open(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise UnknownKey(f"payload sealed with codec key {key_id!r}, which this process "
                             f"does not hold (it has {', '.join(self._ciphers)})")
        from cryptography.exceptions import InvalidTag

        try:
            plain = cipher.decrypt(payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:],
                                   key_id.encode())
        except InvalidTag:
            raise UnknownKey(f"payload sealed with codec key {key_id!r} does not open with "
                             "the key of that id held here (altered, or a different key)") from None
        opened = Payload()
        opened.ParseFromString(plain)
        return opened

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.seal(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.open(p) for p in payloads]


def with_codec(converter: DataConverter, keys: Mapping[str, bytes]) -> DataConverter:
    """`converter` with payloads encrypted under `keys` (and failure messages and stack
    traces moved into an encrypted payload); unchanged when `keys` is empty."""
    if not keys:
        return converter
    return dataclasses.replace(
        converter, payload_codec=EncryptionCodec(keys),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes)
