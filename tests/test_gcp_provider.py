"""The GCP provider: the real google-cloud-compute client (REST) against a local server."""

from __future__ import annotations

import pytest

from navarch.activities.cloud import ProviderError
from navarch.activities.gcp import GcpProvider
from navarch.contracts.cloud import CloudErrorType, InstanceState, ProvisionRequest
from navarch.contracts.spec import ProviderChoice


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


async def test_n1_gets_guest_accelerators_and_its_shape(gce):
    n1 = ProviderChoice(name="gcp", type="gcp", instance_type="n1-standard-8", project="ml-prod",
                        zone="us-central1-a", accelerator_type="nvidia-tesla-t4",
                        accelerator_count=2)
    gcp = GcpProvider(n1)
    await gcp.provision(ProvisionRequest(node_id="n1-node", pool="train", provider=n1))
    body = gce.instances[("us-central1-a", "nv-n1-node")]
    assert body["machineType"] == "zones/us-central1-a/machineTypes/n1-standard-8"
    assert body["guestAccelerators"] == [{
        "acceleratorType": "zones/us-central1-a/acceleratorTypes/nvidia-tesla-t4",
        "acceleratorCount": 2}]
    assert body["scheduling"]["onHostMaintenance"] == "TERMINATE"  # required with GPUs
    info = await gcp.describe_type()
    assert (info.gpu_count, info.gpu_model) == (2, "T4")
    # A3 has its GPUs built in: nothing attached.
    await GcpProvider(choice()).provision(request("a3-node"))
    assert "guestAccelerators" not in gce.instances[("us-central1-a", "nv-a3-node")]


async def test_list_types_in_the_choice_zones_and_everywhere(gce):
    listed = await GcpProvider(choice()).list_types()  # zone us-central1-a only
    by_name = {t.name: t for t in listed}
    assert set(by_name) == {"a3-highgpu-8g", "g2-standard-4", "nvidia-tesla-t4"}
    a3 = by_name["a3-highgpu-8g"]
    assert (a3.kind, a3.gpu_count, a3.gpu_model, a3.vcpus, a3.zones) == (
        "machine", 8, "H100", 208, ["us-central1-a"])
    assert a3.memory_gib == 1872.0 and a3.price_per_hour is None
    t4 = by_name["nvidia-tesla-t4"]
    assert (t4.kind, t4.gpu_count, t4.gpu_model) == ("accelerator", 4, "T4")
    everywhere = GcpProvider(ProviderChoice(name="g", type="gcp", instance_type="a3-highgpu-8g",
                                            project="ml-prod"))
    by_name = {t.name: t for t in await everywhere.list_types()}
    assert by_name["a3-highgpu-8g"].zones == ["us-central1-a", "us-central1-b"]
    assert by_name["nvidia-tesla-t4"].zones == ["us-central1-a", "us-central1-b"]
    assert any("aggregated/machineTypes" in r and "filter=" in r for r in gce.catalog_requests)


async def test_a_zone_refused_then_another_is_a_new_request_and_a_node_has_one_machine(gce):
    """A capacity refusal in zone a, then zone b: a different requestId (GCE would answer
    the first request's operation again for a reused one). Asked again in zone a, the node's
    machine in zone b is found, not made twice."""
    gcp = GcpProvider(choice(zones=["us-central1-a", "us-central1-b"]))
    gce.fail_next.append("ZONE_RESOURCE_POOL_EXHAUSTED")
    with pytest.raises(ProviderError) as info:
        await gcp.provision(request("n-zones").model_copy(update={"zone": "us-central1-a"}))
    assert info.value.error_type is CloudErrorType.CAPACITY
    made = await gcp.provision(request("n-zones").model_copy(update={"zone": "us-central1-b"}))
    assert made.zone == "us-central1-b" and made.project == "ml-prod"
    assert len(set(gce.by_request_id)) == 2
    again = await gcp.provision(request("n-zones").model_copy(update={"zone": "us-central1-a"}))
    assert again.instance_id == made.instance_id == "us-central1-b/nv-n-zones"
    assert gce.inserts == 2 and list(gce.instances) == [("us-central1-b", "nv-n-zones")]
