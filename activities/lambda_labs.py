"""Lambda Cloud through its public REST API (v1), with `requests`.

An instance is named `nv-<pool>-<node_id>` (pool cut to 20 characters), which makes the
node id the idempotency key (looked up by name before launching) and lets `list(pool)` find
a pool's machines; its tags carry the node id, the pool and the installation
(`navarch-cluster`), which the orphan sweep reads. The API key comes only from the worker's
environment (`LAMBDA_API_KEY`, or the variable named by the provider's `api_key_env`).
"""

from __future__ import annotations

import asyncio
import builtins
import os
from typing import Any

from navarch.contracts.cloud import (
    CloudErrorType,
    Instance,
    InstanceState,
    InstanceTypeInfo,
    ProvisionRequest,
)
from navarch.contracts.spec import ProviderChoice
from navarch.redact import excerpt

from .cloud import ProviderError

DEFAULT_API_URL = "https://cloud.lambdalabs.com/api/v1"
REQUEST_TIMEOUT = 30.0
_STATES = {"booting": InstanceState.PENDING, "active": InstanceState.RUNNING,
           "unhealthy": InstanceState.RUNNING, "terminating": InstanceState.STOPPING,
           "terminated": InstanceState.TERMINATED}


TAG_NODE, TAG_POOL, TAG_CLUSTER = "navarch-node-id", "navarch-pool", "navarch-cluster"


def instance_name(pool: str, node_id: str) -> str:
    return f"nv-{pool[:20]}-{node_id}"


def classify(status: int, code: str) -> CloudErrorType:
    if "insufficient-capacity" in code or "quota-exceeded" in code:
        return CloudErrorType.CAPACITY
    if status == 429:
        return CloudErrorType.THROTTLED
    if status in (400, 401, 403, 404, 422) or code.startswith(("global/invalid", "global/unauth")):
        return CloudErrorType.INVALID_REQUEST
    return CloudErrorType.TRANSIENT


