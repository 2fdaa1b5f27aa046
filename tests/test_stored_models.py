"""What workflow history stores decodes leniently, at every depth: a key a later version drops
never breaks an old history. What people write stays strict."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from navarch.config.loader import load_config
from navarch.config.schema import HealthConfig
from navarch.contracts import (
    agent,
    autoscale,
    cloud,
    diagnostics,
    fleet,
    node,
    notifier,
    pool,
    ssh,
    sweep,
)
from navarch.contracts import spec as spec_contract
from navarch.contracts.base import SignalModel, StoredModel
from navarch.contracts.node import NodeInput
from navarch.contracts.spec import PoolSpec, build_pool_specs

CONTRACTS = (agent, autoscale, cloud, diagnostics, fleet, node, notifier, pool, spec_contract,
             ssh, sweep)
CONFIG = """
server:
  notifier: {type: webhook, webhook: {cordon_url: "http://127.0.0.1:1/c"}}
providers:
  fake: {type: fake, gpu_count: 8}
pools:
  train:
    provider: fake
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 4
    health: {unhealthy_after: 2, auto_replace: true}
    diagnostics: {cron: "0 3 * * 0", checks: [{kind: dcgm, level: 2}]}
    autoscaling:
      type: composite
      mode: max
      autoscalers:
        - {type: reactive, scale_up_at: 80, scale_down_at: 20}
        - {type: scheduled, schedule: [{days: [monday], start: 8, end: 18,
                                        min_nodes: 2, max_nodes: 4}]}
"""


def _models() -> list[type[BaseModel]]:
    return [value for module in CONTRACTS for value in vars(module).values()
            if inspect.isclass(value) and issubclass(value, BaseModel)
            and value.__module__ == module.__name__]


@pytest.mark.parametrize("model", _models(), ids=lambda m: f"{m.__module__}.{m.__name__}")
def test_every_contract_model_is_stored_or_a_signal(model: type[BaseModel]) -> None:
    assert issubclass(model, StoredModel | SignalModel), (
        f"{model.__name__}: derive from StoredModel (history) or SignalModel (people send it)")


MAPS = {"labels", "headers", "metrics", "regional"}  # data maps (dict[str, ...] fields), not models


def _sprinkle(value: Any) -> Any:
    """The same data with an unknown key in every model's mapping, at every depth."""
    if isinstance(value, dict):
        return {**{k: v if k in MAPS else _sprinkle(v) for k, v in value.items()},
                "removed_in_v9": {"x": 1}}
    if isinstance(value, list):
        return [_sprinkle(v) for v in value]
    return value


@pytest.fixture
def spec(tmp_path: Path) -> PoolSpec:
    path = tmp_path / "pools.yaml"
    path.write_text(CONFIG)
    return build_pool_specs(load_config(path))["train"]


def test_a_pool_spec_from_an_older_version_still_decodes(spec: PoolSpec) -> None:
    stored = _sprinkle(json.loads(spec.model_dump_json()))
    assert "removed_in_v9" in stored["health"] and "removed_in_v9" in stored["autoscaling"]
    assert PoolSpec.model_validate(stored) == spec
    assert PoolSpec.model_validate_json(json.dumps(stored)) == spec


def test_a_node_input_from_an_older_version_still_decodes(spec: PoolSpec) -> None:
    original = NodeInput(node_id="n1", spec=spec)
    stored = _sprinkle(json.loads(original.model_dump_json()))
    assert NodeInput.model_validate_json(json.dumps(stored)) == original


def test_what_people_write_stays_strict(spec: PoolSpec) -> None:
    with pytest.raises(ValidationError, match="removed_in_v9"):
        HealthConfig.model_validate({"unhealthy_after": 2, "removed_in_v9": 1})
    health = json.loads(spec.health.model_dump_json())  # after a stored decode, too
    PoolSpec.model_validate(_sprinkle(json.loads(spec.model_dump_json())))
    with pytest.raises(ValidationError, match="removed_in_v9"):
        HealthConfig.model_validate({**health, "removed_in_v9": 1})
    with pytest.raises(ValidationError, match="extra"):
        node.CordonInput.model_validate({"reason": "x", "removed_in_v9": 1})
