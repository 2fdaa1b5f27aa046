"""The GCP provider: the real google-cloud-compute client (REST) against a local server."""

from __future__ import annotations

import pytest

from navarch.activities.cloud import ProviderError
from navarch.activities.gcp import GcpProvider
from navarch.cloud_api import CloudErrorType, InstanceState, ProvisionRequest
from navarch.spec import ProviderChoice

from fake_gce_api import FakeGceApi


@pytest.fixture
def gce(monkeypatch):
    with FakeGceApi() as server:
        monkeypatch.setenv("NAVARCH_GCP_ENDPOINT", server.url)
        yield server


def choice(**kw) -> ProviderChoice:
    return ProviderChoice(name="gcp", type="gcp", instance_type="a3-highgpu-8g",
                          project="ml-prod", zone="us-central1-a", **kw)


def request(node_id: str, pool: str = "train") -> ProvisionRequest:
    return ProvisionRequest(node_id=node_id, pool=pool, provider=choice(),
                            labels={"Team": "ML"})


async def test_insert_is_idempotent_labelled_listed_and_deleted(gce):
    gcp = GcpProvider(choice(), user_data=lambda req: f"#cloud-config\n# {req.node_id}",
                      startup_script=lambda req: f"#!/bin/sh\n# {req.node_id}")
    first = await gcp.provision(request("5a1e-node-1"))
    again = await gcp.provision(request("5a1e-node-1"))
    assert again.instance_id == first.instance_id == "us-central1-a/nv-5a1e-node-1"
    assert gce.inserts == 1
    assert (first.node_id, first.pool, first.state, first.zone, first.region) == (
        "5a1e-node-1", "train", InstanceState.RUNNING, "us-central1-a", "us-central1")
    assert (first.public_ip, first.private_ip) == ("34.1.2.3", "10.128.0.2")
    body = gce.instances[("us-central1-a", "nv-5a1e-node-1")]
    assert body["machineType"] == "zones/us-central1-a/machineTypes/a3-highgpu-8g"
    assert body["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert body["labels"] == {"navarch-node-id": "5a1e-node-1", "navarch-pool": "train",
                              "navarch-managed-by": "navarch", "team": "ml"}
    assert body["metadata"]["items"] == [
        {"key": "user-data", "value": "#cloud-config\n# 5a1e-node-1"},
        {"key": "startup-script", "value": "#!/bin/sh\n# 5a1e-node-1"}]
    await gcp.provision(request("5a1e-node-2"))
    await gcp.provision(request("5a1e-node-3", pool="other"))
    assert {i.node_id for i in await gcp.list("train")} == {"5a1e-node-1", "5a1e-node-2"}
    assert await gcp.terminate(first.instance_id) is True
    assert await gcp.terminate(first.instance_id) is False  # not found counts as done
    assert await gcp.get(first.instance_id) is None


@pytest.mark.parametrize(("code", "kind"), [
    ("ZONE_RESOURCE_POOL_EXHAUSTED", CloudErrorType.CAPACITY),
    ("QUOTA_EXCEEDED", CloudErrorType.CAPACITY),
    ("INTERNAL_ERROR", CloudErrorType.TRANSIENT),
])
async def test_operation_errors_map_to_the_closed_set(gce, code, kind):
    gce.fail_next.append(code)
    with pytest.raises(ProviderError) as info:
        await GcpProvider(choice()).provision(request("node-x"))
    assert info.value.error_type is kind and code in str(info.value)


async def test_spot_and_missing_project(gce):
    spot = GcpProvider(choice(spot=True))
    await spot.provision(request("node-s"))
    body = gce.instances[("us-central1-a", "nv-node-s")]
    assert body["scheduling"]["provisioningModel"] == "SPOT"
    with pytest.raises(ProviderError, match="needs a `project`"):
        GcpProvider(ProviderChoice(name="g", type="gcp", instance_type="a3-highgpu-8g"))
