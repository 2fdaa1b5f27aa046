"""Google Compute Engine through google-cloud-compute (REST transport).

The instance name is `nv-<node_id>` and the insert's `request_id` is derived from the node
id, so a retried provision finds (or re-sends) the same machine. Labels carry the pool, the
node id and `navarch-managed-by`. A2/A3/G2 types have their GPUs built in; scheduling is
`onHostMaintenance: TERMINATE` (GPUs cannot live-migrate), spot when asked. Credentials are
Application Default Credentials in the worker. Capacity and quota errors (reported on the
zone operation) become CapacityError.
"""

from __future__ import annotations

import asyncio
import builtins
import os
import re
import uuid
from datetime import UTC, datetime
from typing import Any

from navarch.config.instance_types import gcp_accelerator_model
from navarch.contracts.cloud import (
    CloudErrorType,
    Instance,
    InstanceState,
    InstanceTypeInfo,
    ProvisionRequest,
)
from navarch.contracts.spec import ProviderChoice

from .cloud import ProviderError

DEFAULT_IMAGE = "projects/deeplearning-platform-release/global/images/family/common-cu124-debian-11"
_NAMESPACE = uuid.UUID("6d1c2b8e-5b7a-4f3e-9a61-2c0f6e7d8a91")
_CAPACITY = ("ZONE_RESOURCE_POOL_EXHAUSTED", "QUOTA_EXCEEDED", "RESOURCE_POOL_EXHAUSTED",
             "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS", "STOCKOUT")
_GPU_FAMILIES = r"(a2|a3|a4|g2)-.*"
_N1_ACCELERATORS = r"nvidia-tesla-(t4|v100|p100|p4|k80)"
_STATES = {"PROVISIONING": InstanceState.PENDING, "STAGING": InstanceState.PENDING,
           "RUNNING": InstanceState.RUNNING, "STOPPING": InstanceState.STOPPING,
           "SUSPENDING": InstanceState.STOPPING, "TERMINATED": InstanceState.TERMINATED}


def instance_name(node_id: str) -> str:
    return f"nv-{node_id}".lower()


def classify_text(text: str) -> CloudErrorType:
    if any(code in text for code in _CAPACITY):
        return CloudErrorType.CAPACITY
    return CloudErrorType.TRANSIENT


