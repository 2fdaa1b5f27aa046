"""Every activity is declared once, as a typed stub in its contract module, and each worker
registers exactly one implementation of it under the same name, with the same signature.
Workflows call the stubs, so mypy checks every call site; this checks the other side."""

from __future__ import annotations

import inspect
import typing
from collections import Counter
from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

import pytest
from temporalio import activity
from temporalio.client import Client

from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.agent.shared_host import SharedHosts
from navarch.contracts import agent, autoscale, cloud, fleet, notifier, ssh, sweep
from navarch.sim.fakeworld import FakeWorld
from navarch.workers.control_plane import ControlPlane

CONTROL_PLANE = (cloud, ssh, notifier, autoscale, fleet, sweep)
AGENT = (agent,)


def _name(fn: Callable[..., Any]) -> str | None:
    defn = activity._Definition.from_callable(fn)
    return defn.name if defn else None


def _stubs(modules: tuple[ModuleType, ...]) -> dict[str, Callable[..., Any]]:
    found: dict[str, Callable[..., Any]] = {}
    for module in modules:
        for value in vars(module).values():
            if inspect.isfunction(value) and value.__module__ == module.__name__:
                name = _name(value)
                if name:
                    found[name] = value
    return found


def _signature(fn: Callable[..., Any]) -> tuple[list[Any], Any]:
    """(parameter types, result type) of a stub or an implementation (bound or not)."""
    target = getattr(fn, "__func__", fn)
    hints = typing.get_type_hints(target)
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != "self"]
    return [hints[p.name] for p in params], hints["return"]


def _control_plane_activities(tmp_path: Any) -> list[Callable[..., object]]:
    plane = ControlPlane(cast(Client, None), world=FakeWorld(tmp_path / "w.db"))
    return plane.activities()


def _agent_activities(tmp_path: Any) -> list[Callable[..., object]]:
    backend = FakeGpuBackend(FakeWorld(tmp_path / "a.db"), "n1", 8, "H100")
    return AgentActivities(backend).activities()


@pytest.mark.parametrize("modules,registered", [
    (CONTROL_PLANE, _control_plane_activities),
    (AGENT, _agent_activities),
    (AGENT, lambda _: SharedHosts().activities()),
], ids=["control-plane worker", "agent", "simulated hosts on one queue"])
def test_each_stub_has_one_implementation_with_its_signature(modules, registered, tmp_path):
    stubs = _stubs(modules)
    assert stubs, "no activity stubs found"
    implementations = registered(tmp_path)
    counts = Counter(_name(fn) for fn in implementations)
    for name, stub in stubs.items():
        assert counts[name] == 1, f"{name}: {counts[name]} implementations registered"
        implementation = next(fn for fn in implementations if _name(fn) == name)
        assert _signature(implementation) == _signature(stub), (
            f"{name}: implemented as {_signature(implementation)}, declared as "
            f"{_signature(stub)}")
    assert set(counts) == set(stubs), f"registered without a stub: {set(counts) - set(stubs)}"


def test_the_signature_check_sees_a_mismatch():
    @activity.defn(name="cloud.provision")
    async def wrong(request: cloud.TerminateRequest) -> cloud.Instance:
        raise NotImplementedError

    assert _signature(wrong) != _signature(cloud.provision)
