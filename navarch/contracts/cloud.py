"""The contract between workflows and cloud-provider activities: names, models, errors.

Workflows refer to activities by these names so they never import provider code.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field
from temporalio import activity

from navarch.contracts.base import StoredModel
from navarch.contracts.spec import ProviderChoice

PROVISION = "cloud.provision"
TERMINATE = "cloud.terminate"
GET_INSTANCE = "cloud.get_instance"
LIST_INSTANCES = "cloud.list_instances"
DESCRIBE_TYPE = "cloud.describe_instance_type"
LIST_TYPES = "cloud.list_instance_types"
REBOOT = "cloud.reboot"


class CloudErrorType(StrEnum):
    """The closed set of provider failures the workflows act on (ApplicationError types)."""

    CAPACITY = "CapacityError"  # no capacity / quota for this type here: try elsewhere
    THROTTLED = "ThrottledError"  # rate-limited: retry with back-off
    INVALID_REQUEST = "InvalidRequestError"  # bad image, zone, credentials: don't retry
    TRANSIENT = "TransientError"  # anything else that may pass: retry


class InstanceState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    STOPPING = "stopping"
    TERMINATED = "terminated"


class ProvisionRequest(StoredModel):
    node_id: str  # the idempotency key: one node id never makes two machines
    pool: str
    provider: ProviderChoice
    region: str | None = None
    zone: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    ssh_keys: list[str] = Field(default_factory=list)
    # The installation that owns the machine (tagged on it); empty: the worker's default,
    # derived from its Temporal namespace (`navarch.temporal.identity`).
    cluster_id: str = ""


class Instance(StoredModel):
    instance_id: str
    node_id: str
    pool: str
    provider: str
    instance_type: str
    region: str = ""
    zone: str = ""
    project: str = ""  # GCP: the project it lives in
    state: InstanceState
    created_at: datetime | None = None
    public_ip: str | None = None
    private_ip: str | None = None
    # The task queue this machine's agent polls, when it is not the node's own
    # (navarch-node-<node_id>): simulated hosts may share one.
    agent_task_queue: str | None = None
    # The installation tag on the machine ("" when it has none: made before tags existed).
    cluster: str = ""


class TerminateRequest(StoredModel):
    provider: ProviderChoice
    instance_id: str
    node_id: str = ""
    region: str = ""  # where the instance lives (its record's); empty: the provider's first


class ListRequest(StoredModel):
    provider: ProviderChoice
    pool: str


class InstanceTypeInfo(StoredModel):
    """What a provider says about one instance type; None where it does not say."""

    name: str
    gpu_count: int | None = None
    gpu_model: str | None = None
    price_per_hour: float | None = None  # USD, on demand
    available_regions: list[str] | None = None  # regions with capacity now; None: unknown
    vcpus: int | None = None
    memory_gib: float | None = None
    zones: list[str] | None = None  # where the type is offered (not live capacity)
    # "accelerator": a GPU to attach to a general machine type (GCE N1), gpu_count = the
    # most one machine takes.
    kind: Literal["machine", "accelerator"] = "machine"


# ------------------------------------------------------------------------ activities
# Each activity's signature, declared once under its stable name: workflows call these stubs
# (so mypy checks every call), workers register implementations under the same names; a
# stub itself never runs.


@activity.defn(name=PROVISION)
async def provision(request: ProvisionRequest) -> Instance:
    """Launch one machine for a node (idempotent on the node id)."""
    raise NotImplementedError


@activity.defn(name=TERMINATE)
async def terminate(request: TerminateRequest) -> bool:
    """Terminate a machine; True once it is gone."""
    raise NotImplementedError


@activity.defn(name=GET_INSTANCE)
async def get_instance(request: TerminateRequest) -> Instance | None:
    """One machine as the cloud sees it now (None: the cloud does not know it)."""
    raise NotImplementedError


@activity.defn(name=LIST_INSTANCES)
async def list_instances(request: ListRequest) -> list[Instance]:
    """The machines of a pool at one provider."""
    raise NotImplementedError


@activity.defn(name=DESCRIBE_TYPE)
async def describe_instance_type(choice: ProviderChoice) -> InstanceTypeInfo:
    """What a provider says about the instance type a choice names."""
    raise NotImplementedError


@activity.defn(name=LIST_TYPES)
async def list_instance_types(choice: ProviderChoice) -> list[InstanceTypeInfo]:
    """Every instance type a provider sells."""
    raise NotImplementedError


@activity.defn(name=REBOOT)
async def reboot(request: TerminateRequest) -> bool:
    """Reboot a machine through its cloud, where it lives; False when the cloud does not
    know it."""
    raise NotImplementedError
