"""Health policies: Navarch policy files (the Go Navarch's format) with CEL conditions.

Semantics, as in the Go version: for each event the first rule (in file order) whose
condition is true decides that event's result; a node's result is the worst over its
events; an event no rule matches is healthy. A condition that fails while evaluating (a
metric the event does not carry, a type mismatch, a non-boolean result) does not match:
the rule is skipped for that event and the failure counted, never raised.

CEL engine: the Rust extension of the `common-expression-language` package
(navarch.health.cel_engine).
It was chosen by measurement; see docs/architecture.md.
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from navarch.durations import GoDuration
from navarch.health.cel_engine import compile_expression
from navarch.health.events import EventType, HealthEvent, HealthResult
from navarch.health.remedy import Attempts, Remedy, Rung, remedy_for
from navarch.validation import (
    Problem,
    StrictModel,
    ValidationFailed,
    YamlDocument,
    load_yaml,
    problems_from_pydantic,
    suggest,
)

EVENT_FIELDS = (
    "event_type",
    "system",
    "gpu_index",
    "gpu_uuid",
    "metrics",
    "message",
    "timestamp",
)

BUILTIN_POLICIES = {
    "default": "default.yaml",
    "go-default": "go-default.yaml",
}


# What one condition may cost. The CEL engine has no cost limit, and its evaluation holds
# the interpreter (a thread would not keep the agent's event loop free), so the cost is
# bounded before a rule is accepted: its length, how deeply its macros nest, and its time on
# a sample event; a rule that still runs over its budget on a real event is skipped.
MAX_CONDITION_CHARS = 4096
MAX_MACRO_NESTING = 2
RULE_BUDGET_SECONDS = 0.05  # one evaluation of one rule, on the sample event
RUNTIME_BUDGET_SECONDS = 0.2  # one evaluation on a real event, before the rule is skipped

_MACRO_ARGS = re.compile(r"\s*([A-Za-z_]\w*)\s*,(?:\s*([A-Za-z_]\w*)\s*,)?")
_MACRO = re.compile(
    r"\.\s*(all|exists_one|exists|map|filter|existsOne|transformList|transformMap)\s*\(")


class Repeats(StrictModel):
    """(Navarch addition) The rule counts only once its condition has held for `count`
    distinct events on the same GPU within `window`, this one included; until then the
    rules after it judge the event. The node workflow keeps the count, so an agent restart
    or an event's expiry does not reset it."""

    count: int = Field(ge=2, le=1000)
    window: GoDuration