class LambdaProvider:
    def __init__(self, choice: ProviderChoice, *, user_data: Any = None) -> None:
        import requests  # the control plane's [lambda] extra

        self.choice = choice
        self.base = os.environ.get("NAVARCH_LAMBDA_API_URL", DEFAULT_API_URL).rstrip("/")
        self._http = requests.Session()
        self._user_data = user_data

    def _key(self) -> str:
        var = self.choice.api_key_env or "LAMBDA_API_KEY"
        key = os.environ.get(var)
        if not key:
            raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                f"{var} is not set in the worker's environment")
        return key

    def _request(self, method: str, path: str, body: Any = None) -> Any:
        import requests

        try:
            resp = self._http.request(method, f"{self.base}{path}", json=body,
                                      headers={"Authorization": f"Bearer {self._key()}"},
                                      timeout=REQUEST_TIMEOUT)
        except requests.RequestException as exc:
            raise ProviderError(CloudErrorType.TRANSIENT, f"Lambda API: {exc}") from None
        try:
            payload = resp.json()
        except ValueError:
            payload = {}
        if resp.status_code >= 400:
            error = payload.get("error", {}) if isinstance(payload, dict) else {}
            code = str(error.get("code", f"http/{resp.status_code}"))
            message = excerpt(str(error.get("message", resp.text)), [self._key()])
            raise ProviderError(classify(resp.status_code, code),
                                f"Lambda {code}: {message}", code)
        return payload.get("data") if isinstance(payload, dict) else None

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        return await asyncio.to_thread(self._request, method, path, body)

    async def provision(self, request: ProvisionRequest) -> Instance:
        name = instance_name(request.pool, request.node_id)
        for inst in await self._call("GET", "/instances") or []:
            if inst.get("name") == name and inst.get("status") != "terminated":
                return self._instance(inst, request.pool, request.node_id)
        region = request.region or self.choice.region or (
            self.choice.regions[0] if self.choice.regions else None)
        if not region:
            raise ProviderError(CloudErrorType.INVALID_REQUEST,
                                "Lambda needs a region (pool `region` or provider `regions`)")
        body: dict[str, Any] = {
            "region_name": region,
            "instance_type_name": self.choice.instance_type,
            "ssh_key_names": list(request.ssh_keys),
            "quantity": 1,
            "name": name,
            "tags": [{"key": TAG_NODE, "value": request.node_id},
                     {"key": TAG_POOL, "value": request.pool},
                     *([{"key": TAG_CLUSTER, "value": request.cluster_id}]
                       if request.cluster_id else [])],
        }
        user_data = self._user_data(request) if self._user_data else None
        if user_data:
            body["user_data"] = user_data
        launched = await self._call("POST", "/instance-operations/launch", body)
        ids = (launched or {}).get("instance_ids") or []
        if not ids:
            raise ProviderError(CloudErrorType.TRANSIENT, "Lambda launch returned no instance")
        inst = await self._call("GET", f"/instances/{ids[0]}")
        return self._instance(inst, request.pool, request.node_id)

    async def terminate(self, instance_id: str, region: str | None = None) -> bool:
        return await self._operation("terminate", "terminated_instances", instance_id)

    async def reboot(self, instance_id: str, region: str | None = None) -> bool:
        return await self._operation("restart", "restarted_instances", instance_id)

    async def _operation(self, name: str, answer: str, instance_id: str) -> bool:
        """An instance operation (Lambda's ids are global: no region to act in); False
        when Lambda does not know the instance."""
        try:
            done = await self._call("POST", f"/instance-operations/{name}",
                                    {"instance_ids": [instance_id]})
        except ProviderError as exc:
            if "does-not-exist" in exc.code or "not-found" in exc.code:
                return False
            raise
        return bool((done or {}).get(answer))

    async def get(self, instance_id: str, region: str | None = None) -> Instance | None:
        try:
            inst = await self._call("GET", f"/instances/{instance_id}")
        except ProviderError as exc:
            if "does-not-exist" in exc.code or exc.code == "http/404":
                return None
            raise
        return self._instance(inst, "", "") if inst else None

    async def describe_type(self) -> InstanceTypeInfo:
        types = await self._call("GET", "/instance-types") or {}
        entry = types.get(self.choice.instance_type)
        if entry is None:
            return InstanceTypeInfo(name=self.choice.instance_type, available_regions=[])
        return _type_info(self.choice.instance_type, entry)

    async def list_types(self) -> list[InstanceTypeInfo]:
        """Every type Lambda sells, with its price and the regions with capacity now."""
        types = await self._call("GET", "/instance-types") or {}
        return sorted((_type_info(str(name), entry) for name, entry in types.items()
                       if isinstance(entry, dict)), key=lambda t: t.name)

    async def list(self, pool: str) -> list[Instance]:
        prefix = f"nv-{pool[:20]}-"
        return [self._instance(i, pool, str(i.get("name", ""))[len(prefix):])
                for i in await self._call("GET", "/instances") or []
                if str(i.get("name", "")).startswith(prefix)
                and i.get("status") != "terminated"]

    async def list_managed(self, region: str) -> builtins.list[Instance]:
        """Lambda's listing is global: the machines named or tagged by Navarch, in
        `region` ("": all)."""
        out = []
        for inst in await self._call("GET", "/instances") or []:
            tags = _tags(inst)
            named = str(inst.get("name", "")).startswith("nv-")
            if inst.get("status") == "terminated" or not (named or TAG_NODE in tags):
                continue
            found = self._instance(inst, tags.get(TAG_POOL, ""), tags.get(TAG_NODE, ""))
            if not region or found.region == region:
                out.append(found)
        return out

    def _instance(self, inst: dict[str, Any], pool: str, node_id: str) -> Instance:
        itype = inst.get("instance_type") or {}
        region = inst.get("region") or {}
        tags = _tags(inst)
        return Instance(
            instance_id=str(inst["id"]), node_id=node_id or tags.get(TAG_NODE, ""),
            pool=pool or tags.get(TAG_POOL, ""), provider=self.choice.name,
            cluster=tags.get(TAG_CLUSTER, ""),
            instance_type=str(itype.get("name", self.choice.instance_type)),
            region=str(region.get("name", "")),
            state=_STATES.get(str(inst.get("status", "")), InstanceState.PENDING),
            public_ip=inst.get("ip"), private_ip=inst.get("private_ip"),
        )


def _tags(inst: dict[str, Any]) -> dict[str, str]:
    tags = inst.get("tags")
    return {str(t.get("key")): str(t.get("value")) for t in tags
            if isinstance(t, dict)} if isinstance(tags, list) else {}


def _type_info(name: str, entry: dict[str, Any]) -> InstanceTypeInfo:
    itype = entry.get("instance_type", {})
    specs = itype.get("specs", {})
    cents = itype.get("price_cents_per_hour")
    return InstanceTypeInfo(
        name=name, gpu_count=specs.get("gpus"), gpu_model=itype.get("gpu_description"),
        price_per_hour=cents / 100 if isinstance(cents, int | float) else None,
        available_regions=[r["name"] for r in entry.get("regions_with_capacity_available", [])],
        vcpus=specs.get("vcpus"), memory_gib=specs.get("memory_gib"),
    )
