"""The fake cloud: instances live in a FakeWorld (SQLite), with injectable faults.

Honours idempotency keys (one node id, one machine), survives worker restarts, and fails
on demand: capacity errors, throttling, invalid requests, slow or never-finishing boots.
"""

from __future__ import annotations

import asyncio
import builtins
from datetime import UTC, datetime

from navarch.config.instance_types import ABSTRACT_INSTANCE_TYPES, gpu_shape
from navarch.contracts.cloud import (
    CloudErrorType,
    Instance,
    InstanceState,
    InstanceTypeInfo,
    ProvisionRequest,
)
from navarch.contracts.spec import ProviderChoice
from navarch.sim.fakeworld import CloudFault, FakeInstance, FakeWorld

from .cloud import ProviderError

DEFAULT_FAKE_GPUS = 8
DEFAULT_FAKE_MODEL = "H100"

_FAULT_TYPES = {
    "capacity": CloudErrorType.CAPACITY,
    "throttle": CloudErrorType.THROTTLED,
    "unavailable": CloudErrorType.TRANSIENT,  # a 5xx
    "invalid": CloudErrorType.INVALID_REQUEST,
}


class FakeCloudProvider:
    def __init__(self, world: FakeWorld, choice: ProviderChoice, *, boot_seconds: float = 0.5,
                 provision_delay: float = 0.0, agent_task_queue: str | None = None,
                 reboot_seconds: float | None = None):
        self.world = world
        # Set when the simulated hosts share one task queue (large simulations).
        self.agent_task_queue = agent_task_queue
        self.choice = choice
        self.boot_seconds = boot_seconds
        # Seconds the call takes after the machine exists, like a cloud API still waiting
        # on its operation: a worker killed then has made a machine it never reported.
        self.provision_delay = provision_delay
        self.reboot_seconds = reboot_seconds

    async def provision(self, request: ProvisionRequest) -> Instance:
        shape = gpu_shape(self.choice.instance_type)
        try:
            inst = await asyncio.to_thread(
                self.world.provision,
                node_id=request.node_id,
                pool=request.pool,
                provider=self.choice.name,
                instance_type=self.choice.instance_type,
                region=request.region or self.choice.region or "local",
                zone=request.zone or self.choice.zone or "",
                gpu_count=self.choice.gpu_count or (shape.count if shape else DEFAULT_FAKE_GPUS),
                gpu_model=shape.model if shape else DEFAULT_FAKE_MODEL,
                boot_seconds=self.boot_seconds,
                cluster=request.cluster_id,
            )
        except CloudFault as fault:
            raise ProviderError(_FAULT_TYPES[fault.kind],
                                f"fake cloud: {fault.kind} ({fault})") from None
        if self.provision_delay:
            await asyncio.sleep(self.provision_delay)
        return to_instance(inst).model_copy(update={"agent_task_queue": self.agent_task_queue})

    async def terminate(self, instance_id: str, region: str | None = None) -> bool:
        return await asyncio.to_thread(self.world.terminate, instance_id)

    async def reboot(self, instance_id: str, region: str | None = None) -> bool:
        """The machine boots again after `reboot_seconds` (None: the world's reboot time);
        faults a reboot heals go."""
        try:
            return await asyncio.to_thread(self.world.reboot, instance_id, self.reboot_seconds)
        except CloudFault as fault:
            raise ProviderError(_FAULT_TYPES[fault.kind],
                                f"fake cloud: {fault.kind} ({fault})") from None

    async def describe_type(self) -> InstanceTypeInfo:
        shape = gpu_shape(self.choice.instance_type)
        price = await asyncio.to_thread(self.world.price, self.choice.name)
        return InstanceTypeInfo(name=self.choice.instance_type,
                                gpu_count=self.choice.gpu_count or (shape.count if shape else None),
                                gpu_model=shape.model if shape else None, price_per_hour=price)

    async def list_types(self) -> list[InstanceTypeInfo]:
        """The abstract types (the fake cloud sells those), priced as the world says."""
        price = await asyncio.to_thread(self.world.price, self.choice.name)
        out = []
        for name in sorted(ABSTRACT_INSTANCE_TYPES):
            shape = gpu_shape(name)
            out.append(InstanceTypeInfo(name=name, gpu_count=shape.count if shape else None,
                                        gpu_model=shape.model if shape else None,
                                        price_per_hour=price if name == self.choice.instance_type
                                        else None))
        return out

    async def get(self, instance_id: str, region: str | None = None) -> Instance | None:
        inst = await asyncio.to_thread(self.world.get, instance_id)
        return to_instance(inst) if inst else None

    async def list(self, pool: str) -> list[Instance]:
        found = await asyncio.to_thread(self.world.instances, pool, live_only=True)
        return [to_instance(i) for i in found if i.provider == self.choice.name]

    async def list_managed(self, region: str) -> builtins.list[Instance]:
        """Every live machine of this provider in `region` ("": everywhere)."""
        found = await asyncio.to_thread(self.world.instances, None, live_only=True)
        return [to_instance(i) for i in found if i.provider == self.choice.name
                and (not region or i.region == region)]


def to_instance(inst: FakeInstance) -> Instance:
    return Instance(
        instance_id=inst.instance_id,
        node_id=inst.node_id,
        pool=inst.pool,
        provider=inst.provider,
        instance_type=inst.instance_type,
        region=inst.region,
        zone=inst.zone,
        state=InstanceState(inst.state),
        created_at=datetime.fromtimestamp(inst.created_at, UTC),
        private_ip="127.0.0.1",
        cluster=inst.cluster,
    )
