"""The Lambda provider: real `requests` against a local server speaking Lambda's API."""

from __future__ import annotations

import pytest

from navarch.activities.cloud import ProviderError
from navarch.activities.lambda_labs import LambdaProvider
from navarch.contracts.cloud import CloudErrorType, InstanceState, ProvisionRequest
from navarch.contracts.spec import ProviderChoice

from fake_lambda_api import API_KEY


@pytest.fixture
def api(lambda_api):
    return lambda_api


def choice(**kw) -> ProviderChoice:
    return ProviderChoice(name="lambda", type="lambda", instance_type="gpu_8x_h100_sxm5",
                          regions=["us-west-2"], **kw)


def request(node_id: str, pool: str = "train") -> ProvisionRequest:
    return ProvisionRequest(node_id=node_id, pool=pool, provider=choice(), ssh_keys=["ops"])


async def test_launch_is_idempotent_by_name_listed_and_terminated(api):
    lam = LambdaProvider(choice(), user_data=lambda req: f"#cloud-config\n# {req.node_id}")
    first = await lam.provision(request("n-1"))
    again = await lam.provision(request("n-1"))
    assert again.instance_id == first.instance_id and api.launches == 1
    assert (first.region, first.instance_type, first.state) == (
        "us-west-2", "gpu_8x_h100_sxm5", InstanceState.PENDING)
    assert api.last_launch["name"] == "nv-train-n-1"
    assert api.last_launch["ssh_key_names"] == ["ops"]
    assert api.last_launch["user_data"] == "#cloud-config\n# n-1"
    await lam.provision(request("n-2"))
    await lam.provision(request("n-3", pool="other"))
    assert {i.node_id for i in await lam.list("train")} == {"n-1", "n-2"}
    assert await lam.terminate(first.instance_id) is True
    assert {i.node_id for i in await lam.list("train")} == {"n-2"}
    assert await lam.terminate("inst-9999") is False
    assert await lam.get("inst-9999") is None
    assert all(a == f"Bearer {API_KEY}" for a in api.seen_auth)


@pytest.mark.parametrize(("status", "code", "kind"), [
    (400, "instance-operations/launch/insufficient-capacity", CloudErrorType.CAPACITY),
    (400, "global/quota-exceeded", CloudErrorType.CAPACITY),
    (429, "global/rate-limited", CloudErrorType.THROTTLED),
    (400, "global/invalid-parameters", CloudErrorType.INVALID_REQUEST),
    (502, "global/bad-gateway", CloudErrorType.TRANSIENT),
])
async def test_api_errors_map_to_the_closed_set(api, status, code, kind):
    api.fail_next.append((status, code))
    with pytest.raises(ProviderError) as info:
        await LambdaProvider(choice()).provision(request("n-x"))
    assert info.value.error_type is kind and code in str(info.value)


async def test_key_only_from_the_environment(api, monkeypatch):
    monkeypatch.delenv("LAMBDA_API_KEY")
    with pytest.raises(ProviderError) as info:
        await LambdaProvider(choice()).provision(request("n-y"))
    assert info.value.error_type is CloudErrorType.INVALID_REQUEST
    assert "LAMBDA_API_KEY is not set" in str(info.value)
    monkeypatch.setenv("MY_LAMBDA", "wrong")
    with pytest.raises(ProviderError) as info:
        await LambdaProvider(choice(api_key_env="MY_LAMBDA")).provision(request("n-z"))
    assert info.value.code == "global/invalid-api-key"
    assert info.value.error_type is CloudErrorType.INVALID_REQUEST


async def test_describe_type_gives_price_gpus_and_capacity(api):
    info = await LambdaProvider(choice()).describe_type()
    assert (info.gpu_count, info.price_per_hour, info.available_regions) == (8, 23.92,
                                                                             ["us-west-2"])
    missing = await LambdaProvider(ProviderChoice(
        name="lambda", type="lambda", instance_type="gpu_9x_nope")).describe_type()
    assert missing.available_regions == []


async def test_list_types_gives_every_type_with_price_and_capacity(api):
    listed = await LambdaProvider(choice()).list_types()
    assert [(t.name, t.gpu_count, t.price_per_hour, t.available_regions, t.vcpus)
            for t in listed] == [("gpu_1x_a10", 1, 0.75, [], 30),
                                 ("gpu_8x_h100_sxm5", 8, 23.92, ["us-west-2"], 208)]
