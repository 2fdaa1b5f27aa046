"""Nothing a user sends breaks a node or a pool: malformed signals are refused (and said so
in the workflow's status), long text is cut, reports from nodes a pool never started are
refused, and a pool started with a bad spec or the wrong id fails at once, loudly.

End to end on the dev server, with the real worker and the `temporal` CLI."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import subprocess
import sys
import time
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel
from temporalio.client import WorkflowFailureError, WorkflowHandle, WorkflowUpdateFailedError

from navarch.client import Navarch
from navarch.config.loader import load_config
from navarch.contracts.base import InvalidPayload, decode_payload
from navarch.contracts.names import node_workflow_id, pool_workflow_id
from navarch.contracts.node import (
    CordonInput,
    DrainInput,
    NodeOperationResult,
    NodeReport,
    RetireInput,
    TerminateInput,
    UncordonInput,
)
from navarch.contracts.pool import DrainNodeInput, NodeRef, PoolUpdateResult, ScaleInput
from navarch.contracts.spec import PoolSpec
from navarch.health.cel_engine import compile_expression
from navarch.health.events import EventType, HealthEvent, HealthResult
from navarch.health.policy import (
    CompiledRule,
    Policy,
    PolicyFile,
    PolicyRule,
    compile_policy,
    compile_rule,
    load_policy,
)
from navarch.sim.scenario import load_scenario
from navarch.validation import (
    MAX_TEXT,
    MAX_YAML_BYTES,
    MAX_YAML_DEPTH,
    MAX_YAML_VALUES,
    ValidationFailed,
)

from lifecycle_helpers import (
    control_plane,
    eventually,
    fast_spec,
    navarch_cli,
    node_status,
    pool_status,
    ready_pool,
    run_temporal_cli,
    temporal_cli,
    transitions,
)

NODE_SIGNALS = ["cordon", "uncordon", "drain", "terminate", "retire", "approve_repair",
                "check_upgrade"]
POOL_SIGNALS = ["node_state_changed", "scale", "report_queue_depth", "update_spec",
                "cordon_node", "uncordon_node", "drain_node", "resume_repair", "delete"]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.sampled_from(["reason", "grace_seconds", "source", "target",
                                       "min_nodes", "max_nodes", "node_id", "state", "seq",
                                       "name", "at", "x"]) | st.text(max_size=8),
                      inner, max_size=4),
    max_leaves=12)
# What a caller can put on the wire: JSON values, binary data, and any number of arguments.
payload_args = st.lists(json_values | st.binary(max_size=20), max_size=3)


def _sample(strategy: st.SearchStrategy[Any], count: int) -> list[Any]:
    """`count` distinct examples drawn by hypothesis (its edge cases included)."""
    drawn: list[Any] = []

    @settings(max_examples=count, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def collect(value: Any) -> None:
        drawn.append(value)

    collect()
    return drawn


@given(payload_args)
@settings(max_examples=300, deadline=None)
def test_decoding_a_payload_never_raises_anything_but_invalid(args):
    for model in (CordonInput, UncordonInput, DrainInput, TerminateInput, RetireInput,
                  NodeRef, DrainNodeInput, ScaleInput, NodeReport, PoolSpec):
        try:
            decoded = decode_payload(model, args)
        except InvalidPayload as exc:
            assert str(exc)
            continue
        for value in decoded.model_dump().values():
            assert not (isinstance(value, float) and not math.isfinite(value))


def test_a_long_reason_is_cut_with_a_marker():
    cordon = decode_payload(CordonInput, [{"reason": "x" * 1_500_000}])
    assert MAX_TEXT - 10 <= len(cordon.reason) <= MAX_TEXT
    assert cordon.reason.endswith("x... [1499016 more characters cut]")


def test_invalid_payloads_name_the_field_and_the_value():
    cases: list[tuple[type[BaseModel], list[Any], str]] = [
        (DrainInput, [{"grace_seconds": math.inf}],
         "field 'grace_seconds': Input should be a finite number (got inf)"),
        (CordonInput, [b'"x"'], "expected a JSON object, got 3 bytes of binary data"),
        (CordonInput, [{}, {}], "expected one argument, got 2"),
        (CordonInput, [{"reason": "a", "sauce": 1}],
         "field 'sauce': Extra inputs are not permitted (got 1)"),
        (ScaleInput, [{"target": -1}],
         "field 'target': Input should be greater than or equal to 0 (got -1)"),
        (NodeRef, [], "field 'node_id': Field required"),
        (CordonInput, ["x"], "expected a JSON object, got 'x'"),
    ]
    for model, args, message in cases:
        try:
            decode_payload(model, args)
        except InvalidPayload as exc:
            assert str(exc) == message
        else:
            raise AssertionError(f"{model.__name__} accepted {args!r}")


async def _cordon_round_trip(client, node_id: str) -> None:
    """The node still works: a cordon and an uncordon go through."""
    handle = client.get_workflow_handle(node_workflow_id(node_id))
    await handle.signal("cordon", CordonInput(reason="after the storm"))
    await eventually(lambda: node_status(client, node_id),
                     lambda n: n.state.value == "cordoned", what="cordoned")
    await handle.signal("uncordon", UncordonInput(reason="fine"))
    await eventually(lambda: node_status(client, node_id),
                     lambda n: n.state.value == "ready", what="ready again")


async def test_malformed_signals_never_wedge_a_node(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1)
        node_id = status.nodes[0].node_id
        wid = node_workflow_id(node_id)
        # The shapes that used to fail every later workflow task, from the temporal CLI.
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "cordon",
                     "--input", '"x"', "--input-meta", "encoding=binary/plain")
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "cordon",
                     "--input", '{"reason": "a"}', "--input", '{"reason": "b"}')
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "drain",
                     "--input", '{"grace_seconds": 1e400}')
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "approve_repair",
                     "--input", '{"now": true}')
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: len(n.rejected) == 4, what="4 refusals")
        assert [(r.signal, r.problem) for r in node.rejected] == [
            ("cordon", "expected a JSON object, got 3 bytes of binary data"),
            ("cordon", "expected one argument, got 2"),
            ("drain", "field 'grace_seconds': Input should be a finite number (got inf)"),
            ("approve_repair", "takes no argument, got 1"),
        ]
        assert node.state.value == "ready"
        # Megabytes of reason are cut: the state stays far below the payload limits.
        handle = client.get_workflow_handle(wid)
        await handle.signal("cordon", {"reason": "c" * 1_500_000})
        await handle.signal("uncordon", {"reason": "u" * 1_500_000})
        node = await eventually(lambda: node_status(client, node_id),
                                lambda n: transitions(n)[-1] == ("ready", "operator"),
                                what="cordoned and back")
        assert [t.detail[0] + t.detail[-21:] for t in node.transitions[-2:]] == [
            "c more characters cut]", "u more characters cut]"]
        assert all(len(t.detail) <= MAX_TEXT for t in node.transitions)
        assert len(node.model_dump_json()) < 100_000
        shown = (await navarch_cli(dev_env, "node", "get", node_id)).stdout
        assert "more characters cut]" in shown
        assert ("refused signal drain: field 'grace_seconds': Input should be a finite "
                "number (got inf)") in shown
        # A fuzzed set of payloads to every signal; the node keeps answering and working.
        for args in _sample(payload_args, 60):
            for name in NODE_SIGNALS[:2] + NODE_SIGNALS[5:]:
                await handle.signal(name, args=args)
        # And to every update: what does not decode is refused to the caller.
        for args in _sample(payload_args, 40):
            for name, model in (("cordon", CordonInput), ("uncordon", UncordonInput),
                                ("drain", DrainInput), ("terminate", TerminateInput)):
                if _valid(model, args):
                    if name in ("cordon", "uncordon"):
                        await handle.execute_update(name, args=args,
                                                    result_type=NodeOperationResult)
                    continue
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update(name, args=args,
                                                result_type=NodeOperationResult)
        node = await node_status(client, node_id)
        assert node.state.value in ("ready", "cordoned")
        await handle.signal("uncordon", UncordonInput())
        await _cordon_round_trip(client, node_id)


def _valid(model: type[BaseModel], args: list[Any]) -> bool:
    try:
        decode_payload(model, args)
    except InvalidPayload:
        return False
    return True


async def test_malformed_signals_and_ghost_reports_never_wedge_a_pool(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec, status = await ready_pool(client, plane, min_nodes=3)
        wid = pool_workflow_id(spec.name)
        handle: WorkflowHandle[Any, Any] = client.get_workflow_handle(wid)
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "scale",
                     "--input", '"x"', "--input-meta", "encoding=binary/plain")
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "scale",
                     "--input", '{"target": 1}', "--input", '{"target": 2}')
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "scale",
                     "--input", '{"target": 1e400}')
        # A report for a node this pool never started: it must not count, and must not
        # make the pool retire a real machine.
        ghost = {"node_id": "ghost", "state": "ready", "reason": "boot_check_passed",
                 "at": "2026-12-01T00:00:00Z", "seq": 99}
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "node_state_changed",
                     "--input", json.dumps(ghost))
        # And one for a real node, that does not come from its workflow.
        forged = {**ghost, "node_id": status.nodes[0].node_id, "state": "failed",
                  "reason": "unhealthy", "run_chain": "forged"}
        temporal_cli(dev_env, "workflow", "signal", "-w", wid, "--name", "node_state_changed",
                     "--input", json.dumps(forged))
        pool = await eventually(
            lambda: pool_status(client, spec.name),
            lambda p: sum(e.kind == "signal_rejected" for e in p.events) == 5, what="refusals")
        refused = [e.detail for e in pool.events if e.kind == "signal_rejected"]
        assert refused == [
            "scale: expected a JSON object, got 3 bytes of binary data",
            "scale: expected one argument, got 2",
            "scale: field 'target': Input should be a finite number (got inf)",
            "node_state_changed: node 'ghost' is not one of this pool's nodes",
            f"node_state_changed: report for node {status.nodes[0].node_id} does not come "
            "from its workflow (run chain 'forged')",
        ]
        assert pool.ready == 3 and len(pool.nodes) == 3
        for args in _sample(payload_args, 40):
            for name in POOL_SIGNALS[:-1]:  # not `delete`
                await handle.signal(name, args=args)
        for args in _sample(payload_args, 40):
            for name, model in (("scale", ScaleInput), ("update_spec", PoolSpec)):
                if args and _valid(model, args):
                    continue
                with pytest.raises(WorkflowUpdateFailedError):
                    await handle.execute_update(name, args=args,
                                                result_type=PoolUpdateResult)
        pool = await pool_status(client, spec.name)
        assert pool.deleting is False
        # Scale down by one: exactly one real machine goes, none for a ghost.
        await handle.signal("scale", ScaleInput(target=2, min_nodes=0, max_nodes=10))
        pool = await eventually(lambda: pool_status(client, spec.name),
                                lambda p: p.counts == {"ready": 2}, within=30, what="2 left")
        assert len(plane.world.instances(spec.name, live_only=True)) == 2
        await _cordon_round_trip(client, pool.nodes[-1].node_id
                                 if pool.nodes[-1].state.value == "ready"
                                 else next(n.node_id for n in pool.nodes
                                           if n.state.value == "ready"))


def _start_from_cli(env, queue: str, workflow_id: str, spec: dict[str, Any]) -> None:
    temporal_cli(env, "workflow", "start", "--type", "PoolWorkflow", "--task-queue", queue,
                 "--workflow-id", workflow_id, "--input", json.dumps({"spec": spec}))


async def test_a_pool_started_with_a_bad_spec_or_id_fails_at_once(dev_env, tmp_path):
    client = dev_env.client
    good = {"name": "", "providers": [{"name": "sim", "type": "fake",
                                        "instance_type": "h100-8x"}],
            "instance_type": "h100-8x", "min_nodes": 0, "max_nodes": 2}
    cases: list[tuple[dict[str, Any], str | None, str]] = [
        ({"min_nodes": 3}, None,
         "field 'spec': min_nodes (3) cannot exceed max_nodes (2)"),
        ({"providers": [{"name": "sim", "type": "fakee", "instance_type": "h100-8x"}]}, None,
         "field 'spec.providers.0.type': Input should be 'lambda', 'gcp', 'aws' or 'fake' "
         "(got 'fakee')"),
        ({"min_nodez": 1}, None,
         "field 'spec': unknown key(s) 'min_nodez'; did you mean 'min_nodes'?"),
        ({}, "pool/other",
         "does not match the spec's name"),
    ]
    async with control_plane(client, tmp_path) as plane:
        for i, (change, wid, message) in enumerate(cases):
            name = f"bad-{i}-{plane.task_queue[-6:]}"
            spec = {**good, "name": name, **change}
            workflow_id = (wid or pool_workflow_id(name)) + ("" if wid is None else f"-{i}")
            _start_from_cli(dev_env, plane.task_queue, workflow_id, spec)
            handle = client.get_workflow_handle(workflow_id)
            try:
                await handle.result()
            except WorkflowFailureError as exc:
                assert message in str(exc.cause), exc.cause
                assert getattr(exc.cause, "type", None) == "InvalidPoolInput"
            else:
                raise AssertionError(f"{change} started a pool")
            described = run_temporal_cli(dev_env, "workflow", "describe", "-w", workflow_id)
            assert "Status   FAILED" in described.stdout and message in described.stdout, \
                described.stdout


# ------------------------------------------------------------------ confirmed operations


def _payload_bytes(history_json: str) -> bytes:
    """Every payload in a `temporal workflow show --output json` history, decoded: the CLI
    prints payload data as base64, so a plain text search would never see it."""
    found: list[bytes] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            data = value.get("data")
            if isinstance(data, str) and isinstance(value.get("metadata"), dict):
                found.append(base64.b64decode(data))
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(json.loads(history_json))
    return b"\n".join(found)


async def test_node_operations_are_confirmed_or_refused_with_the_reason(dev_env, tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        _, status = await ready_pool(client, plane, min_nodes=1,
                                     health={"auto_replace": False})
        node_id = status.nodes[0].node_id
        wid = node_workflow_id(node_id)
        cordoned = await navarch_cli(dev_env, "node", "cordon", node_id, "--reason", "bad fan")
        assert (cordoned.returncode, cordoned.stdout.strip()) == (
            0, f"node {node_id}: cordoned; now cordoned"), cordoned.stderr
        again = await navarch_cli(dev_env, "node", "cordon", node_id)
        assert again.stdout.strip() == (f"node {node_id}: already cordoned (operator); "
                                        "now cordoned")
        back = await navarch_cli(dev_env, "node", "uncordon", node_id)
        assert back.stdout.strip() == f"node {node_id}: uncordoned; now ready"
        # An unhealthy node is not returned to service, and the operator is told why.
        plane.world.inject(node_id, "xid", value=79)
        await eventually(lambda: node_status(client, node_id),
                         lambda n: n.health.value == "unhealthy", what="unhealthy")
        refused = await navarch_cli(dev_env, "node", "uncordon", node_id)
        assert refused.returncode == 1
        assert refused.stderr.strip() == (
            f"error: node {node_id}: uncordon refused: node is unhealthy "
            "(rule xid-needs-reset-or-reboot)"), refused.stderr
        # A malformed update is refused to the caller and never enters history.
        bad = await asyncio.to_thread(run_temporal_cli, dev_env, "workflow", "update", "execute", "-w", wid,
                               "--name", "drain", "--input", '{"grace_seconds": 1e400}')
        assert bad.returncode != 0
        assert ("invalid drain request: field 'grace_seconds': Input should be a finite "
                "number (got inf)") in bad.stderr, bad.stderr
        history = temporal_cli(dev_env, "workflow", "show", "-w", wid, "--output", "json")
        assert history.count("EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED") == 3  # the three above
        payloads = _payload_bytes(history)
        assert b"bad fan" in payloads  # the accepted cordon's payload, decoded
        assert b"1e400" not in payloads and b"grace_seconds" not in payloads
        node = await node_status(client, node_id)
        assert (node.state.value, node.rejected) == ("cordoned", [])
        # Terminate by update: the answer says it is leaving; a second one is refused.
        gone = await client.get_workflow_handle(wid).execute_update(
            "terminate", TerminateInput(reason="rma"), result_type=NodeOperationResult)
        assert (gone.applied, gone.detail) == (True, "terminate: leaving")
        late = await navarch_cli(dev_env, "node", "terminate", node_id)
        assert late.returncode == 1
        assert ("terminate refused: node is" in late.stderr  # still terminating
                or f"node {node_id}: its workflow has ended" in late.stderr), late.stderr


async def test_pool_updates_validate_and_apply_starts_or_updates_in_one_call(dev_env,
                                                                               tmp_path):
    client = dev_env.client
    async with control_plane(client, tmp_path) as plane:
        spec = fast_spec(min_nodes=1, max_nodes=4)
        specs = {spec.name: spec}
        sched = ", diagnostics schedule "
        fleet = Navarch(client, task_queue=plane.task_queue)
        assert (await fleet.apply(specs)).pools == {spec.name: f"started{sched}created"}
        assert (await fleet.apply(specs)).pools == {spec.name: f"unchanged{sched}updated"}
        wider = spec.model_copy(update={"max_nodes": 6})
        assert (await fleet.apply(wider)).pools == {spec.name: f"updated{sched}updated"}
        await eventually(lambda: pool_status(client, spec.name), lambda p: p.ready == 1,
                         what="ready")
        scaled = await navarch_cli(dev_env, "pool", "scale", spec.name, "2")
        assert scaled.stdout.strip() == f"pool {spec.name}: target 1 → 2 (min 1, max 6)"
        refused = await navarch_cli(dev_env, "pool", "scale", spec.name, "2", "--min", "7")
        assert refused.returncode == 1
        assert refused.stderr.strip() == (f"error: pool {spec.name}: scale refused: "
                                          "min_nodes 7 would exceed max_nodes 6")
        wid = pool_workflow_id(spec.name)
        bad = json.loads(wider.model_dump_json())
        bad["max_nodez"] = 3
        typo = await asyncio.to_thread(run_temporal_cli, dev_env, "workflow", "update", "execute", "-w", wid,
                                "--name", "update_spec", "--input", json.dumps(bad))
        assert typo.returncode != 0
        assert "unknown key(s) 'max_nodez'; did you mean 'max_nodes'?" in typo.stderr
        other = await asyncio.to_thread(run_temporal_cli, dev_env, "workflow", "update", "execute", "-w", wid,
                                 "--name", "update_spec",
                                 "--input", json.dumps({**json.loads(wider.model_dump_json()),
                                                        "name": "x"}))
        assert "update_spec refused: the spec is for pool 'x'" in other.stderr, other.stderr
        pool = await pool_status(client, spec.name)
        assert (pool.target, pool.max_nodes) == (2, 6)


# ------------------------------------------------------------------ hostile files

ALIAS_BOMB = "\n".join(
    ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{c}: &{c} [{', '.join([f'*{p}'] * 9)}]" for p, c in zip("abcdefgh", "bcdefghi",
                                                                 strict=True)]) + "\n"
DUPLICATE_POOL = """\
providers:
  sim:
    type: fake
