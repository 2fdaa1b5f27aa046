"""`navarch cloud orphans`: the machines at the clouds that no live node owns, as the orphan
sweep last found them, and what it did about them."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from navarch.cli.common import show
from navarch.cli.output import Output, OutputOpt, out, print_table

cloud_app = typer.Typer(help="What runs at the clouds, against what Navarch owns.",
                        no_args_is_help=True)


@cloud_app.command("orphans")
def orphans(
    now: Annotated[bool, typer.Option("--now", help="sweep now and show that sweep")] = False,
    output: OutputOpt = Output.table,
) -> None:
    """Machines of this installation that no live node owns (terminated after the grace,
    or only reported in `report` mode), and the sweep's recent actions."""
    status = show(lambda fleet: fleet.sweep(now=now), output)
    if status is None:
        return
    cfg = status.config
    when = f"{status.last_sweep_at:%Y-%m-%d %H:%M:%S}" if status.last_sweep_at else "not yet"
    out.print(f"orphan sweep ({cfg.mode}, every {cfg.interval}, grace {cfg.grace}) of "
              f"installation {status.cluster_id or '?'}: {status.sweeps} sweep(s), last "
              f"{when}; {status.terminated} terminated")
    for target, problem in sorted(status.errors.items()):
        out.print(f"  {target}: listing failed: {problem}", markup=False)
    if status.orphans:
        table = Table("PROVIDER", "REGION", "INSTANCE", "NODE", "POOL", "FIRST SEEN", "WHY")
        for o in status.orphans:
            table.add_row(o.provider, o.zone or o.region, o.instance_id, o.node_id or "-",
                          o.pool or "-", f"{o.first_seen:%H:%M:%S}" if o.first_seen else "-",
                          o.why)
        print_table(table, drop=("POOL", "FIRST SEEN"))
    else:
        out.print("no orphans")
    if status.records:
        table = Table("AT", "ACTION", "PROVIDER", "INSTANCE", "NODE", "DETAIL")
        for r in status.records[-20:]:
            table.add_row(f"{r.at:%Y-%m-%d %H:%M:%S}", r.action, r.target, r.instance_id or "-",
                          r.node_id or "-", r.detail)
        print_table(table, drop=("NODE",))
