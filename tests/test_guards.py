"""The guards every test runs under (pyproject's pytest settings): they are on, and they bite."""

from __future__ import annotations

import socket
import warnings

import pytest
from pytest_socket import SocketConnectBlockedError
from temporalio.workflow import UnfinishedSignalHandlersWarning, UnfinishedUpdateHandlersWarning


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_only_loopback_is_reachable():
    with socket.socket() as s, pytest.raises(SocketConnectBlockedError):
        s.connect(("192.0.2.1", 9))  # TEST-NET-1: never routed
    with socket.socket() as s:
        s.settimeout(1)
        assert s.connect_ex(("127.0.0.1", 9)) != 0  # allowed (nothing listens on 9)


def test_a_hung_test_times_out(pytestconfig: pytest.Config):
    assert float(pytestconfig.getini("timeout")) == 300


@pytest.mark.parametrize("kind", [UnfinishedSignalHandlersWarning,
                                  UnfinishedUpdateHandlersWarning])
def test_unfinished_handlers_fail_the_test(kind: type[Warning]):
    with pytest.raises(kind):
        warnings.warn(kind("a handler was still running when the workflow finished"),
                      stacklevel=1)
