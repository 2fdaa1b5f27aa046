"""The agent's activities on the fake backend, in Temporal's ActivityEnvironment."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from temporalio.testing import ActivityEnvironment

from navarch.agent.activities import AgentActivities
from navarch.agent.fake_backend import FakeGpuBackend
from navarch.contracts.agent import BootCheckInput, Occurrence, WaitIdleInput, WatchHealthInput
from navarch.health.events import HealthResult
from navarch.health.policy import builtin_policy
from navarch.sim.fakeworld import FakeWorld


@pytest.fixture
def world(tmp_path):
    return FakeWorld(tmp_path / "world.db")


def agent(world, gpus=8, model="H100"):
    return AgentActivities(FakeGpuBackend(world, "n1", gpus, model))


def watch_input(**kw):
    kw.setdefault("check_interval", timedelta(milliseconds=200))
    return WatchHealthInput(node_id="n1", policy=builtin_policy("default").source, **kw)


async def test_boot_check_passes_and_fails_on_wrong_count_or_bad_memory(world):
    env = ActivityEnvironment()
    ok = await env.run(agent(world).boot_check, BootCheckInput(
        node_id="n1", expected_gpu_count=8, expected_gpu_model="H100"))
    assert ok.passed
    assert {c.name: c.status for c in ok.checks} == {
        "driver": "pass", "gpu_count": "pass", "gpu_model": "pass", "memory": "pass"}
    wrong = await env.run(agent(world, gpus=4).boot_check,
                          BootCheckInput(node_id="n1", expected_gpu_count=8))
    assert not wrong.passed and "found 4, expected 8" in wrong.checks[1].detail
    for gpu in range(8):
        world.inject("n1", "ecc_dbe", gpu_index=gpu, value=1)
    bad = await env.run(agent(world).boot_check, BootCheckInput(node_id="n1"))
    assert not bad.passed and {c.name: c.status for c in bad.checks}["memory"] == "fail"
    world.clear("n1")
    world.inject("n1", "nvml_failure")
    dead = await env.run(agent(world).boot_check, BootCheckInput(node_id="n1"))
    assert not dead.passed and dead.checks[0].name == "driver"


async def test_watch_health_returns_on_change_with_events(world):
    env = ActivityEnvironment()
    heartbeats = []
    env.on_heartbeat = lambda *details: heartbeats.append(details[0])
    task = asyncio.ensure_future(env.run(agent(world).watch_health, watch_input()))
    await asyncio.sleep(0.3)
    assert not task.done() and heartbeats and heartbeats[-1].health is HealthResult.HEALTHY
    world.inject("n1", "xid", value=79, gpu_index=2)
    result = await asyncio.wait_for(task, 5)
    assert result.health is HealthResult.UNHEALTHY
    assert result.rule == "xid-needs-reset-or-reboot"
    assert result.events[0].metrics["xid_code"] == 79 and result.events[0].gpu_index == 2
    assert result.summary is not None and result.summary.last_events == ["gpu2 xid 79"]


async def test_unhealthy_after_needs_consecutive_checks_and_resets(world):
    env = ActivityEnvironment()
    activities = agent(world)
    world.inject("n1", "temperature", value=97)
    # Unhealthy once, then cooler before the second check: never reported unhealthy.
    task = asyncio.ensure_future(env.run(activities.watch_health, watch_input(
        unhealthy_after=2, check_interval=timedelta(seconds=1))))
    await asyncio.sleep(0.2)
    world.clear("n1")
    world.inject("n1", "temperature", value=60)
    await asyncio.sleep(1.5)
    assert not task.done()
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # Hot through two checks: unhealthy.
    world.clear("n1")
    world.inject("n1", "temperature", value=97)
    env2 = ActivityEnvironment()
    started = asyncio.get_running_loop().time()
    result = await asyncio.wait_for(env2.run(activities.watch_health, watch_input(
        unhealthy_after=2, check_interval=timedelta(milliseconds=500))), 5)
    assert result.health is HealthResult.UNHEALTHY and result.rule == "thermal-critical"
    assert asyncio.get_running_loop().time() - started >= 0.45
    assert result.summary is not None and result.summary.unhealthy_streak == 2


@pytest.mark.parametrize(("recover_after", "at_least", "at_most"), [(1, 0.0, 0.5),
                                                                     (3, 0.55, 5.0)])
async def test_a_degraded_node_is_healthy_again_only_after_a_settle_period(
        world, recover_after, at_least, at_most):
    """With recover_after=3 the condition must stay away for three checks in a row (0.4 s
    apart) before the watch says healthy; with 1, the first quiet check says so."""
    # (A warm GPU, not an application Xid: the default policy counts those; see below.)
    env = ActivityEnvironment()
    world.inject("n1", "temperature", value=88)  # warm: degraded
    task = asyncio.ensure_future(env.run(agent(world).watch_health, watch_input(
        last_health=HealthResult.DEGRADED, recover_after=recover_after,
        check_interval=timedelta(milliseconds=400))))
    await asyncio.sleep(0.2)
    assert not task.done()
    world.clear("n1")
    cleared = asyncio.get_running_loop().time()
    result = await asyncio.wait_for(task, 5)
    assert result.health is HealthResult.HEALTHY
    assert at_least <= asyncio.get_running_loop().time() - cleared <= at_most


async def test_a_repeated_application_xid_is_counted_and_the_count_comes_from_the_node(world):
    """Each new Xid 13 on GPU 1 is counted and returned (health unchanged, degraded); the
    fifth within the hour is unhealthy. The count is what the node sent in, plus what this
    watch saw: a new agent (a restart) picks up where the last left off."""
    env = ActivityEnvironment()
    occurrences: list[Occurrence] = []
    for n in range(1, 6):
        world.inject("n1", "xid", value=13, gpu_index=1)
        await asyncio.sleep(0.01)  # distinct event times
        result = await asyncio.wait_for(env.run(agent(world).watch_health, watch_input(
            last_health=HealthResult.DEGRADED if n > 1 else HealthResult.HEALTHY,
            occurrences=occurrences)), 5)  # a fresh agent each time
        occurrences = result.occurrences
        assert len(occurrences) == n
        assert {(o.rule, o.gpu_index) for o in occurrences} == {("xid-app-repeated", 1)}
        expected = HealthResult.UNHEALTHY if n == 5 else HealthResult.DEGRADED
        assert (result.health, result.rule) == (
            expected, "xid-app-repeated" if n == 5 else "xid-other"), n
    # The same events read again count nothing new: the watch does not return.
    again = asyncio.ensure_future(env.run(agent(world).watch_health, watch_input(
        last_health=HealthResult.UNHEALTHY, occurrences=occurrences)))
    await asyncio.sleep(0.5)
    assert not again.done()
    env.cancel()
    with pytest.raises(asyncio.CancelledError):
        await again


async def test_nvml_failure_is_itself_an_unhealthy_event(world):
    world.inject("n1", "nvml_failure", message="NVML: GPU is lost")
    result = await ActivityEnvironment().run(agent(world).watch_health, watch_input())
    assert result.health is HealthResult.UNHEALTHY and result.rule == "gpu-lost"


async def test_wait_idle_waits_for_processes_and_honours_grace(world):
    env = ActivityEnvironment()
    world.add_process("n1", 10)
    task = asyncio.ensure_future(env.run(agent(world).wait_idle, WaitIdleInput(
        node_id="n1", grace=timedelta(seconds=10), poll_interval=timedelta(milliseconds=50))))
    await asyncio.sleep(0.3)
    assert not task.done()
    world.remove_process("n1", 10)
    assert (await asyncio.wait_for(task, 2)).outcome == "idle"
    world.add_process("n1", 11)
    expired = await env.run(agent(world).wait_idle, WaitIdleInput(
        node_id="n1", grace=timedelta(milliseconds=300), poll_interval=timedelta(milliseconds=50)))
    assert expired.outcome == "grace_expired" and expired.remaining_processes == 1


async def test_boot_check_runs_required_services(world):
    result = await ActivityEnvironment().run(agent(world).boot_check, BootCheckInput(
        node_id="n1", required_services=["nvidia-fabricmanager"]))
    assert ("service:nvidia-fabricmanager", "pass") in [(c.name, c.status) for c in result.checks]


async def test_a_rule_over_its_time_budget_is_skipped_and_logged_once(world, monkeypatch,
                                                                      caplog):
    """A rule that runs over its budget on a real event does not stall the watch: it is
    skipped from then on (here every rule is over a negative budget), and said once."""
    monkeypatch.setattr("navarch.health.policy.RUNTIME_BUDGET_SECONDS", -1.0)
    env = ActivityEnvironment()
    activities = agent(world)
    world.inject("n1", "xid", value=79, gpu_index=2)
    first = await asyncio.wait_for(env.run(activities.watch_health, watch_input()), 5)
    assert (first.health, first.rule) == (HealthResult.UNHEALTHY, "xid-needs-reset-or-reboot")
    # That rule ran once, over budget: skipped from now on, so the same event no longer
    # matches it, and the agent says so once.
    second = await asyncio.wait_for(env.run(activities.watch_health, watch_input(
        last_health=HealthResult.UNHEALTHY)), 5)
    assert second.rule != "xid-needs-reset-or-reboot"
    said = [r.getMessage() for r in caplog.records if "skipped from now on" in r.getMessage()]
    assert [m.split(" took ")[0] for m in said].count(
        "health rule 'xid-needs-reset-or-reboot'") == 1
