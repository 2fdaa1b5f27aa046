"""Cloud-provider activities: one interface, several clouds, errors in a closed set.

Providers are built inside the worker from the (secret-free) `ProviderChoice` in each
request; credentials come from the worker's environment or the cloud's own chain.
"""

from __future__ import annotations

import asyncio
import builtins
import time
from collections.abc import Callable
from typing import Protocol

from temporalio import activity
from temporalio.exceptions import ApplicationError

from navarch.bootstrap.credentials import CredentialsError
from navarch.contracts import cloud as cloud_api
from navarch.contracts.cloud import (
    CloudErrorType,
    Instance,
    InstanceState,
    InstanceTypeInfo,
    ListRequest,
    ProvisionRequest,
    TerminateRequest,
)
from navarch.contracts.spec import ProviderChoice
from navarch.contracts.ssh import SSH_BOOTSTRAP, SshBootstrapInput, SshBootstrapResult
from navarch.temporal.heartbeats import with_heartbeats

IP_POLL_SECONDS = 5.0


class ProviderError(Exception):
    """A provider failure, classified into the closed set the workflows act on."""

    def __init__(self, error_type: CloudErrorType, message: str, code: str = "") -> None:
        super().__init__(message)
        self.error_type = error_type
        self.code = code  # the cloud's own error code, e.g. InsufficientInstanceCapacity


class CloudProvider(Protocol):
    async def provision(self, request: ProvisionRequest) -> Instance:
        """Create the machine for request.node_id, or return the one already made for it."""
        ...

    async def terminate(self, instance_id: str, region: str | None = None) -> bool:
        """Terminate the instance where it lives (`region`: the instance's own; None: the
        provider's first); return False when there was nothing to terminate."""
        ...

    async def get(self, instance_id: str, region: str | None = None) -> Instance | None: ...

    async def reboot(self, instance_id: str, region: str | None = None) -> bool:
        """Restart the machine through the cloud's API, where it lives; False when the
        cloud does not know it there."""
        ...

    async def list(self, pool: str) -> list[Instance]: ...

    async def list_managed(self, region: str) -> builtins.list[Instance]:
        """Every machine Navarch made in `region` ("": every region the cloud lists at
        once), whichever installation made it (`Instance.cluster` says), that is not yet
        terminated: what the orphan sweep compares with the live node workflows."""
        ...

    async def describe_type(self) -> InstanceTypeInfo:
        """GPU count/model, price and regions with capacity of the choice's instance type."""
        ...

    async def list_types(self) -> builtins.list[InstanceTypeInfo]:
        """Every GPU instance type the provider offers where the choice points (its region
        or project), with price and availability where the cloud says."""
        ...


ProviderFactory = Callable[[ProviderChoice], CloudProvider]

_NON_RETRYABLE = {CloudErrorType.CAPACITY, CloudErrorType.INVALID_REQUEST}


def to_application_error(exc: ProviderError) -> ApplicationError:
    return ApplicationError(
        str(exc), type=exc.error_type.value, non_retryable=exc.error_type in _NON_RETRYABLE
    )