class PolicyRule(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    condition: str = Field(min_length=1, max_length=MAX_CONDITION_CHARS)
    result: HealthResult
    repeats: Repeats | None = None
    # (Navarch addition) The repair ladder's first rung for what this rule judges
    # unhealthy: reset the GPU, reboot the machine or replace it. Unset: the Xid catalog's
    # action for an Xid event, else replace.
    remedy: Rung | None = None
    # (Navarch addition) How often each rung may be tried for the same fault within the
    # pool's remediation window before the ladder moves up (default: one reset, two reboots).
    attempts: Attempts | None = None


# Events seen before, by (rule, GPU index): their times. What `repeats` rules count.
Seen = Mapping[tuple[str, int], Collection[datetime]]


class PolicyMetadata(StrictModel):
    name: str = ""
    description: str = ""


class PolicyFile(StrictModel):
    """The on-disk shape of a policy file. JSON-friendly: it can travel in a pool spec."""

    version: Literal["v1"] = "v1"
    metadata: PolicyMetadata = Field(default_factory=PolicyMetadata)
    rules: list[PolicyRule] = Field(min_length=1)


@dataclass(frozen=True)
class EventVerdict:
    """How one event was judged: the rule that matched (None: no rule) and its result."""

    event: HealthEvent
    result: HealthResult
    rule: str | None
    errors: tuple[tuple[str, str], ...] = ()
    counted: tuple[str, ...] = ()  # `repeats` rules whose condition held for this event


@dataclass(frozen=True)
class NodeVerdict:
    """The worst result over a node's events, which event and rule set it, and the details."""

    result: HealthResult
    rule: str | None
    event: HealthEvent | None
    events: tuple[EventVerdict, ...] = ()

    @property
    def evaluation_errors(self) -> int:
        return sum(len(v.errors) for v in self.events)


@dataclass
class CompiledRule:
    rule: PolicyRule
    program: Any
    over_budget: str = ""  # why it is skipped from now on; empty while it runs
    reported: bool = False  # the skip was logged


@dataclass
class Policy:
    """A policy whose every rule compiled; evaluate events with it."""

    source: PolicyFile
    rules: list[CompiledRule]
    origin: str = "<memory>"
    evaluation_errors: int = field(default=0)

    @property
    def name(self) -> str:
        return self.source.metadata.name or Path(self.origin).stem

    def evaluate_event(self, event: HealthEvent, seen: Seen | None = None) -> EventVerdict:
        activation = {"event": event.cel_activation()}
        errors: list[tuple[str, str]] = []
        counted: list[str] = []
        for compiled in self.rules:
            if compiled.over_budget:
                errors.append((compiled.rule.name, compiled.over_budget))
                continue
            # This thread's CPU time, not the wall clock: a busy machine must not make a
            # rule look expensive and skip it for good.
            started = time.thread_time()
            try:
                outcome = compiled.program.execute(activation)
            except Exception as exc:  # CEL raises KeyError/TypeError/ValueError/RuntimeError
                errors.append((compiled.rule.name, _describe_eval_error(exc)))
                continue
            finally:
                spent = time.thread_time() - started
                if spent > RUNTIME_BUDGET_SECONDS:
                    compiled.over_budget = (
                        f"took {spent * 1000:.0f} ms on one event, over the "
                        f"{RUNTIME_BUDGET_SECONDS * 1000:.0f} ms budget: skipped from now on")
            if outcome is True and compiled.rule.repeats is not None:
                counted.append(compiled.rule.name)
                if _repeats(compiled.rule, event, seen) < compiled.rule.repeats.count:
                    continue  # not often enough yet: the next rules judge it
            if outcome is True:
                self.evaluation_errors += len(errors)
                return EventVerdict(event, compiled.rule.result, compiled.rule.name,
                                    tuple(errors), tuple(counted))
            if outcome is not False:
                errors.append(
                    (compiled.rule.name, f"condition gave {outcome!r}, not true or false")
                )
        self.evaluation_errors += len(errors)
        return EventVerdict(event, HealthResult.HEALTHY, None, tuple(errors), tuple(counted))

    def evaluate(self, events: Sequence[HealthEvent], seen: Seen | None = None) -> NodeVerdict:
        verdicts = tuple(self.evaluate_event(e, seen) for e in events)
        worst: EventVerdict | None = None
        for v in verdicts:
            if worst is None or v.result.is_worse_than(worst.result):
                worst = v
        if worst is None or worst.result is HealthResult.HEALTHY:
            first = next((v for v in verdicts if v.rule is not None), None)
            return NodeVerdict(
                HealthResult.HEALTHY,
                first.rule if first else None,
                first.event if first else None,
                verdicts,
            )
        return NodeVerdict(worst.result, worst.rule, worst.event, verdicts)

    def remedy(self, verdict: NodeVerdict) -> Remedy | None:
        """The repair an unhealthy verdict asks for (None for any other verdict)."""
        if verdict.result is not HealthResult.UNHEALTHY:
            return None
        rule = next((c.rule for c in self.rules if c.rule.name == verdict.rule), None)
        return remedy_for(rule.remedy if rule else None, rule.attempts if rule else None,
                          verdict.rule, verdict.event)


def _repeats(rule: PolicyRule, event: HealthEvent, seen: Seen | None) -> int:
    """How many distinct events, this one included, the rule has matched on the event's GPU
    within its window."""
    assert rule.repeats is not None
    start = event.timestamp - rule.repeats.window
    before = (seen or {}).get((rule.name, event.gpu_index), ())
    return len({t for t in before if start < t <= event.timestamp} | {event.timestamp})


def _describe_eval_error(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"the event has no {exc.args[0]!r}"
    return f"{type(exc).__name__}: {exc}".splitlines()[0]


_CEL_POSITION = re.compile(r"<input>:(\d+):(\d+): (.*)")
_EVENT_FIELD_REF = re.compile(r"\bevent\s*\.\s*([A-Za-z_][A-Za-z0-9_]*)")
_STRING_LITERAL = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")


def compile_rule(rule: PolicyRule) -> Any:
    """Compile one condition; raise ValueError with a message that says where and what."""
    try:
        program = compile_expression(rule.condition)
    except ValueError as exc:
        text = str(exc)
        m = _CEL_POSITION.search(text)
        if m:
            line, col, what = m.groups()
            raise ValueError(
                f"CEL syntax error at line {line}, column {col} of the condition: {what}"
            ) from None
        raise ValueError(f"CEL error: {text.splitlines()[0]}") from None
    without_strings = _STRING_LITERAL.sub('""', rule.condition)
    bound = _macro_variables(without_strings)
    unknown = [v for v in program.variables() if v != "event" and v not in bound]
    if unknown:
        raise ValueError(
            f"unknown variable {unknown[0]!r} in the condition; conditions see only `event`"
            + ("; did you mean 'event'?" if suggest(unknown[0], ["event"]) else "")
        )
    for name in _EVENT_FIELD_REF.findall(without_strings):
        if name not in EVENT_FIELDS:
            hint = suggest(name, EVENT_FIELDS)
            raise ValueError(
                f"event has no field {name!r}"
                + (f"; did you mean {hint!r}?" if hint else f"; fields: {', '.join(EVENT_FIELDS)}")
            )
    nesting, iterations = _macro_cost(without_strings)
    if nesting > MAX_MACRO_NESTING:
        raise ValueError(f"macros nest {nesting} deep (all/exists/map/filter inside one "
                         f"another); at most {MAX_MACRO_NESTING} are allowed, since each "
                         "level multiplies the work")
    if iterations > MAX_MACRO_ITERATIONS:
        raise ValueError(f"the macros can make {iterations} iterations per event; the "
                         f"budget is {MAX_MACRO_ITERATIONS}")
    spent = _time_on_sample(program)
    if spent > RULE_BUDGET_SECONDS:
        raise ValueError(f"evaluating the condition took {spent * 1000:.0f} ms on a sample "
                         f"event; the budget is {RULE_BUDGET_SECONDS * 1000:.0f} ms")
    return program


def _macro_variables(condition: str) -> set[str]:
    """The names CEL macros bind (`c` in `[48, 79].exists(c, c == ...)`; both in the
    two-variable forms), in a condition whose string literals are already blanked."""
    names: set[str] = set()
    for m in _MACRO.finditer(condition):
        args = _MACRO_ARGS.match(condition, m.end())
        if args:
            names.update(n for n in args.groups() if n)
    return names


def _macro_cost(condition: str) -> tuple[int, int]:
    """How deeply macro calls nest in a condition (string literals already blanked), and
    the most iterations they can make: the product of the sizes of the lists they walk (a
    list written out counts its items; anything else, such as `event.metrics`, counts
    UNKNOWN_SIZE)."""
    sizes = {m.end() - 1: _receiver_size(condition, m.start())
             for m in _MACRO.finditer(condition)}  # by the position of their "("
    stack: list[int] = []  # per open parenthesis: the list size it walks, 1 if no macro
    deepest, cost = 0, 1
    for i, ch in enumerate(condition):
        if ch == "(":
            stack.append(sizes.get(i, 0))
            walking = [n for n in stack if n]
            deepest = max(deepest, len(walking))
            cost = max(cost, math.prod(walking))
        elif ch == ")" and stack:
            stack.pop()
    return deepest, cost


UNKNOWN_SIZE = 16  # an event's lists and maps hold a handful of items
MAX_MACRO_ITERATIONS = 10_000


def _receiver_size(condition: str, dot: int) -> int:
    """The number of items in the list literal that ends just before `dot`, else
    UNKNOWN_SIZE."""
    end = dot - 1
    while end >= 0 and condition[end].isspace():
        end -= 1
    if end < 0 or condition[end] != "]":
        return UNKNOWN_SIZE
    depth, items = 0, 1
    for i in range(end, -1, -1):
        ch = condition[i]
        if ch in ")]}":
            depth += 1
        elif ch in "([{":
            depth -= 1
            if depth == 0:
                return items if condition[i + 1:end].strip() else 0
        elif ch == "," and depth == 1:
            items += 1
    return UNKNOWN_SIZE


_SAMPLE_EVENT = HealthEvent(
    event_type=EventType.XID, system="SYSTEM_PCIE", gpu_index=3,
    gpu_uuid="GPU-00000000-0000-0000-0000-000000000000",
    metrics={"xid_code": 79, "temperature": 85, "power_watts": 700.0, "ecc_dbe": 1,
             "nvlink_errors": 2, "severity": "fatal", "pid": 1234},
    message="NVRM: Xid (PCI:0000:3b:00): 79, pid=1234, GPU has fallen off the bus.",
)


def _time_on_sample(program: Any, tries: int = 3) -> float:
    """CPU time of one evaluation on the sample event: this thread's own time, the least of
    a few tries, so a busy machine (another process, another thread holding the GIL, a
    collection) cannot make a cheap condition look expensive and fail a policy that was
    valid, as it once failed a health watch under load. A costly condition is costly on
    every try."""
    activation = {"event": _SAMPLE_EVENT.cel_activation()}
    spent = float("inf")
    for _ in range(tries):
        started = time.thread_time()
        with contextlib.suppress(Exception):  # one that fails on the sample may suit others
            program.execute(activation)
        spent = min(spent, time.thread_time() - started)
        if spent <= RULE_BUDGET_SECONDS:
            break
    return spent


def _compile_all(doc: YamlDocument, source: PolicyFile) -> Policy:
    problems: list[Problem] = []
    compiled: list[CompiledRule] = []
    seen: set[str] = set()
    for i, rule in enumerate(source.rules):
        if rule.name in seen:
            path = ("rules", i, "name")
            problems.append(
                Problem(doc.file, path, f"duplicate rule name {rule.name!r}",
                        line=doc.line_of(path))
            )
        seen.add(rule.name)
        try:
            compiled.append(CompiledRule(rule, compile_rule(rule)))
        except ValueError as exc:
            path = ("rules", i, "condition")
            problems.append(
                Problem(doc.file, path, f"rule {rule.name!r}: {exc}", line=doc.line_of(path))
            )
    if problems:
        raise ValidationFailed(problems)
    return Policy(source, compiled, origin=doc.file)


def parse_policy(doc: YamlDocument) -> Policy:
    if not isinstance(doc.data, dict):
        raise ValidationFailed(
            [Problem(doc.file, (), "expected a mapping with version, metadata and rules", line=1)]
        )
    try:
        source = PolicyFile.model_validate(doc.data)
    except ValidationError as exc:
        raise ValidationFailed(problems_from_pydantic(doc, PolicyFile, exc)) from None
    return _compile_all(doc, source)


def load_policy(path: str | Path, *, text: str | None = None) -> Policy:
    """Load, validate and compile a policy file; raise ValidationFailed naming each bad rule."""
    return parse_policy(load_yaml(path, text=text))


def compile_policy(source: PolicyFile, origin: str = "<pool spec>") -> Policy:
    """Compile a policy that arrived as data (e.g. inside a pool spec)."""
    return _compile_all(YamlDocument(origin, None), source)


def builtin_policy_text(name: str = "default") -> str:
    filename = BUILTIN_POLICIES[name]
    policies = resources.files("navarch.health").joinpath("policies")
    return policies.joinpath(filename).read_text(encoding="utf-8")


def builtin_policy(name: str = "default") -> Policy:
    """Navarch's own default policy, or `go-default`, the Go Navarch's default unchanged."""
    return load_policy(f"<builtin:{name}>", text=builtin_policy_text(name))


def resolve_policy(ref: str) -> Policy:
    """A policy file path, or `builtin:default` / `builtin:go-default`."""
    if ref.startswith("builtin:"):
        name = ref.removeprefix("builtin:")
        if name not in BUILTIN_POLICIES:
            raise ValidationFailed(
                [Problem(ref, (), f"no built-in policy {name!r}; "
                         f"choose from {', '.join(BUILTIN_POLICIES)}")]
            )
        return builtin_policy(name)
    return load_policy(ref)
