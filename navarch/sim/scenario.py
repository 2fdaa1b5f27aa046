"""Scenario files in the Go Navarch's format, unchanged: `name`, `description`, `fleet[]`,
`events[]`, `assertions[]`, `stress{}`. Loaded with every error at once (file:line, key
path, value), like config files.

Scenarios speak the Go vocabulary. Node status: `active` (Navarch: ready or degraded, not
judged unhealthy), `cordoned`, `draining`, `unhealthy` (judged unhealthy by policy, wherever
the node is on its way out), `terminated` (terminating, terminated or failed). Health:
`healthy`, `degraded`, `unhealthy`. Each word is checked on its own: a node cordoned because
it went unhealthy is both `cordoned` and `unhealthy` (reports show `unhealthy`).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from navarch.config.schema import DiagnosticCheck
from navarch.contracts.node import NodeState, NodeStatus
from navarch.durations import GoDuration
from navarch.health.events import HealthResult
from navarch.health.remedy import RUNGS, Rung
from navarch.validation import (
    Problem,
    StrictModel,
    ValidationFailed,
    YamlDocument,
    load_yaml,
    problems_from_pydantic,
    suggest,
)

Action = Literal["start_fleet", "stop_fleet", "inject_failure", "recover_failure",
                 "issue_command", "wait_for_status", "wait", "log", "assert"]
FailureType = Literal["xid_error", "temperature", "nvml_failure", "backend_error",
                      "boot_failure", "device_error", "memory_error", "nvlink_error", "network"]
GoStatus = Literal["active", "cordoned", "draining", "unhealthy", "terminated"]
GoHealth = Literal["healthy", "degraded", "unhealthy"]
COMMANDS = ("cordon", "drain", "terminate", "run_diagnostic")
# Navarch's own state names are accepted too where a status is expected (an extension).
NAVARCH_STATES = tuple(s.value for s in NodeState)


class FleetNode(StrictModel):
    id: str = Field(min_length=1)
    provider: str = "fake"
    region: str = ""
    zone: str = ""
    instance_type: str = "h100-8x"
    gpu_count: int = Field(default=8, ge=1, le=64)
    gpu_type: str = "NVIDIA H100 80GB HBM3"
    labels: dict[str, str] = Field(default_factory=dict)


class EventParams(StrictModel):
    failure_type: FailureType | None = None
    xid_code: int | None = Field(default=None, ge=1)
    gpu_index: int = Field(default=0, ge=0)
    message: str = ""
    command_type: str | None = None
    command_args: dict[str, str | int | float | bool] = Field(default_factory=dict)
    expected_status: str | None = None
    timeout: GoDuration | None = None
    log_message: str = ""
    # Navarch: the value a `temperature` failure reports (default 95 °C).
    temperature: float | None = None


class Event(StrictModel):
    at: GoDuration
    action: Action
    target: str = ""
    params: EventParams = Field(default_factory=EventParams)


class Assertion(StrictModel):
    type: Literal["node_status", "health_status", "node_count"]
    target: str = ""
    expected: str

    @model_validator(mode="after")
    def _expected(self) -> Assertion:
        allowed: tuple[str, ...] = ()
        if self.type == "node_status":
            allowed = get_args(GoStatus)
        elif self.type == "health_status":
            allowed = get_args(GoHealth)
        if allowed and self.expected not in allowed:
            raise ValueError(f"expected {self.expected!r} is not a {self.type} "
                             f"(one of {', '.join(allowed)})")
        if self.type == "node_count" and not self.expected.isdigit():
            raise ValueError(f"node_count expects a number of nodes, not {self.expected!r}")
        return self


class NodeTemplate(StrictModel):
    name: str = Field(min_length=1)
    weight: int = Field(gt=0)
    gpu_count: int = Field(gt=0, le=64)
    gpu_type: str = ""
    instance_type: str = "h100-8x"
    labels: dict[str, str] = Field(default_factory=dict)


class StartupConfig(StrictModel):
    pattern: Literal["instant", "linear", "exponential", "wave"] = "instant"
    duration: GoDuration | None = None
    batch_size: int = Field(default=0, ge=0)
    jitter_percent: int = Field(default=0, ge=0, le=100)
    # How long a node's machine takes to come up once asked for: uniform between min and
    # max, or normal around mean (stddev), clamped to min/max where given.
    cold_start_min: GoDuration | None = None
    cold_start_max: GoDuration | None = None
    cold_start_mean: GoDuration | None = None
    cold_start_stddev: GoDuration | None = None

    @model_validator(mode="after")
    def _cold_start(self) -> StartupConfig:
        low, high = self.cold_start_min, self.cold_start_max
        if low is not None and high is not None and low > high:
            raise ValueError(f"cold_start_min ({low}) is above cold_start_max ({high})")
        if self.cold_start_stddev is not None and self.cold_start_mean is None:
            raise ValueError("cold_start_stddev needs cold_start_mean")
        return self


class FleetGen(StrictModel):
    total_nodes: int = Field(gt=0)
    templates: list[NodeTemplate] = Field(min_length=1)
    providers: dict[str, int] = Field(default_factory=dict)  # name -> percent
    regions: dict[str, int] = Field(default_factory=dict)
    zones: dict[str, list[str]] = Field(default_factory=dict)  # region -> zones
    startup: StartupConfig = Field(default_factory=StartupConfig)


class FailureTypeWeight(StrictModel):
    type: FailureType
    weight: int = Field(gt=0)


class CascadingConfig(StrictModel):
    enabled: bool = False
    probability: float = Field(default=0.0, ge=0, le=1)
    max_depth: int = Field(default=3, ge=0)
    min_delay: GoDuration | None = None
    max_delay: GoDuration | None = None
    scope: Literal["rack", "zone", "region", "provider", "random"] = "zone"
    # Up to 1 a fraction, as the Go simulator reads it (0.1 = 10%); above 1 a percentage.
    max_affected_percent: float = Field(default=0.0, ge=0, le=100)

    def max_affected_share(self) -> float:
        value = self.max_affected_percent
        return value if value <= 1 else value / 100


class RecoveryConfig(StrictModel):
    enabled: bool = False
    probability: float = Field(default=0.0, ge=0, le=1)
    mean_time: GoDuration | None = None
    std_dev: GoDuration | None = None
    # Where the Go simulator keeps them: replace nodes with fatal failures, and how long a
    # replacement's machine takes to come up (default: the startup's cold start).
    replace_fatal: bool = False
    replace_cold_start: GoDuration | None = None


class ScheduledOutage(StrictModel):
    name: str = ""
    start_time: GoDuration
    duration: GoDuration
    scope: Literal["zone", "region", "provider", "percentage"]
    target: str
    failure_type: FailureType = "network"
    xid_code: int | None = Field(default=None, ge=1)  # (Navarch addition) default 79


class CorrelatedFailure(StrictModel):
    """When a failure matching `trigger` (an Xid code, or a failure type) happens, with
    `probability`, `response` (a failure type, or an Xid code) follows after `delay` on the
    same node or a node in the scope."""

    name: str = ""
    trigger: str = Field(min_length=1)
    response: str = Field(min_length=1)
    probability: float = Field(default=1.0, ge=0, le=1)
    delay: GoDuration | None = None
    scope: Literal["same_node", "same_rack", "same_zone", "random"] = "same_node"

    @field_validator("trigger", "response")
    @classmethod
    def _failure_or_xid(cls, value: str) -> str:
        if not value.isdigit() and value not in get_args(FailureType):
            raise ValueError(f"{value!r} is neither an Xid code nor a failure type "
                             f"({', '.join(get_args(FailureType))})")
        return value


class ChaosConfig(StrictModel):
    enabled: bool = False
    failure_rate: float = Field(default=0.0, ge=0)  # per minute per 1000 nodes
    xid_distribution: dict[int, int] = Field(default_factory=dict)  # code -> weight
    failure_types: list[FailureTypeWeight] = Field(default_factory=list)
    cascading: CascadingConfig | None = None
    recovery: RecoveryConfig | None = None
    scheduled_outages: list[ScheduledOutage] = Field(default_factory=list)
    correlated_failures: list[CorrelatedFailure] = Field(default_factory=list)
    # Replace a node judged unhealthy: the simulator approves its repair, as a pool would,
    # and starts a new node in its place. (The Go simulator's recovery.replace_fatal too.)
    replace_fatal: bool = False

    def replaces_fatal(self) -> bool:
        return self.replace_fatal or bool(self.recovery and self.recovery.replace_fatal)


class StressConfig(StrictModel):
    duration: GoDuration | None = None
    metrics_interval: GoDuration | None = None
    seed: int = 0
    fleet_gen: FleetGen | None = None
    chaos: ChaosConfig | None = None
    report_file: str | None = None
    html_report_file: str | None = None
    log_file: str | None = None
    correlated_failures: Any = None

    @field_validator("correlated_failures")
    @classmethod
    def _under_chaos(cls, value: Any) -> Any:
        if value is not None:
            raise ValueError("correlated_failures belongs under stress.chaos (as in the Go "
                             "simulator); move it there")
        return value


class RepairSettings(StrictModel):
    """(Navarch addition) The repair ladder for the scenario's nodes: the rungs allowed, as a
    pool's `health.remediation`, and how long a simulated reboot takes. Without it a node
    judged unhealthy is replaced, as in the Go simulator."""

    remediation: list[Rung] = Field(default_factory=lambda: list(RUNGS), min_length=1)
    reboot_time: GoDuration = timedelta(seconds=60)


class Scenario(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    fleet: list[FleetNode] = Field(default_factory=list)
    events: list[Event] = Field(default_factory=list)
    assertions: list[Assertion] = Field(default_factory=list)
    stress: StressConfig | None = None
    repair: RepairSettings | None = None


def _cross_checks(doc: YamlDocument, scenario: Scenario) -> list[Problem]:
    out: list[Problem] = []

    def problem(path: tuple[str | int, ...], message: str, value: Any = None) -> None:
        kwargs: dict[str, Any] = {"line": doc.line_of(path)}
        if value is not None:
            kwargs["value"] = value
        out.append(Problem(doc.file, path, message, **kwargs))

    has_gen = bool(scenario.stress and scenario.stress.fleet_gen)
    if not scenario.fleet and not has_gen:
        problem(("fleet",), "a scenario needs `fleet` (a list of nodes) or stress.fleet_gen")
    ids = [n.id for n in scenario.fleet]
    for i, node_id in enumerate(ids):
        if ids.index(node_id) != i:
            problem(("fleet", i, "id"), f"duplicate node id {node_id!r}", node_id)
    known = set(ids)
    for i, event in enumerate(scenario.events):
        base = ("events", i)
        needs_target = event.action in ("inject_failure", "recover_failure", "issue_command",
                                        "wait_for_status", "assert")
        if needs_target and not event.target:
            problem((*base, "target"), f"{event.action} needs a `target` (a fleet node id)")
        elif event.target and known and event.target not in known:
            hint = suggest(event.target, sorted(known))
            problem((*base, "target"), f"no fleet node {event.target!r}"
                    + (f"; did you mean {hint!r}?" if hint else ""), event.target)
        params = event.params
        if event.action == "inject_failure":
            if params.failure_type is None:
                problem((*base, "params", "failure_type"), "inject_failure needs failure_type")
            elif params.failure_type == "xid_error" and params.xid_code is None:
                problem((*base, "params", "xid_code"), "an xid_error needs xid_code")
        if event.action == "issue_command":
            grace = params.command_args.get("grace_seconds")
            if grace is not None and not (_is_number(str(grace))
                                          and 0 <= float(grace) <= 86400):
                problem((*base, "params", "command_args", "grace_seconds"),
                        "seconds the drain waits, a number from 0 to 86400", grace)
            if params.command_type not in COMMANDS:
                problem((*base, "params", "command_type"),
                        f"command_type must be one of {', '.join(COMMANDS)}",
                        params.command_type)
            elif params.command_type == "run_diagnostic":
                try:
                    diagnostic_check(params.command_args)
                except ValidationError as exc:
                    for error in exc.errors():
                        problem((*base, "params", "command_args", *error["loc"]),
                                f"run_diagnostic: {error['msg']}", error.get("input"))
        if event.action in ("wait_for_status", "assert"):
            go_words = tuple(dict.fromkeys(get_args(GoStatus) + get_args(GoHealth)))
            if params.expected_status not in (*go_words, *NAVARCH_STATES):
                problem((*base, "params", "expected_status"),
                        f"expected_status must be one of {', '.join(go_words)} (or a "
                        f"Navarch state: {', '.join(NAVARCH_STATES)})", params.expected_status)
    for i, assertion in enumerate(scenario.assertions):
        if assertion.type != "node_count" and not assertion.target:
            problem(("assertions", i, "target"), f"{assertion.type} needs a `target`")
        elif assertion.type != "node_count" and known and assertion.target not in known:
            problem(("assertions", i, "target"), f"no fleet node {assertion.target!r}",
                    assertion.target)
    out.extend(_outage_checks(doc, scenario))
    return out


def _outage_checks(doc: YamlDocument, scenario: Scenario) -> list[Problem]:
    """A scheduled outage whose target no generated node can have would do nothing: say so."""
    stress = scenario.stress
    if stress is None or stress.fleet_gen is None or stress.chaos is None:
        return []
    gen = stress.fleet_gen
    choices = {
        "zone": ("fleet_gen.zones", sorted({z for zones in gen.zones.values() for z in zones})),
        "region": ("fleet_gen.regions", sorted(gen.regions)),
        # without providers every generated node is on the fake cloud
        "provider": ("fleet_gen.providers", sorted(gen.providers) or ["fake"]),
    }
    out = []
    for i, outage in enumerate(stress.chaos.scheduled_outages):
        path = ("stress", "chaos", "scheduled_outages", i, "target")
        if outage.scope == "percentage":
            share = outage.target.strip().removesuffix("%")
            if not _is_percent(share):
                out.append(Problem(doc.file, path, "a percentage such as 10 or 10% (of the "
                                   "fleet)",
                                   value=outage.target, line=doc.line_of(path)))
            continue
        where, known = choices[outage.scope]
        if outage.target not in known:
            listed = (", ".join(known) if known else "none; list each region's zones there"
                      if outage.scope == "zone" else "none; list them there")
            out.append(Problem(doc.file, path, f"no generated node is in {outage.scope} "
                               f"{outage.target!r} ({where}: {listed})",
                               line=doc.line_of(path)))
    return out


def _is_percent(text: str) -> bool:
    return _is_number(text) and 0 <= float(text) <= 100


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def diagnostic_check(args: dict[str, str | int | float | bool]) -> DiagnosticCheck:
    """The check a scenario's run_diagnostic asks for in `command_args` (`kind`: dcgm,
    gpu_burn or nccl; `level` of a DCGM diag; `seconds` of a burn); default a DCGM diag at
    level 1, the quick one."""
    return DiagnosticCheck.model_validate({"kind": "dcgm", "level": 1, **args})


def load_scenario(path: str | Path, *, text: str | None = None) -> Scenario:
    """Load and validate a scenario; raise ValidationFailed listing every error."""
    doc = load_yaml(path, text=text)
    if not isinstance(doc.data, dict):
        raise ValidationFailed([Problem(doc.file, (), "expected a mapping with name, fleet, "
                                        "events, assertions", value=doc.data, line=1)])
    try:
        scenario = Scenario.model_validate(doc.data)
    except ValidationError as exc:
        raise ValidationFailed(problems_from_pydantic(doc, Scenario, exc)) from None
    problems = _cross_checks(doc, scenario)
    if problems:
        raise ValidationFailed(sorted(problems, key=lambda p: (p.line or 0, p.path)))
    return scenario


def go_status(status: NodeStatus) -> str:
    """A node's status in the scenario vocabulary."""
    return go_word(status.state, status.verdict)


