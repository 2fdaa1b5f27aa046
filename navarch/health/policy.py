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

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError

from navarch.health.cel_engine import compile_expression
from navarch.health.events import HealthEvent, HealthResult
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


class PolicyRule(StrictModel):
    name: str = Field(min_length=1)
    description: str = ""
    condition: str = Field(min_length=1)
    result: HealthResult


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

    def evaluate_event(self, event: HealthEvent) -> EventVerdict:
        activation = {"event": event.cel_activation()}
        errors: list[tuple[str, str]] = []
        for compiled in self.rules:
            try:
                outcome = compiled.program.execute(activation)
            except Exception as exc:  # CEL raises KeyError/TypeError/ValueError/RuntimeError
                errors.append((compiled.rule.name, _describe_eval_error(exc)))
                continue
            if outcome is True:
                self.evaluation_errors += len(errors)
                return EventVerdict(event, compiled.rule.result, compiled.rule.name, tuple(errors))
            if outcome is not False:
                errors.append(
                    (compiled.rule.name, f"condition gave {outcome!r}, not true or false")
                )
        self.evaluation_errors += len(errors)
        return EventVerdict(event, HealthResult.HEALTHY, None, tuple(errors))

    def evaluate(self, events: Sequence[HealthEvent]) -> NodeVerdict:
        verdicts = tuple(self.evaluate_event(e) for e in events)
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
    unknown = [v for v in program.variables() if v != "event"]
    if unknown:
        raise ValueError(
            f"unknown variable {unknown[0]!r} in the condition; conditions see only `event`"
            + ("; did you mean 'event'?" if suggest(unknown[0], ["event"]) else "")
        )
    without_strings = _STRING_LITERAL.sub('""', rule.condition)
    for name in _EVENT_FIELD_REF.findall(without_strings):
        if name not in EVENT_FIELDS:
            hint = suggest(name, EVENT_FIELDS)
            raise ValueError(
                f"event has no field {name!r}"
                + (f"; did you mean {hint!r}?" if hint else f"; fields: {', '.join(EVENT_FIELDS)}")
            )
    return program


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
