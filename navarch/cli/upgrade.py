"""`navarch upgrade`: the control plane's builds under Worker Versioning. Show where the
fleet runs, make a new build current or ramp it, roll back, and move quiet nodes now."""

from __future__ import annotations

import dataclasses
from typing import Annotated

import typer
from rich.table import Table

from navarch.cli.common import ask
from navarch.cli.output import Output, OutputOpt, out, print_data, print_table
from navarch.temporal.versioning import DEFAULT_DEPLOYMENT, DeploymentView

upgrade_app = typer.Typer(
    help="Upgrade the control plane by Worker Versioning (`navarch-worker --versioned`): "
         "runs stay on the build they started on and move to the current one at their next "
         "continue-as-new.", no_args_is_help=True)

DeploymentOpt = Annotated[str, typer.Option(
    "--deployment", envvar="NAVARCH_DEPLOYMENT_NAME",
    help="the worker deployment (default navarch)")]


def _show(state: DeploymentView, output: Output) -> None:
    if output.structured:
        print_data(dataclasses.asdict(state), output)
        return
    ramp = (f"; {state.ramping} ramping at {state.ramp_percentage:g}%"
            if state.ramping else "")
    out.print(f"deployment {state.name}: current {state.current or 'none'}{ramp}",
              markup=False)
    table = Table("BUILD", "STATUS", "RUNNING", "DRAINAGE", "CREATED", "LAST CURRENT")
    for v in state.versions:
        table.add_row(v.build_id, v.status, "-" if v.running is None else str(v.running),
                      v.drainage or "-",
                      f"{v.created:%Y-%m-%d %H:%M:%S}" if v.created else "-",
                      f"{v.last_current:%Y-%m-%d %H:%M:%S}" if v.last_current else "-")
    print_table(table, drop=("CREATED", "LAST CURRENT", "DRAINAGE"))


def _moved(workflows: list[str]) -> None:
    out.print(f"signalled {len(workflows)} workflow(s) to move to the current build"
              + (f": {', '.join(workflows)}" if workflows else ""), markup=False)


@upgrade_app.command("status")
def status(deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
           output: OutputOpt = Output.table) -> None:
    """The current and ramping builds, and how many workflows still run on each build."""
    _show(ask(lambda fleet: fleet.upgrades(deployment).status()), output)


@upgrade_app.command("current")
def current(
    build_id: Annotated[str, typer.Argument(help="the build to make current")],
    move: Annotated[bool, typer.Option(
        "--move", help="also signal nodes (and the sweep) on other builds to move now")] = False,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    output: OutputOpt = Output.table,
) -> None:
    """Make a build current: its workers must be polling. New pools and nodes start on it;
    running ones move at their next continue-as-new (or now, with --move)."""
    state = ask(lambda fleet: fleet.upgrades(deployment).set_current(build_id))
    _show(state, output)
    if move:
        _moved(ask(lambda fleet: fleet.upgrades(deployment).move()))


@upgrade_app.command("ramp")
def ramp(
    build_id: Annotated[str, typer.Argument(help="the build to ramp")],
    percentage: Annotated[float, typer.Argument(help="share of new runs, 0-100")],
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
    output: OutputOpt = Output.table,
) -> None:
    """Send a share of new runs (new workflows, and continue-as-new moves) to a build."""
    _show(ask(lambda fleet: fleet.upgrades(deployment).ramp(build_id, percentage)), output)


@upgrade_app.command("rollback")
def rollback(
    move: Annotated[bool, typer.Option(
        "--move", help="also signal nodes on other builds to move back now")] = False,
    deployment: DeploymentOpt = DEFAULT_DEPLOYMENT,
) -> None:
    """End a ramp; with none, make the build that was current before current again. Keep
    the newer build's workers running until its runs have moved back."""
    out.print(ask(lambda fleet: fleet.upgrades(deployment).rollback()), markup=False)
    if move:
        _moved(ask(lambda fleet: fleet.upgrades(deployment).move()))


@upgrade_app.command("move")
def move(deployment: DeploymentOpt = DEFAULT_DEPLOYMENT) -> None:
    """Signal every node, and the orphan sweep, still on another build than the current
    one to move now (pools move by themselves)."""
    _moved(ask(lambda fleet: fleet.upgrades(deployment).move()))
