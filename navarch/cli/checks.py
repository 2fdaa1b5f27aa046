"""`navarch config ...`, `navarch policy ...`, `navarch xid ...`: checks that need no
Temporal server. Configs, policies, events and kernel logs in; every problem at once out."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError
from rich.table import Table
from typer.core import TyperGroup

from navarch.cli.common import EXIT_INVALID, EXIT_USAGE, fail_with_problems, load_config_or_exit
from navarch.cli.output import (
    Output,
    OutputOpt,
    err,
    out,
    print_data,
    print_table,
)
from navarch.config.instance_types import gpu_shape, resolve_instance_type
from navarch.health import kernel_log, xid
from navarch.health.events import HealthEvent, HealthResult
from navarch.health.policy import BUILTIN_POLICIES, NodeVerdict, builtin_policy_text, resolve_policy
from navarch.validation import Problem, ValidationFailed

config_app = typer.Typer(help="Check control-plane config files.", no_args_is_help=True)
policy_app = typer.Typer(help="Check and try out health policies.", no_args_is_help=True)


class _XidGroup(TyperGroup):
    """`navarch xid 79` explains a code; `navarch xid scan FILE` and `xid list` are commands."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        if args and args[0].lstrip("-").isdigit():
            args = ["explain", *args]
        return super().parse_args(ctx, args)


xid_app = typer.Typer(
    cls=_XidGroup,
    help="Explain Xid codes (`navarch xid 79`) and find Xids in kernel logs (`xid scan`).",
    no_args_is_help=True,
)

def _usage(message: str) -> NoReturn:
    err.print(f"usage error: {message}")
    raise typer.Exit(EXIT_USAGE)


# ---------------------------------------------------------------------------- config


@config_app.command("validate")
def config_validate(
    file: Annotated[Path, typer.Argument(help="config file in the Navarch (Go Navarch) format")],
    output: OutputOpt = Output.text,
) -> None:
    """Validate a config file and report every problem in it at once."""
    loaded = load_config_or_exit(file, output)
    cfg = loaded.config
    pools: dict[str, Any] = {}
    for name, pool in cfg.pools.items():
        entries = (
            [(pool.provider, None)] if pool.provider
            else [(e.name, e.instance_type) for e in pool.providers or []]
        )
        resolved = {}
        for prov_name, override in entries:
            assert prov_name is not None
            kind = cfg.providers[prov_name].type
            resolved[prov_name] = override or resolve_instance_type(pool.instance_type, kind)
        shape = gpu_shape(pool.instance_type)
        pools[name] = {
            "instance_type": pool.instance_type,
            "providers": resolved,
            "min_nodes": pool.min_nodes,
            "max_nodes": pool.max_nodes,
            "autoscaling": pool.autoscaling.type if pool.autoscaling else None,
            "gpus_per_node": shape.count if shape else None,
            "gpu_model": shape.model if shape else None,
            "remediation": cfg.pool_health(pool).remediation,
        }
    if output.structured:
        print_data({
            "valid": True,
            "file": str(file),
            "pools": pools,
            "providers": {n: p.type for n, p in cfg.providers.items()},
            "warnings": [w.to_dict() for w in loaded.warnings],
        }, output)
        return
    out.print(f"{file}: valid — {len(cfg.pools)} pool(s), {len(cfg.providers)} provider(s)")
    for name, info in pools.items():
        provs = ", ".join(f"{p} ({t or '?'})" for p, t in info["providers"].items())
        gpus = f", {info['gpus_per_node']}× {info['gpu_model']}" if info["gpus_per_node"] else ""
        out.print(
            f"  pool {name}: {info['instance_type']}{gpus}, "
            f"{info['min_nodes']}..{info['max_nodes']} nodes, on {provs}; repairs: "
            + " → ".join(info["remediation"])
        )
    for w in loaded.warnings:
        err.print(f"[yellow]warning[/yellow] {w}", markup=True, highlight=False)


# ---------------------------------------------------------------------------- policy

PolicyArg = Annotated[
    str, typer.Argument(help="policy file, or builtin:default / builtin:go-default")
]


