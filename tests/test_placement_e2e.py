"""Where new nodes go: priority, weighted round-robin, failover on "no capacity" only, and the
pool's memory of places that had none."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

from navarch.contracts.spec import PoolSpec, ProviderChoice

from lifecycle_helpers import control_plane, eventually, fast_spec, pool_status, start_pool


def two_providers(**overrides) -> PoolSpec:
    a = ProviderChoice(name="a", type="fake", instance_type="h100-8x", priority=1,
                       weight=overrides.pop("weight_a", 0))
    b = ProviderChoice(name="b", type="fake", instance_type="h100-8x", priority=2,
                       weight=overrides.pop("weight_b", 0))
    return fast_spec(providers=[a, b], **overrides)


def where(world, pool: str) -> Counter[str]:
    return Counter(i.provider for i in world.instances(pool, live_only=True))


def test_placements_order():
    spec = two_providers(weight_a=2, weight_b=1, strategy="round-robin")
    firsts = [spec.placements(n)[0][0].name for n in range(6)]
    assert firsts == ["a", "a", "b", "a", "a", "b"]
    prio = two_providers()
    assert [p.name for p, _, _ in prio.placements(0, frozenset({"a/-/-/h100-8x"}))] == ["b", "a"]
    zoned = fast_spec(providers=[
        ProviderChoice(name="a", type="fake", instance_type="t", priority=1,
                       regions=["us-east-1", "us-west-2"],
                       zones=["us-east-1a", "us-east-1b", "us-west-2a"]),
        ProviderChoice(name="b", type="fake", instance_type="t", priority=2)])
    assert [(p.name, r, z) for p, r, z in zoned.placements()] == [
        ("a", "us-east-1", "us-east-1a"), ("a", "us-east-1", "us-east-1b"),
        ("a", "us-west-2", "us-west-2a"), ("b", "", "")]


async def test_no_capacity_fails_over_and_is_remembered(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.set_cloud_fault("capacity", 100, provider="a")
        spec = two_providers(capacity_memory=timedelta(seconds=3))
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 3)
        assert where(plane.world, spec.name) == Counter({"b": 3})
        assert list(pool.capacity_misses) == ["a/-/-/h100-8x"]
        refused = plane.world.counter("fault:capacity")
        handle = client.get_workflow_handle(f"pool/{spec.name}")
        await handle.signal("scale", {"target": 4})  # within the memory: straight to b
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 4)
        assert plane.world.counter("fault:capacity") == refused
        await asyncio.sleep(3.5)  # the memory expires: a is tried first again
        await handle.signal("scale", {"target": 5})
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 5)
        assert plane.world.counter("fault:capacity") == refused + 1
        assert where(plane.world, spec.name) == Counter({"b": 5})


async def test_weighted_round_robin(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = two_providers(strategy="round-robin", weight_a=2, weight_b=1)
        await start_pool(client, plane, spec)
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 3)
        assert where(plane.world, spec.name) == Counter({"a": 2, "b": 1})


async def test_other_errors_do_not_fail_over(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.set_cloud_fault("invalid", 1, provider="a")
        spec = two_providers(min_nodes=1)
        await start_pool(client, plane, spec)
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.ready == 1, within=60, what="retried later")
        failed = [n for n in pool.nodes if n.state.value == "failed"]
        assert len(failed) == 1 and failed[0].reason.value == "provision_failed"
        assert where(plane.world, spec.name) == Counter({"a": 1})  # the retry went to a


async def test_zone_then_region_then_provider(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.set_cloud_fault("capacity", 100, zone="us-east-1a")
        a = ProviderChoice(name="a", type="fake", instance_type="h100-8x", priority=1,
                           regions=["us-east-1"], zones=["us-east-1a", "us-east-1b"])
        spec = fast_spec(min_nodes=2, providers=[a])
        await start_pool(client, plane, spec)
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2)
        zones = Counter(i.zone for i in plane.world.instances(spec.name, live_only=True))
        assert zones == Counter({"us-east-1b": 2})


def test_cost_and_availability_orders():
    cost = two_providers(strategy="cost")
    assert [p.name for p, _, _ in cost.placements(prices={"a": 30.0, "b": 10.0})] == ["b", "a"]
    assert [p.name for p, _, _ in cost.placements(prices={"a": None, "b": 10.0})] == ["b", "a"]
    assert [p.name for p, _, _ in cost.placements(prices={})] == ["a", "b"]
    avail = fast_spec(strategy="availability", providers=[
        ProviderChoice(name="a", type="fake", instance_type="t", priority=1,
                       regions=["us-west-2"]),
        ProviderChoice(name="b", type="fake", instance_type="t", priority=2,
                       regions=["us-east-1", "us-central1"]),
        ProviderChoice(name="c", type="fake", instance_type="t", priority=3)])
    order = avail.placements(capacity={"a": [], "b": ["us-central1"], "c": None})
    assert [(p.name, r) for p, r, _ in order] == [
        ("b", "us-central1"), ("b", "us-east-1"), ("c", ""), ("a", "us-west-2")]


async def test_cost_strategy_uses_quoted_prices(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        plane.world.set_price("a", 30.0)
        plane.world.set_price("b", 12.5)
        spec = two_providers(strategy="cost", min_nodes=2)
        await start_pool(client, plane, spec)
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 2)
        assert where(plane.world, spec.name) == Counter({"b": 2})
