"""Autoscaling end to end on the dev server: simulated hosts run the real agent activities,
GPU utilization and process counts travel in their watch_health heartbeats, the metrics
activity reads them, and the pool scales down the right node."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from navarch.config.schema import AutoscalingConfig
from navarch.contracts.pool import ScaleInput

from lifecycle_helpers import control_plane, eventually, fast_spec, pool_status, start_pool


async def test_scale_down_retires_an_idle_node_by_the_agents_utilization(dev_env, tmp_path: Path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=3, max_nodes=3, cooldown=timedelta(seconds=1),
                         autoscale_interval=timedelta(seconds=1),
                         autoscaling=AutoscalingConfig(type="reactive", scale_up_at=80,
                                                       scale_down_at=40))
        handle = await start_pool(client, plane, spec)
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.ready == 3, within=60, what="three ready nodes")
        # The three started together (same creation time), so without the idle rule the
        # first of them would go: that one gets the work.
        busy = status.nodes[0].node_id
        idle = {n.node_id for n in status.nodes[1:]}
        for gpu in range(8):  # every GPU of the busy node: 90% in the fake backend
            plane.world.add_process(busy, 1000 + gpu, gpu_index=gpu, name="train")
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.utilization == 30.0, within=60,
                                  what="mean utilization 30% (one busy node of three)")
        # The same evaluation took the 30% sample and decided on it.
        assert status.last_evaluation == "utilization 30.0% < 40% but at minimum 3"
        # Allow the pool to shrink: 30% < 40% -> one node goes, an idle one.
        await handle.signal("scale", ScaleInput(min_nodes=1))
        status = await eventually(
            lambda: pool_status(client, spec.name),
            lambda s: s.target == 2 and s.counts.get("ready", 0) == 2, within=60,
            what="the pool down to two ready nodes")
        retired = [e.detail.split(" ")[0] for e in status.events if e.kind == "retire"]
        assert len(retired) == 1 and retired[0] in idle
        assert status.decisions[-1].reason == "utilization 30.0% < 40%"
        assert status.decisions[-1].utilization == 30.0
        # Two left, one busy: 45% holds the size.
        status = await eventually(lambda: pool_status(client, spec.name),
                                  lambda s: s.utilization == 45.0, within=60,
                                  what="45% across the two that are left")
        assert status.target == 2
        assert {n.node_id for n in status.nodes if n.state.value == "ready"} == (
            idle - set(retired)) | {busy}
        await handle.terminate()