@policy_app.command("validate")
def policy_validate(file: PolicyArg, output: OutputOpt = Output.text) -> None:
    """Load a policy file and compile every CEL rule in it."""
    try:
        policy = resolve_policy(file)
    except ValidationFailed as exc:
        fail_with_problems(exc.problems, output, {"file": file})
    rules = [{"name": r.rule.name, "result": r.rule.result.value} for r in policy.rules]
    if output.structured:
        print_data({"valid": True, "file": file, "name": policy.name, "rules": rules}, output)
        return
    out.print(f"{file}: valid — policy {policy.name!r}, {len(rules)} rules")
    for r in rules:
        out.print(f"  {r['name']} → {r['result']}")


@policy_app.command("show")
def policy_show(
    name: Annotated[str, typer.Argument(help=f"one of: {', '.join(BUILTIN_POLICIES)}")] = "default",
) -> None:
    """Print a built-in policy, to read or copy."""
    if name.removeprefix("builtin:") not in BUILTIN_POLICIES:
        _usage(f"no built-in policy {name!r}; choose from {', '.join(BUILTIN_POLICIES)}")
    out.print(builtin_policy_text(name.removeprefix("builtin:")), end="", markup=False)


def _read_events(event: list[str], events_file: str | None) -> list[HealthEvent]:
    sources: list[tuple[str, str]] = [(f"--event #{i + 1}", text) for i, text in enumerate(event)]
    if events_file is not None:
        try:
            text = sys.stdin.read() if events_file == "-" else Path(events_file).read_text("utf-8")
        except OSError as exc:
            _usage(f"cannot read --events {events_file}: {exc.strerror}")
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip() and not line.lstrip().startswith("#"):
                sources.append((f"{events_file}:{n}", line))
    if not sources:
        _usage("give at least one --event JSON or an --events FILE of JSON lines")
    parsed: list[HealthEvent] = []
    problems: list[Problem] = []
    for where, text in sources:
        try:
            parsed.append(HealthEvent.model_validate_json(text))
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                path = tuple(p for p in e["loc"] if isinstance(p, str | int))
                msg = e["msg"]
                if e["type"] == "enum":
                    msg = f"unknown event_type; expected {e.get('ctx', {}).get('expected')}"
                problems.append(Problem(where, path, msg, value=e.get("input")))
    if problems:
        fail_with_problems(problems, Output.text)
    return parsed


def _event_label(e: HealthEvent) -> str:
    metrics = ", ".join(f"{k}={v}" for k, v in e.metrics.items())
    gpu = f" gpu {e.gpu_index}" if e.gpu_index >= 0 else ""
    return f"{e.event_type.value}{gpu}" + (f" ({metrics})" if metrics else "")


_RESULT_STYLE = {
    HealthResult.HEALTHY: "green",
    HealthResult.DEGRADED: "yellow",
    HealthResult.UNHEALTHY: "red",
}


@policy_app.command("test")
def policy_test(
    file: PolicyArg,
    event: Annotated[
        list[str] | None,
        typer.Option("--event", "-e", help="an event as JSON; repeat for several"),
    ] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="file of JSON lines, one event each; - = stdin")
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """Judge events with a policy: the rule each one matched, its result, the node's result."""
    try:
        policy = resolve_policy(file)
    except ValidationFailed as exc:
        fail_with_problems(exc.problems, output, {"file": file})
    parsed = _read_events(event or [], events)
    verdict: NodeVerdict = policy.evaluate(parsed)
    remedy = policy.remedy(verdict)
    if output.structured:
        print_data({
            "policy": policy.name,
            "node_result": verdict.result.value,
            "decided_by": verdict.rule,
            "remedy": remedy.model_dump(mode="json") if remedy else None,
            "events": [
                {
                    "event": v.event.model_dump(mode="json"),
                    "rule": v.rule,
                    "result": v.result.value,
                    "evaluation_errors": [{"rule": r, "error": m} for r, m in v.errors],
                }
                for v in verdict.events
            ],
        }, output)
        return
    table = Table(title=f"policy {policy.name}", title_justify="left")
    table.add_column("#", justify="right")
    table.add_column("event")
    table.add_column("rule")
    table.add_column("result")
    for i, v in enumerate(verdict.events, start=1):
        style = _RESULT_STYLE[v.result]
        table.add_row(str(i), _event_label(v.event), v.rule or "(no rule matched)",
                      f"[{style}]{v.result.value}[/{style}]")
    print_table(table)
    for i, v in enumerate(verdict.events, start=1):
        for rule, message in v.errors:
            err.print(f"note: event {i}: rule {rule!r} could not be evaluated: {message}")
    style = _RESULT_STYLE[verdict.result]
    out.print(f"node: [{style}]{verdict.result.value}[/{style}]"
              + (f" (rule {verdict.rule})" if verdict.rule else ""))
    if remedy is not None:
        out.print(f"repair: {remedy.rung} first for {remedy.fault} (then up the pool's "
                  f"health.remediation; at most {remedy.attempts.reset} reset(s) and "
                  f"{remedy.attempts.reboot} reboot(s) within its window)", markup=False)