class GcpProvider:
    def __init__(self, choice: ProviderChoice, *, user_data: Any = None,
                 startup_script: Any = None) -> None:
        from google.api_core.client_options import ClientOptions
        from google.cloud import compute_v1

        if not choice.project:
            raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                f"gcp provider {choice.name!r} needs a `project`")
        self.choice = choice
        self.project = choice.project
        endpoint = os.environ.get("NAVARCH_GCP_ENDPOINT")
        kwargs: dict[str, Any] = {"transport": "rest"}
        if endpoint:  # a local Compute API (tests): no Google credentials involved
            from google.auth.credentials import AnonymousCredentials

            kwargs["client_options"] = ClientOptions(api_endpoint=endpoint)
            anonymous: Any = AnonymousCredentials  # untyped in google-auth
            kwargs["credentials"] = anonymous()
        self.instances = compute_v1.InstancesClient(**kwargs)
        self.operations = compute_v1.ZoneOperationsClient(**kwargs)
        self.machine_types = compute_v1.MachineTypesClient(**kwargs)
        self.accelerator_types = compute_v1.AcceleratorTypesClient(**kwargs)
        self._user_data = user_data
        self._startup_script = startup_script

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        from google.api_core import exceptions as gexc

        try:
            return await asyncio.to_thread(fn, **kwargs)
        except gexc.NotFound:
            raise
        except gexc.TooManyRequests as exc:
            raise ProviderError(CloudErrorType.THROTTLED, f"GCP: {exc.message}", "429") from None
        except (gexc.BadRequest, gexc.Forbidden, gexc.Unauthorized) as exc:
            kind = classify_text(str(exc))
            if kind is CloudErrorType.TRANSIENT:
                kind = CloudErrorType.INVALID_REQUEST
            raise ProviderError(kind, f"GCP: {exc.message}", str(exc.code)) from None
        except gexc.GoogleAPICallError as exc:
            raise ProviderError(classify_text(str(exc)), f"GCP: {exc.message}",
                                str(exc.code)) from None
        except Exception as exc:  # auth and transport errors before any HTTP answer
            if "credentials" in str(exc).lower():
                raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                    f"GCP credentials: {exc}") from None
            raise ProviderError(CloudErrorType.TRANSIENT, f"GCP: {exc}") from None

    def _zone(self, request: ProvisionRequest) -> str:
        zone = request.zone or self.choice.zone or (self.choice.zones[0] if self.choice.zones
                                                   else None)
        region = request.region or self.choice.region
        if zone is None and region:
            zone = f"{region}-a"
        if zone is None:
            raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                "GCP needs a zone (provider `zone`, pool `zones` or a region)")
        return zone

    async def _get(self, zone: str, name: str) -> Any | None:
        from google.api_core import exceptions as gexc

        try:
            return await self._call(self.instances.get, project=self.project, zone=zone,
                                    instance=name)
        except gexc.NotFound:
            return None

    async def provision(self, request: ProvisionRequest) -> Instance:
        from google.api_core import exceptions as gexc
        from google.cloud import compute_v1

        zone = self._zone(request)
        name = instance_name(request.node_id)
        # A machine made for this node in any zone the provider uses (an earlier attempt
        # elsewhere, an insert that failed after GCE made it) is the node's machine.
        for where in dict.fromkeys([zone, *self.choice.zones,
                                    *([self.choice.zone] if self.choice.zone else [])]):
            existing = await self._get(where, name)
            if existing is not None and _enum_name(existing.status) != "TERMINATED":
                return self._instance(existing, where)
        labels = {"navarch-node-id": request.node_id, "navarch-pool": request.pool,
                  "navarch-managed-by": "navarch",
                  **({"navarch-cluster": request.cluster_id} if request.cluster_id else {}),
                  **{k.lower(): v.lower() for k, v in request.labels.items()}}
        metadata = []
        user_data = self._user_data(request) if self._user_data else None
        if user_data:
            metadata.append(compute_v1.Items(key="user-data", value=user_data))
        script = self._startup_script(request) if self._startup_script else None
        if script:  # images without cloud-init (e.g. Debian DLVMs) run this instead
            metadata.append(compute_v1.Items(key="startup-script", value=script))
        if request.ssh_keys:
            metadata.append(compute_v1.Items(key="ssh-keys", value="\n".join(request.ssh_keys)))
        resource = compute_v1.Instance(
            name=name,
            machine_type=f"zones/{zone}/machineTypes/{self.choice.instance_type}",
            labels=labels,
            disks=[compute_v1.AttachedDisk(
                boot=True, auto_delete=True,
                initialize_params=compute_v1.AttachedDiskInitializeParams(
                    source_image=self.choice.image or DEFAULT_IMAGE, disk_size_gb=200),
            )],
            network_interfaces=[compute_v1.NetworkInterface(
                network="global/networks/default",
                access_configs=[compute_v1.AccessConfig(name="External NAT",
                                                        type_="ONE_TO_ONE_NAT")],
            )],
            guest_accelerators=[compute_v1.AcceleratorConfig(
                accelerator_type=f"zones/{zone}/acceleratorTypes/{self.choice.accelerator_type}",
                accelerator_count=self.choice.accelerator_count,
            )] if self.choice.accelerator_type else [],
            metadata=compute_v1.Metadata(items=metadata),
            scheduling=compute_v1.Scheduling(
                on_host_maintenance="TERMINATE", automatic_restart=not self.choice.spot,
                provisioning_model="SPOT" if self.choice.spot else "STANDARD",
            ),
        )
        # Per zone: a retry in the same zone is deduplicated by GCE, an attempt in another
        # zone after a refusal is a different request.
        request_id = str(uuid.uuid5(_NAMESPACE, f"{request.node_id}/{zone}"))
        try:
            operation = await self._call(self.instances.insert_unary,
                                         request=compute_v1.InsertInstanceRequest(
                                             project=self.project, zone=zone,
                                             instance_resource=resource,
                                             request_id=request_id))
        except gexc.Conflict:
            operation = None  # made by an earlier attempt: fall through to the lookup
        if operation is not None:
            await self._wait(zone, operation)
        made = await self._get(zone, name)
        if made is None:
            raise ProviderError(CloudErrorType.TRANSIENT, f"GCP: {name} not found after insert")
        return self._instance(made, zone)

    async def _wait(self, zone: str, operation: Any) -> None:
        while _enum_name(getattr(operation, "status", "DONE")) != "DONE":
            operation = await self._call(self.operations.wait, project=self.project, zone=zone,
                                         operation=operation.name)
        errors = list(operation.error.errors) if operation.error else []
        if errors:
            text = "; ".join(f"{e.code}: {e.message}" for e in errors)
            kind = classify_text(text)
            if kind is CloudErrorType.TRANSIENT and any("INVALID" in e.code or "NOT_FOUND"
                                                        in e.code for e in errors):
                kind = CloudErrorType.INVALID_REQUEST
            raise ProviderError(kind, f"GCP: {text}", errors[0].code)

    async def terminate(self, instance_id: str, region: str | None = None) -> bool:
        return await self._instance_operation(self.instances.delete_unary, instance_id)

    async def reboot(self, instance_id: str, region: str | None = None) -> bool:
        """instances.reset, awaited."""
        return await self._instance_operation(self.instances.reset_unary, instance_id)

    async def _instance_operation(self, method: Any, instance_id: str) -> bool:
        """Run an operation on one instance in its zone (the id carries it: "zone/name")
        and wait for it; False when GCE does not know the instance there."""
        from google.api_core import exceptions as gexc

        zone, _, name = instance_id.partition("/")
        try:
            operation = await self._call(method, project=self.project, zone=zone, instance=name)
        except gexc.NotFound:
            return False
        await self._wait(zone, operation)
        return True

    async def get(self, instance_id: str, region: str | None = None) -> Instance | None:
        zone, _, name = instance_id.partition("/")
        found = await self._get(zone, name)
        return self._instance(found, zone) if found is not None else None

    async def list(self, pool: str) -> list[Instance]:
        pages = await self._call(self.instances.aggregated_list, request={
            "project": self.project, "filter": f'labels.navarch-pool = "{pool}"'})
        out = []
        for zone_path, scoped in await asyncio.to_thread(lambda: list(pages)):
            for inst in scoped.instances:
                if inst.labels.get("navarch-pool") == pool:
                    out.append(self._instance(inst, zone_path.rsplit("/", 1)[-1]))
        return out

    async def list_managed(self, region: str) -> builtins.list[Instance]:
        pages = await self._call(self.instances.aggregated_list, request={
            "project": self.project, "filter": 'labels.navarch-managed-by = "navarch"'})
        out = []
        for zone_path, scoped in await asyncio.to_thread(lambda: list(pages)):
            zone = zone_path.rsplit("/", 1)[-1]
            if region and zone.rsplit("-", 1)[0] != region:
                continue
            for inst in scoped.instances:
                if (inst.labels.get("navarch-managed-by") == "navarch"
                        and _enum_name(inst.status) != "TERMINATED"):
                    out.append(self._instance(inst, zone))
        return out

    async def describe_type(self) -> InstanceTypeInfo:
        """GPU info from the type table (A2/A3/G2 have their GPUs built in) or the attached
        accelerators (N1); GCE gives no price or live capacity here."""
        shape = self.choice.gpu_shape()
        return InstanceTypeInfo(name=self.choice.instance_type,
                                gpu_count=shape.count if shape else None,
                                gpu_model=shape.model if shape else None)

    async def list_types(self) -> builtins.list[InstanceTypeInfo]:
        """GPU machine types (A2/A3/A4/G2: `accelerators` built in) and the GPUs N1 machines
        can attach, in the choice's zones (else every zone), with the zones offering each.
        GCE publishes prices only through the Cloud Billing catalog: left unknown."""
        zones = self.choice.zones or ([self.choice.zone] if self.choice.zone else [])

        def collect(client: Any, name_filter: str) -> list[tuple[str, Any]]:
            if zones:
                return [(z, item) for z in zones
                        for item in client.list(project=self.project, zone=z)]
            pages = client.aggregated_list(request={"project": self.project,
                                                    "filter": name_filter})
            return [(where.rsplit("/", 1)[-1], item) for where, scoped in pages
                    for item in (getattr(scoped, "machine_types", None)
                                 or getattr(scoped, "accelerator_types", None) or [])]

        machines = await self._call(collect, client=self.machine_types,
                                    name_filter=f'name eq "{_GPU_FAMILIES}"')
        accelerators = await self._call(collect, client=self.accelerator_types,
                                        name_filter=f'name eq "{_N1_ACCELERATORS}"')
        found: dict[str, InstanceTypeInfo] = {}
        for zone, mt in machines:
            attached = list(mt.accelerators)
            if not attached:
                continue
            info = found.setdefault(mt.name, InstanceTypeInfo(
                name=mt.name, gpu_count=sum(a.guest_accelerator_count for a in attached),
                gpu_model=gcp_accelerator_model(attached[0].guest_accelerator_type),
                vcpus=mt.guest_cpus or None,
                memory_gib=round(mt.memory_mb / 1024, 1) if mt.memory_mb else None, zones=[]))
            assert info.zones is not None
            info.zones.append(zone)
        for zone, at in accelerators:
            if not re.fullmatch(_N1_ACCELERATORS, at.name):
                continue
            info = found.setdefault(at.name, InstanceTypeInfo(
                name=at.name, kind="accelerator", gpu_count=at.maximum_cards_per_instance or None,
                gpu_model=gcp_accelerator_model(at.name), zones=[]))
            assert info.zones is not None
            info.zones.append(zone)
        for info in found.values():
            info.zones = sorted(set(info.zones or []))
        return sorted(found.values(), key=lambda t: (t.kind, t.name))

    def _instance(self, inst: Any, zone: str) -> Instance:
        labels = dict(inst.labels)
        nic = inst.network_interfaces[0] if inst.network_interfaces else None
        public = (nic.access_configs[0].nat_i_p if nic and nic.access_configs else None) or None
        return Instance(
            instance_id=f"{zone}/{inst.name}", node_id=labels.get("navarch-node-id", ""),
            pool=labels.get("navarch-pool", ""), provider=self.choice.name,
            instance_type=str(inst.machine_type).rsplit("/", 1)[-1] or self.choice.instance_type,
            region=zone.rsplit("-", 1)[0], zone=zone, project=self.project,
            state=_STATES.get(_enum_name(inst.status), InstanceState.PENDING),
            public_ip=public, private_ip=(nic.network_i_p if nic else None) or None,
            created_at=_timestamp(getattr(inst, "creation_timestamp", "")),
            cluster=labels.get("navarch-cluster", ""),
        )


def _timestamp(text: str) -> datetime | None:
    """GCE's RFC 3339 creationTimestamp ("2026-12-02T03:00:00.000-08:00"), or None."""
    try:
        return datetime.fromisoformat(text).astimezone(UTC) if text else None
    except ValueError:
        return None


def _enum_name(value: Any) -> str:
    """A proto enum's name ("DONE"), or a plain string as it is."""
    return str(getattr(value, "name", value))
