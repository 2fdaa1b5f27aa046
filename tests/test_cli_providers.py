"""`navarch provider types` as a user runs it: a real process asking the Lambda and Compute
API stand-ins (real `requests` and google-cloud-compute clients) what they sell."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fake_gce_api import FakeGceApi
from fake_lambda_api import API_KEY, FakeLambdaApi

CONFIG = """
providers:
  lambda: {type: lambda}
  gcp: {type: gcp, project: ml-prod, zone: us-central1-a}
pools:
  train:
    providers:
      - {name: lambda, regions: [us-west-2]}
      - {name: gcp}
    instance_type: h100-8x
    max_nodes: 4
"""


@pytest.fixture
def clouds(tmp_path: Path):
    cfg = tmp_path / "navarch.yaml"
    cfg.write_text(CONFIG)
    with FakeLambdaApi() as lam, FakeGceApi() as gce:
        env = {**os.environ, "LAMBDA_API_KEY": API_KEY, "NAVARCH_LAMBDA_API_URL": lam.url,
               "NAVARCH_GCP_ENDPOINT": gce.url, "HOME": str(tmp_path), "COLUMNS": "200"}
        yield cfg, env


def navarch(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "navarch.cli", *args], env=env,
                          capture_output=True, text=True, timeout=60)


def test_types_of_every_provider_as_json(clouds):
    cfg, env = clouds
    result = navarch(env, "provider", "types", "-f", str(cfg), "-o", "json")
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    lam = {t["name"]: t for t in listed["lambda"]}
    assert lam["gpu_8x_h100_sxm5"]["price_per_hour"] == 23.92
    assert lam["gpu_8x_h100_sxm5"]["available_regions"] == ["us-west-2"]
    gcp = {t["name"]: t for t in listed["gcp"]}
    assert gcp["a3-highgpu-8g"]["gpu_count"] == 8 and gcp["a3-highgpu-8g"]["zones"] == [
        "us-central1-a"]
    assert gcp["nvidia-tesla-t4"]["kind"] == "accelerator"


def test_table_filters_and_errors(clouds):
    cfg, env = clouds
    result = navarch(env, "provider", "types", "-f", str(cfg), "--provider", "lambda",
                     "--gpu", "a10")
    assert result.returncode == 0, result.stderr
    assert "gpu_1x_a10" in result.stdout and "gpu_8x_h100_sxm5" not in result.stdout
    assert "no capacity now" in result.stdout
    unknown = navarch(env, "provider", "types", "-f", str(cfg), "--provider", "aws")
    assert unknown.returncode == 2 and "no pool uses provider 'aws'" in unknown.stderr
    no_key = navarch({**env, "LAMBDA_API_KEY": ""}, "provider", "types", "-f", str(cfg))
    assert no_key.returncode == 1
    assert "InvalidRequestError: LAMBDA_API_KEY is not set" in no_key.stderr
    assert "a3-highgpu-8g" in no_key.stdout  # the other provider still answers