def go_word(state: NodeState, verdict: HealthResult) -> str:
    """The scenario word for a node state and verdict (what its search attributes say)."""
    if verdict is HealthResult.UNHEALTHY and not state.is_terminal():
        return "unhealthy"
    if state in (NodeState.READY, NodeState.DEGRADED):
        return "active"
    if state is NodeState.CORDONED:
        return "cordoned"
    if state is NodeState.DRAINING:
        return "draining"
    if state in (NodeState.TERMINATING, NodeState.TERMINATED, NodeState.FAILED):
        return "terminated"
    return state.value  # provisioning, booting, boot_checking, unreachable


def matches(status: NodeStatus, expected: str) -> bool:
    """Whether a node is `expected` (a status or a health word). Each word is checked on its
    own, so an unhealthy node that was cordoned is both `unhealthy` and `cordoned`.
    `unhealthy` as a status is the sticky verdict; `healthy` and `degraded` are what the
    hardware says now (a `health_status` assertion reads the current health for all three)."""
    if expected in ("healthy", "degraded"):
        return status.health.value == expected
    if expected == "unhealthy":
        return status.verdict is HealthResult.UNHEALTHY
    if expected == "active":
        return (status.state in (NodeState.READY, NodeState.DEGRADED)
                and status.verdict is not HealthResult.UNHEALTHY)
    if expected == "cordoned":
        return status.state is NodeState.CORDONED
    if expected == "draining":
        return status.state is NodeState.DRAINING
    if expected == "terminated":
        return status.state in (NodeState.TERMINATING, NodeState.TERMINATED, NodeState.FAILED)
    return status.state.value == expected
