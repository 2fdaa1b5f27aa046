"""AWS EC2 through boto3.

Idempotency: the node id is looked up as a tag before launching (moto, used in tests,
ignores ClientToken) and also sent as ClientToken, which real EC2 honours for retries.
Credentials come from boto3's standard chain (profile, environment, instance role); they
never enter a request or a result. Errors map onto the closed set the workflows act on.
"""

from __future__ import annotations

import asyncio
import builtins
import hashlib
import os
from datetime import UTC
from typing import Any

from navarch.contracts.cloud import (
    CloudErrorType,
    Instance,
    InstanceState,
    InstanceTypeInfo,
    ProvisionRequest,
)
from navarch.contracts.spec import ProviderChoice

from .cloud import ProviderError

# The AWS Deep Learning Base GPU AMI (Ubuntu 22.04), through its public SSM parameter.
DLAMI_PARAMETER = (
    "/aws/service/deeplearning/ami/x86_64/base-oss-nvidia-driver-gpu-ubuntu-22.04/latest/ami-id"
)
TAG_NODE, TAG_POOL, TAG_MANAGED = "navarch:node-id", "navarch:pool", "navarch:managed-by"
TAG_CLUSTER = "navarch:cluster"  # the installation (navarch.temporal.identity)
_NOT_GONE = ["pending", "running", "stopping", "stopped"]

_CAPACITY = {"InsufficientInstanceCapacity", "InstanceLimitExceeded", "Unsupported",
             "VcpuLimitExceeded", "MaxSpotInstanceCountExceeded", "InsufficientCapacity",
             "SpotMaxPriceTooLow", "InsufficientHostCapacity"}
_THROTTLED = {"RequestLimitExceeded", "Throttling", "ThrottlingException"}
_INVALID_PREFIXES = ("InvalidAMIID", "InvalidParameter", "InvalidSubnetID", "InvalidGroup",
                     "InvalidKeyPair", "UnauthorizedOperation", "AuthFailure",
                     "InvalidClientTokenId", "OptInRequired", "InvalidInstanceType",
                     "InvalidAvailabilityZone", "MissingParameter")
_STATES = {"pending": InstanceState.PENDING, "running": InstanceState.RUNNING,
           "shutting-down": InstanceState.STOPPING, "stopping": InstanceState.STOPPING,
           "stopped": InstanceState.STOPPING, "terminated": InstanceState.TERMINATED}


def classify(code: str) -> CloudErrorType:
    if code in _CAPACITY:
        return CloudErrorType.CAPACITY
    if code in _THROTTLED:
        return CloudErrorType.THROTTLED
    if code.startswith(_INVALID_PREFIXES):
        return CloudErrorType.INVALID_REQUEST
    return CloudErrorType.TRANSIENT


