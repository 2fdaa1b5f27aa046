"""`navarch simulate validate|run FILE`: Go Navarch scenario files on the real workflows."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Annotated, Any

import typer

from navarch.cli_output import Output, OutputOpt, err, out, print_data, print_problems
from navarch.scenario import Scenario, load_scenario
from navarch.validation import ValidationFailed

simulate_app = typer.Typer(help="Run Go Navarch scenario files on the real workflows.",
                           no_args_is_help=True)

FileArg = Annotated[Path, typer.Argument(help="a scenario file (the Go Navarch format)")]


def _load(file: Path, fmt: Output) -> Scenario:
    try:
        return load_scenario(file)
    except ValidationFailed as exc:
        if fmt.structured:
            print_data({"valid": False, "errors": [p.to_dict() for p in exc.problems]}, fmt)
        else:
            print_problems(exc.problems)
        raise typer.Exit(1) from None
    except OSError as exc:
        err.print(f"error: cannot read {file}: {exc.strerror}")
        raise typer.Exit(2) from None


@simulate_app.command("validate")
def simulate_validate(file: FileArg, output: OutputOpt = Output.text) -> None:
    """Check a scenario file: every error at once, with file, line and key."""
    scenario = _load(file, output)
    summary = {"valid": True, "name": scenario.name, "nodes": len(scenario.fleet),
               "events": len(scenario.events), "assertions": len(scenario.assertions),
               "stress": scenario.stress is not None}
    if output.structured:
        print_data(summary, output)
        return
    out.print(f"{file}: valid — {scenario.name}: {len(scenario.fleet)} node(s), "
              f"{len(scenario.events)} event(s), {len(scenario.assertions)} assertion(s)"
              + (" (stress block: validated, not run)" if scenario.stress else ""))


async def _run(scenario: Scenario, folder: Path, seed: int) -> dict[str, Any]:
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.testing import WorkflowEnvironment

    from navarch.fakeworld import FakeWorld
    from navarch.ids import SEARCH_ATTRIBUTES
    from navarch.simulator import Simulator, new_task_queue
    from navarch.temporal_client import temporal_cli_path
    from navarch.workers.control_plane import ControlPlane

    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=temporal_cli_path(), data_converter=pydantic_data_converter,
        search_attributes=SEARCH_ATTRIBUTES, ip="127.0.0.1", ui=False,
        dev_server_log_level="error")
    try:
        world = FakeWorld(folder / "fake-cloud.db")
        plane = ControlPlane(env.client, world=world, boot_seconds=0.5,
                             task_queue=new_task_queue())
        stop = asyncio.Event()
        worker = asyncio.create_task(plane.run(stop))
        try:
            sim = Simulator(env.client, world, plane.task_queue, say=out.print)
            if scenario.stress is not None:
                return await sim.run_stress(scenario, seed)
            return await sim.run(scenario)
        finally:
            stop.set()
            with contextlib.suppress(Exception):
                await worker
    finally:
        await env.shutdown()


@simulate_app.command("run")
def simulate_run(
    file: FileArg,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the file's)")] = None,
    runs_dir: Annotated[Path, typer.Option("--out", help="where run folders go")] = Path(
        "sim-runs"),
    output: OutputOpt = Output.text,
) -> None:
    """Run a scenario: its fleet (or the stress block's generated fleet, with chaos) as real
    NodeWorkflows on a private Temporal dev server with simulated GPU hosts; events at their
    times; assertions checked. Writes
    sim-runs/<timestamp>-<name>/ with the scenario, report.json and report.html."""
    from navarch import sim_report

    scenario = _load(file, output)
    stress = scenario.stress
    if stress is not None and (stress.fleet_gen is None or stress.unsupported()):
        missing = stress.unsupported() or ["a stress block without fleet_gen"]
        err.print(f"error: `simulate run` cannot run {', '.join(missing)} yet (the file is "
                  "valid: `navarch simulate validate` checks it); remove it to run the rest")
        raise typer.Exit(2)
    run_seed = seed if seed is not None else (stress.seed if stress else 0)
    folder = sim_report.run_dir(runs_dir, scenario.name)
    if not output.structured:
        size = stress.fleet_gen.total_nodes if stress and stress.fleet_gen else len(
            scenario.fleet)
        out.print(f"running {scenario.name} ({size} node(s)) → {folder}")
    report = asyncio.run(_run(scenario, folder, run_seed))
    report["seed"] = run_seed
    sim_report.write(folder, file.read_text(), report)
    if output.structured:
        print_data(report, output)
    else:
        for a in report["assertions"]:
            mark = "[green]ok[/green]" if a["passed"] else "[red]FAIL[/red]"
            out.print(f"  assertion {a['type']} {a['target']} = {a['expected']}: {mark}"
                      + ("" if a["passed"] else f" (got {a['actual']})"))
        for failure in report["failures"]:
            err.print(f"[red]failed[/red]: {failure}")
        out.print(f"{'PASSED' if report['passed'] else 'FAILED'} in {report['duration_s']:.1f} s;"
                  f" report: {folder / 'report.html'}")
    raise typer.Exit(0 if report["passed"] else 1)