pools:
  training:
    provider: sim
    instance_type: h100-8x
    min_nodes: 1
    max_nodes: 2
  training:
    provider: sim
    instance_type: a100-8x
    min_nodes: 1
    max_nodes: 4
"""


def _one_problem(load, path, **kwargs) -> str:
    started = time.perf_counter()
    try:
        load(path, **kwargs)
    except ValidationFailed as exc:
        assert time.perf_counter() - started < 1.0
        assert len(exc.problems) == 1, exc.problems
        return str(exc.problems[0])
    raise AssertionError(f"{path} was accepted")


@pytest.mark.parametrize("load", [load_config, load_scenario, load_policy])
def test_hostile_files_get_one_clear_error_fast(load, tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    assert _one_problem(load, bomb) == (
        f"{bomb}:6: (top level): expands to more than {MAX_YAML_VALUES} values through "
        "aliases (an alias bomb?); write the values out or use fewer aliases")
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 10_000 + "]" * 10_000 + "\n")
    assert _one_problem(load, deep) == (
        f"{deep}:1: (top level): nested more than {MAX_YAML_DEPTH} levels deep")
    big = tmp_path / "big.yaml"
    with big.open("w") as f:
        f.truncate(100 * 1024 * 1024)  # 100 MB, sparse
    assert _one_problem(load, big) == (
        f"{big}: (top level): file is 104857600 bytes; the limit is {MAX_YAML_BYTES} bytes")


def test_a_key_written_twice_is_an_error_naming_both_lines(tmp_path):
    config = tmp_path / "navarch.yaml"
    config.write_text(DUPLICATE_POOL)
    assert _one_problem(load_config, config) == (
        f"{config}:10: pools.training: duplicate key 'training' (first at line 5, again at "
        "line 10); the first would be lost")


def test_config_validate_refuses_an_alias_bomb_in_bounded_memory(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(ALIAS_BOMB)
    result = subprocess.run(
        [sys.executable, "-c", "import resource, subprocess, sys; "
         "resource.setrlimit(resource.RLIMIT_AS, (1 << 30, 1 << 30)); "
         "from navarch.cli.main import main; sys.argv = ['navarch', 'config', 'validate', "
         f"{str(bomb)!r}]; main()"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 1, result.stderr
    assert "expands to more than" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def _rule(condition: str, name: str = "r") -> PolicyRule:
    return PolicyRule(name=name, condition=condition, result=HealthResult.UNHEALTHY)


def test_cel_macros_validate_and_judge():
    policy = compile_policy(PolicyFile(rules=[
        _rule("[48, 79].exists(c, c == event.metrics.xid_code)"),
        _rule("event.metrics.exists(k, k == 'ecc_dbe') && [1, 2].all(i, i > 0)", "dbe")]))
    judged = [policy.evaluate([HealthEvent(event_type=EventType.XID, metrics=m)]).result
              for m in ({"xid_code": 79}, {"xid_code": 13}, {"ecc_dbe": 1})]
    assert judged == [HealthResult.UNHEALTHY, HealthResult.HEALTHY, HealthResult.UNHEALTHY]
    with pytest.raises(ValueError, match="unknown variable 'c'"):
        compile_rule(_rule("[1, 2].exists(x, x == c)"))


def test_an_exploding_rule_is_refused_before_it_runs():
    items = "[" + ", ".join(str(i) for i in range(300)) + "]"
    started = time.perf_counter()
    with pytest.raises(ValueError, match="the macros can make 90000 iterations per event; "
                                         "the budget is 10000"):
        compile_rule(_rule(f"{items}.map(x, {items}.map(y, x * y)).size() > 0"))
    with pytest.raises(ValueError, match="macros nest 3 deep"):
        compile_rule(_rule("[1].all(x, [1].all(y, [1].all(z, x == y && y == z)))"))
    assert time.perf_counter() - started < 0.5


def test_a_rule_over_its_budget_on_a_real_event_is_skipped_from_then_on():
    items = "[" + ", ".join(str(i) for i in range(150)) + "]"
    slow = CompiledRule(_rule(f"{items}.map(x, {items}.map(y, x * y)).size() > 0"),
                        compile_expression(f"{items}.map(x, {items}.map(y, x * y)).size() > 0"))
    fast = CompiledRule(_rule("event.metrics.xid_code == 79"),
                        compile_expression("event.metrics.xid_code == 79"))
    policy = Policy(PolicyFile(rules=[slow.rule, fast.rule]), [slow, fast])
    event = HealthEvent(event_type=EventType.XID, metrics={"xid_code": 79})
    first = policy.evaluate_event(event)
    assert first.result is HealthResult.UNHEALTHY  # the slow rule matched, once
    assert slow.over_budget.endswith("ms budget: skipped from now on")
    started = time.perf_counter()
    second = policy.evaluate_event(event)
    assert time.perf_counter() - started < 0.05
    assert (second.rule, second.errors) == ("r", (("r", slow.over_budget),))


def test_a_busy_machine_does_not_make_a_cheap_rule_look_expensive(monkeypatch):
    """The wall clock jumps a second on every reading (a loaded host, another thread holding
    the GIL): the rule still compiles and is never skipped, since its cost is CPU time."""
    clock = iter(range(0, 10_000))
    monkeypatch.setattr("time.perf_counter", lambda: float(next(clock)))
    policy = compile_policy(PolicyFile(rules=[_rule("event.metrics.xid_code == 79")]))
    verdict = policy.evaluate_event(HealthEvent(event_type=EventType.XID,
                                                metrics={"xid_code": 79}))
    assert verdict.result is HealthResult.UNHEALTHY and not policy.rules[0].over_budget