class AwsProvider:
    def __init__(self, choice: ProviderChoice, *, endpoint_url: str | None = None,
                 user_data: Any = None) -> None:
        import boto3  # only the control plane needs it (navarch[aws])

        self.choice = choice
        self.region = choice.region or (choice.regions[0] if choice.regions else None)
        self.endpoint_url = endpoint_url or os.environ.get("NAVARCH_AWS_ENDPOINT_URL")
        self._session = boto3.session.Session()
        self._clients: dict[str, Any] = {}
        self._user_data = user_data  # callable(request) -> str | None

    def client(self, region: str | None = None) -> Any:
        name = region or self.region or self._session.region_name or "us-east-1"
        if name not in self._clients:
            self._clients[name] = self._session.client("ec2", region_name=name,
                                                        endpoint_url=self.endpoint_url)
        return self._clients[name]

    async def _call(self, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

        try:
            return await asyncio.to_thread(fn, **kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "Unknown")
            message = exc.response.get("Error", {}).get("Message", str(exc))
            raise ProviderError(classify(code), f"AWS {code}: {message}", code) from None
        except NoCredentialsError:
            raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                "no AWS credentials in the worker (profile, environment or "
                                "instance role)") from None
        except BotoCoreError as exc:
            raise ProviderError(CloudErrorType.TRANSIENT, f"AWS: {exc}") from None

    async def _find_by_node(self, node_id: str, region: str | None) -> dict[str, Any] | None:
        found = await self._call(self.client(region).describe_instances, Filters=[
            {"Name": f"tag:{TAG_NODE}", "Values": [node_id]},
            {"Name": "instance-state-name", "Values": _NOT_GONE},
        ])
        for reservation in found.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                return dict(inst)
        return None

    async def _ami(self, region: str | None, ami: str | None) -> str:
        if ami:
            return ami
        ssm = self._session.client("ssm", region_name=region or self.region,
                                   endpoint_url=self.endpoint_url)
        answer = await self._call(ssm.get_parameter, Name=DLAMI_PARAMETER)
        return str(answer["Parameter"]["Value"])

    async def provision(self, request: ProvisionRequest) -> Instance:
        region = request.region or self.region
        # A machine made for this node in any region the provider uses (an earlier attempt
        # elsewhere, a call that failed after the cloud created it) is the node's machine.
        for where in dict.fromkeys([region, *self.choice.regions]):
            existing = await self._find_by_node(request.node_id, where)
            if existing is not None:
                return self._instance(existing, where)
        tags = [{"Key": TAG_NODE, "Value": request.node_id},
                {"Key": TAG_POOL, "Value": request.pool},
                {"Key": TAG_MANAGED, "Value": "navarch"},
                *([{"Key": TAG_CLUSTER, "Value": request.cluster_id}] if request.cluster_id
                  else []),
                {"Key": "Name", "Value": f"navarch-{request.pool}-{request.node_id[:8]}"},
                *({"Key": k, "Value": v} for k, v in sorted(request.labels.items()))]
        try:  # the AMI, subnet and security groups of the region it launches in
            ids = self.choice.ids_for(region or "")
        except ValueError as exc:
            raise ProviderError(CloudErrorType.INVALID_REQUEST, str(exc)) from None
        params: dict[str, Any] = {
            "ImageId": await self._ami(region, ids.ami),
            "InstanceType": self.choice.instance_type,
            "MinCount": 1, "MaxCount": 1,
            # Per placement: a token reused in another zone after a capacity refusal would
            # answer IdempotentParameterMismatch.
            "ClientToken": hashlib.sha256(
                f"{request.node_id}/{region or ''}/{request.zone or ''}".encode()
            ).hexdigest()[:64],
            "TagSpecifications": [{"ResourceType": "instance", "Tags": tags}],
        }
        if request.zone:
            params["Placement"] = {"AvailabilityZone": request.zone}
        if ids.subnet_id:
            params["SubnetId"] = ids.subnet_id
        if ids.security_group_ids:
            params["SecurityGroupIds"] = list(ids.security_group_ids)
        if self.choice.key_name:
            params["KeyName"] = self.choice.key_name
        if self.choice.iam_instance_profile:
            params["IamInstanceProfile"] = {"Name": self.choice.iam_instance_profile}
        if self.choice.spot:
            params["InstanceMarketOptions"] = {"MarketType": "spot"}
        user_data = self._user_data(request) if self._user_data else None
        if user_data:
            params["UserData"] = user_data
        launched = await self._call(self.client(region).run_instances, **params)
        return self._instance(launched["Instances"][0], region)

    async def terminate(self, instance_id: str, region: str | None = None) -> bool:
        try:
            await self._call(self.client(region).terminate_instances, InstanceIds=[instance_id])
        except ProviderError as exc:
            if exc.code.startswith("InvalidInstanceID"):  # not found: nothing to terminate
                return False
            raise
        return True

    async def reboot(self, instance_id: str, region: str | None = None) -> bool:
        """RebootInstances in the instance's own region (elsewhere it is not found)."""
        try:
            await self._call(self.client(region).reboot_instances, InstanceIds=[instance_id])
        except ProviderError as exc:
            if exc.code.startswith("InvalidInstanceID"):
                return False
            raise
        return True

    async def get(self, instance_id: str, region: str | None = None) -> Instance | None:
        try:
            found = await self._call(self.client(region).describe_instances,
                                     InstanceIds=[instance_id])
        except ProviderError as exc:
            if exc.code.startswith("InvalidInstanceID"):
                return None
            raise
        for reservation in found.get("Reservations", []):
            for inst in reservation.get("Instances", []):
                return self._instance(inst, region or self.region)
        return None

    async def list(self, pool: str) -> list[Instance]:
        """The pool's machines in every region the provider uses."""
        out: list[Instance] = []
        for where in dict.fromkeys([self.region, *self.choice.regions]):
            found = await self._call(self.client(where).describe_instances, Filters=[
                {"Name": f"tag:{TAG_POOL}", "Values": [pool]},
                {"Name": f"tag:{TAG_MANAGED}", "Values": ["navarch"]},
                {"Name": "instance-state-name", "Values": ["pending", "running"]},
            ])
            out += [self._instance(i, where) for r in found.get("Reservations", [])
                    for i in r.get("Instances", [])]
        return out

    async def list_managed(self, region: str) -> builtins.list[Instance]:
        def pages() -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for page in self.client(region or None).get_paginator(
                    "describe_instances").paginate(Filters=[
                        {"Name": f"tag:{TAG_MANAGED}", "Values": ["navarch"]},
                        {"Name": "instance-state-name", "Values": _NOT_GONE}]):
                out.extend(i for r in page.get("Reservations", []) for i in r["Instances"])
            return out

        where = region or self.region or ""
        return [self._instance(i, where) for i in await self._call(pages)]

    async def describe_type(self) -> InstanceTypeInfo:
        """GPU info from DescribeInstanceTypes; EC2 gives no price or live capacity here."""
        found = await self._call(self.client().describe_instance_types,
                                 InstanceTypes=[self.choice.instance_type])
        gpus = (found.get("InstanceTypes") or [{}])[0].get("GpuInfo", {}).get("Gpus", [])
        return InstanceTypeInfo(name=self.choice.instance_type,
                                gpu_count=sum(g.get("Count", 0) for g in gpus) or None,
                                gpu_model=gpus[0].get("Name") if gpus else None)

    async def list_types(self) -> builtins.list[InstanceTypeInfo]:
        """GPU types from DescribeInstanceTypes (every page: EC2 has no "has a GPU" filter)
        and the zones offering each from DescribeInstanceTypeOfferings. EC2 publishes
        prices only through the separate Pricing API, so the price is left unknown."""

        def pages(method: str, key: str, **kwargs: Any) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for page in self.client().get_paginator(method).paginate(**kwargs):
                out.extend(page.get(key, []))
            return out

        types = await self._call(pages, method="describe_instance_types", key="InstanceTypes")
        offers = await self._call(pages, method="describe_instance_type_offerings",
                                  key="InstanceTypeOfferings",
                                  LocationType="availability-zone")
        zones: dict[str, list[str]] = {}
        for offer in offers:
            zones.setdefault(offer["InstanceType"], []).append(offer["Location"])
        out = []
        for itype in types:
            gpus = itype.get("GpuInfo", {}).get("Gpus", [])
            count = sum(g.get("Count", 0) for g in gpus)
            if not count:  # no GPU, or a fraction of one (g6f): not a whole-GPU machine
                continue
            name = itype["InstanceType"]
            memory = itype.get("MemoryInfo", {}).get("SizeInMiB")
            out.append(InstanceTypeInfo(
                name=name, gpu_count=count, gpu_model=gpus[0].get("Name"),
                vcpus=itype.get("VCpuInfo", {}).get("DefaultVCpus"),
                memory_gib=round(memory / 1024, 1) if memory else None,
                zones=sorted(zones.get(name, []))))
        return sorted(out, key=lambda t: t.name)

    def _instance(self, inst: dict[str, Any], region: str | None) -> Instance:
        tags = {t["Key"]: t["Value"] for t in inst.get("Tags", [])}
        launched = inst.get("LaunchTime")
        return Instance(
            instance_id=inst["InstanceId"],
            node_id=tags.get(TAG_NODE, ""),
            pool=tags.get(TAG_POOL, ""),
            provider=self.choice.name,
            instance_type=inst.get("InstanceType", self.choice.instance_type),
            region=region or "",
            zone=inst.get("Placement", {}).get("AvailabilityZone", ""),
            state=_STATES.get(inst.get("State", {}).get("Name", ""), InstanceState.PENDING),
            created_at=launched.astimezone(UTC) if launched is not None else None,
            public_ip=inst.get("PublicIpAddress"),
            private_ip=inst.get("PrivateIpAddress"),
            cluster=tags.get(TAG_CLUSTER, ""),
        )