class CloudActivities:
    """The `cloud.*` activities over whichever providers the worker knows how to build."""

    def __init__(self, factories: dict[str, ProviderFactory], *,
                 template_values: Callable[[], dict[str, str]] | None = None) -> None:
        self._factories = factories
        self._providers: dict[str, CloudProvider] = {}
        self._default_cluster: str | None = None
        # Worker-side values for setup-command templates ({{.ControlPlane}}, {{.Namespace}}).
        self._template_values = template_values or dict

    def provider(self, choice: ProviderChoice) -> CloudProvider:
        key = choice.model_dump_json()
        if key not in self._providers:
            factory = self._factories.get(choice.type)
            if factory is None:
                raise ApplicationError(
                    f"this worker has no {choice.type!r} provider "
                    f"(it serves: {', '.join(sorted(self._factories)) or 'none'})",
                    type=CloudErrorType.INVALID_REQUEST.value, non_retryable=True,
                )
            self._providers[key] = factory(choice)
        return self._providers[key]

    async def cluster_id(self, configured: str) -> str:
        """The installation id to tag with (or sweep for): the configured one, else this
        namespace's default (asked of the server once per worker)."""
        if configured:
            return configured
        if self._default_cluster is None:
            from navarch.temporal.identity import namespace_cluster_id

            self._default_cluster = await namespace_cluster_id(activity.client())
        return self._default_cluster

    @activity.defn(name=cloud_api.PROVISION)
    async def provision(self, request: ProvisionRequest) -> Instance:
        try:
            request = request.model_copy(
                update={"cluster_id": await self.cluster_id(request.cluster_id)})
            return await with_heartbeats(self.provider(request.provider).provision(request))
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        except CredentialsError as exc:  # the bootstrap cannot give the agent its credentials
            raise to_application_error(ProviderError(CloudErrorType.INVALID_REQUEST,
                                                     str(exc))) from exc

    @activity.defn(name=cloud_api.TERMINATE)
    async def terminate(self, request: TerminateRequest) -> bool:
        """Terminate in the instance's own region, then confirm it there: done only when a
        lookup shows it terminated, shutting down or absent. A lookup that fails is an
        error (retried), never "gone"."""
        provider, region = self.provider(request.provider), request.region or None
        try:
            existed = await with_heartbeats(provider.terminate(request.instance_id, region))
            after = await provider.get(request.instance_id, region)
        except ProviderError as exc:
            raise to_application_error(exc) from exc
        if after is not None and after.state not in (InstanceState.TERMINATED,
                                                     InstanceState.STOPPING):
            raise to_application_error(ProviderError(
                CloudErrorType.TRANSIENT, f"instance {request.instance_id} is still "
                f"{after.state.value} in {after.region or 'its region'} after terminate"))
        return existed

    @activity.defn(name=cloud_api.REBOOT)
    async def reboot(self, request: TerminateRequest) -> bool:
        try:
            return await with_heartbeats(self.provider(request.provider).reboot(
                request.instance_id, request.region or None))
        except ProviderError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=cloud_api.GET_INSTANCE)
    async def get_instance(self, request: TerminateRequest) -> Instance | None:
        try:
            return await self.provider(request.provider).get(request.instance_id,
                                                             request.region or None)
        except ProviderError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=cloud_api.LIST_INSTANCES)
    async def list_instances(self, request: ListRequest) -> list[Instance]:
        try:
            return await self.provider(request.provider).list(request.pool)
        except ProviderError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=cloud_api.DESCRIBE_TYPE)
    async def describe_instance_type(self, choice: ProviderChoice) -> InstanceTypeInfo:
        try:
            return await self.provider(choice).describe_type()
        except ProviderError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=cloud_api.LIST_TYPES)
    async def list_instance_types(self, choice: ProviderChoice) -> list[InstanceTypeInfo]:
        try:
            return await self.provider(choice).list_types()
        except ProviderError as exc:
            raise to_application_error(exc) from exc

    @activity.defn(name=SSH_BOOTSTRAP)
    async def ssh_bootstrap(self, params: SshBootstrapInput) -> SshBootstrapResult:
        """Wait for the instance's address, then upload files and run the setup commands
        over SSH. Any failure is final for this machine (BootstrapFailed)."""
        from .ssh import BootstrapFailed, run_bootstrap, ssh_client_available

        if not ssh_client_available():
            raise ApplicationError("setup_commands run over SSH: this worker needs the ssh "
                                   "extra (pip install 'navarch[ssh]')",
                                   type="BootstrapFailed", non_retryable=True)

        def beat(what: str) -> None:
            activity.heartbeat(what)

        try:
            host = params.host or await self._wait_for_address(params, beat)
            values = {**self._template_values(), "Pool": params.pool,
                      "NodeID": params.node_id, "Provider": params.provider.name,
                      "Region": params.region, "InstanceType": params.instance_type}
            return await run_bootstrap(params, host, values, beat)
        except BootstrapFailed as exc:
            raise ApplicationError(str(exc), type="BootstrapFailed", non_retryable=True) from None
        except ValueError as exc:  # a template that does not render
            raise ApplicationError(f"setup_commands: {exc}", type="BootstrapFailed",
                                   non_retryable=True) from None

    async def _wait_for_address(self, params: SshBootstrapInput,
                                beat: Callable[[str], None]) -> str:
        from .ssh import BootstrapFailed

        deadline = time.monotonic() + params.ip_wait_timeout.total_seconds()
        provider = self.provider(params.provider)
        while True:
            try:
                inst = await provider.get(params.instance_id, params.region or None)
            except ProviderError as exc:
                if exc.error_type is CloudErrorType.INVALID_REQUEST:
                    raise BootstrapFailed(f"looking up {params.instance_id}: {exc}") from None
                inst = None
            if inst is not None and (inst.public_ip or inst.private_ip):
                return inst.public_ip or inst.private_ip or ""
            if time.monotonic() + IP_POLL_SECONDS > deadline:
                raise BootstrapFailed(f"{params.instance_id} had no IP address after "
                                      f"{params.ip_wait_timeout}")
            beat(f"waiting for an address for {params.instance_id}")
            await asyncio.sleep(IP_POLL_SECONDS)

    def activities(self) -> list[Callable[..., object]]:
        return [self.provision, self.terminate, self.reboot, self.get_instance, self.list_instances,
                self.describe_instance_type, self.list_instance_types, self.ssh_bootstrap]