# ---------------------------------------------------------------------------- xid


@xid_app.command("explain")
def xid_explain(
    code: Annotated[int, typer.Argument(help="Xid code, e.g. 79")],
    output: OutputOpt = Output.text,
) -> None:
    """Explain one Xid code: what it means, NVIDIA's action, what Navarch does."""
    info = xid.lookup(code)
    if info is None:
        if output.structured:
            print_data({"code": code, "known": False}, output)
        else:
            known = f"1–{max(xid.catalog())}"
            err.print(f"Xid {code} is not in NVIDIA's catalog (known codes: {known}).")
            err.print("Navarch's default policy marks an unknown Xid degraded.")
        raise typer.Exit(EXIT_INVALID)
    if output.structured:
        print_data({"known": True, **info.to_dict()}, output)
        return
    style = {"unhealthy": "red", "degraded": "yellow", "conditional": "magenta"}[info.verdict]
    out.print(f"[bold]Xid {info.code}[/bold]  {info.name}")
    out.print(f"  {info.summary}")
    out.print(f"  category        {info.category}")
    out.print(f"  NVIDIA action   {info.nvidia_action_text} ({info.nvidia_action})")
    out.print(f"  fatal           {info.fatal}")
    out.print(f"  Navarch         [{style}]{info.verdict}[/{style}]: {info.navarch_action}")


@xid_app.command("list")
def xid_list(
    verdict: Annotated[
        str | None,
        typer.Option(help="only codes with this verdict: unhealthy|degraded|conditional"),
    ] = None,
    output: OutputOpt = Output.text,
) -> None:
    """List every Xid code in the dictionary."""
    if verdict not in (None, "unhealthy", "degraded", "conditional"):
        _usage(f"--verdict must be unhealthy, degraded or conditional, not {verdict!r}")
    rows = [i for i in xid.catalog().values() if verdict is None or i.verdict == verdict]
    if output.structured:
        print_data([i.to_dict() for i in rows], output)
        return
    table = Table(show_edge=False)
    for col in ("code", "name", "category", "verdict"):
        table.add_column(col)
    for i in rows:
        table.add_row(str(i.code), i.name, i.category, i.verdict)
    print_table(table)


@xid_app.command("scan")
def xid_scan(
    file: Annotated[
        str, typer.Argument(help="dmesg / journalctl -k / kern.log text; - = stdin")
    ] = "-",
    output: OutputOpt = Output.text,
) -> None:
    """Find Xid and SXid events in kernel-log text, one per line."""
    try:
        stream = sys.stdin if file == "-" else open(file, encoding="utf-8", errors="replace")  # noqa: SIM115
    except OSError as exc:
        _usage(f"cannot read {file}: {exc.strerror}")
    found = 0
    with stream:
        for event in kernel_log.scan(stream):
            found += 1
            if output.structured:  # one document per event, as found
                if output is Output.yaml:
                    import yaml

                    sys.stdout.write("---\n" + yaml.safe_dump(event.to_dict(), sort_keys=False))
                else:
                    sys.stdout.write(json.dumps(event.to_dict()) + "\n")
                continue
            if event.kind == "sxid":
                sev = {True: "fatal", False: "non-fatal", None: "?"}[event.fatal]
                out.print(f"SXid {event.code} ({sev}) on NVSwitch {event.normalized_pci_bus_id}: "
                          f"{event.message}", markup=False)
                continue
            info = xid.lookup(event.code)
            proc = ""
            if event.pid is not None or event.process_name:
                proc = f" pid={event.pid if event.pid is not None else '?'}"
                proc += f" name={event.process_name or '?'}"
            verdict = info.verdict if info else "unknown"
            name = info.name if info else "unknown code"
            out.print(f"Xid {event.code} on GPU {event.normalized_pci_bus_id}{proc}: {name} "
                      f"→ {verdict}: {event.message}", markup=False)
    if not output.structured:
        err.print(f"{found} Xid/SXid event(s) found")
