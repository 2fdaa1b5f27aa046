"""`navarch simulate validate|run FILE`: Go Navarch scenario files on the real workflows."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from navarch.cli.output import Output, OutputOpt, err, out, print_data, print_problems
from navarch.sim.scenario import Scenario, StressConfig, load_scenario
from navarch.temporal.client import local_environment
from navarch.temporal.process import configure_logging
from navarch.validation import ValidationFailed

if TYPE_CHECKING:
    from temporalio.client import Client

    from navarch.sim.fakeworld import FakeWorld

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
    gen = scenario.stress.fleet_gen if scenario.stress else None
    nodes = gen.total_nodes if gen else len(scenario.fleet)
    summary = {"valid": True, "name": scenario.name, "nodes": nodes,
               "events": len(scenario.events), "assertions": len(scenario.assertions),
               "stress": scenario.stress is not None}
    if output.structured:
        print_data(summary, output)
        return
    out.print(f"{file}: valid — {scenario.name}: {nodes} node(s), "
              f"{len(scenario.events)} event(s), {len(scenario.assertions)} assertion(s)"
              + (" and a stress block" if scenario.stress else ""))


# Fleets larger than this run their simulated hosts on one shared task queue.
SHARED_HOSTS_ABOVE = 200


async def _run(scenario: Scenario, folder: Path, seed: int, hosts: str,
               say: Callable[[str], None], log_level: str = "ERROR") -> dict[str, Any]:
    from navarch.sim.fakeworld import FakeWorld
    from navarch.sim.runner import Simulator, new_task_queue
    from navarch.temporal.client import connect_local
    from navarch.temporal.devserver import DevServer, free_port
    from navarch.temporal.runtime import worker_runtime

    # Errors only from the SDK core: a simulated host that goes silent gives up its held
    # activities after the server timed them out, and the core warns about each one.
    quiet = worker_runtime(0, quiet_core=True)
    # A private server in memory, no UI; its log level never: its only errors are queries
    # the simulator gave up on ("query does not exist").
    home = Path(tempfile.mkdtemp(prefix="navarch-sim-"))
    server = DevServer(home, port=free_port(), ui_port=None, persist=False, log_level="never")
    await asyncio.to_thread(server.start)
    try:
        client = await connect_local(server.address, ready_within=30, runtime=quiet)
        world = FakeWorld(folder / "fake-cloud.db")
        world.simulate_diagnostics()  # run_diagnostic: answered from each host's faults
        if scenario.repair is not None:
            world.set_reboot_seconds(scenario.repair.reboot_time.total_seconds())
        queue = new_task_queue()
        size = len(scenario.fleet) or (scenario.stress.fleet_gen.total_nodes
                                       if scenario.stress and scenario.stress.fleet_gen else 0)
        cache = max(1000, 2 * size + 100)
        sim = Simulator(client, world, queue, say=say)
        work = (sim.run_stress(scenario, seed) if scenario.stress is not None
                else sim.run(scenario))
        if hosts == "shared":
            report = await with_worker_process(
                work, server.address, world, queue, cache,
                folder / "worker.log", log_level)
        else:
            report = await with_worker_here(work, client, world, queue, cache)
        report["hosts"] = hosts
        return report
    finally:
        await asyncio.to_thread(server.stop)
        shutil.rmtree(home, ignore_errors=True)


async def with_worker_here(work: Awaitable[dict[str, Any]], client: Client, world: FakeWorld,
                            queue: str, cache: int) -> dict[str, Any]:
    """The control-plane worker and every simulated host in this process (per-host hosts:
    small fleets)."""
    from navarch.workers.control_plane import ControlPlane

    plane = ControlPlane(client, world=world, boot_seconds=0.5, task_queue=queue,
                         host_mode="per-host", max_cached_workflows=cache)
    stop = asyncio.Event()
    worker = asyncio.create_task(plane.run(stop))
    try:
        return await work
    finally:
        stop.set()
        with contextlib.suppress(Exception):
            await worker


async def with_worker_process(work: Awaitable[dict[str, Any]], address: str,
                               world: FakeWorld, queue: str, cache: int,
                               log: Path, log_level: str) -> dict[str, Any]:
    """The real `navarch-worker` (workflows, fake cloud, shared simulated hosts) as its own
    process, as steady_fleet runs it: the simulator's sampling and chaos get a core of their
    own. Its log goes to the run folder."""
    with log.open("ab") as out:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "navarch.workers.main", "--fake-cloud", "--task-queue", queue,
            "--fake-world", str(world.path), "--simulated-hosts", "shared",
            "--max-cached-workflows", str(cache), "--metrics-port", "0",
            "--log-level", log_level,  # ERROR: silent hosts make the SDK warn a lot
            env=local_environment(address), stdout=out,
            stderr=subprocess.STDOUT)
    exited = asyncio.ensure_future(proc.wait())
    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task, exited}, return_when=asyncio.FIRST_COMPLETED)
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise RuntimeError(f"the worker process exited ({proc.returncode}) mid-run; "
                               f"see {log}")
        return task.result()
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.shield(exited), 60)
            except TimeoutError:
                proc.kill()
                await exited


def go_report_files(stress: StressConfig, folder: Path, lines: list[str]) -> list[Path]:
    """Where a Go stress file names report_file, html_report_file or log_file (relative to
    the working directory, as the Go simulator has them), the run's report.json,
    report.html and console log go there too."""
    written = []
    for name, source in ((stress.report_file, folder / "report.json"),
                         (stress.html_report_file, folder / "report.html"),
                         (stress.log_file, None)):
        if not name:
            continue
        target = Path(name)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source.read_text() if source else "\n".join(lines) + "\n")
        except OSError as exc:
            err.print(f"error: cannot write {target}: {exc.strerror}; the run folder has "
                      "everything")
            continue
        written.append(target)
    return written


@simulate_app.command("run")
def simulate_run(
    file: FileArg,
    seed: Annotated[int | None, typer.Option(help="random seed (default: the file's)")] = None,
    runs_dir: Annotated[Path, typer.Option("--out", help="where run folders go")] = Path(
        "sim-runs"),
    verbose: Annotated[bool, typer.Option(
        "--verbose", "-v", help="the control plane's and simulated hosts' logs at INFO (in "
        "worker.log with shared hosts)")] = False,
    debug: Annotated[bool, typer.Option(help="the same at DEBUG")] = False,
    hosts: Annotated[str, typer.Option(
        help="per-host: each simulated host its own agent worker and queue (as real "
             "agents); shared: one worker and queue for all (large fleets); auto: shared "
             f"above {SHARED_HOSTS_ABOVE} nodes")] = "auto",
    output: OutputOpt = Output.text,
) -> None:
    """Run a scenario: its fleet (or the stress block's generated fleet, with chaos) as real
    NodeWorkflows on a private Temporal dev server with simulated GPU hosts; events at their
    times; assertions checked. Writes
    sim-runs/TIMESTAMP-NAME/ with the scenario, report.json and report.html."""
    from navarch.sim import report as sim_report

    scenario = _load(file, output)
    stress = scenario.stress
    if stress is not None and stress.fleet_gen is None:
        err.print(f"error: {file}: stress: a stress block needs fleet_gen to make its fleet")
        raise typer.Exit(2)
    if hosts not in ("auto", "per-host", "shared"):
        err.print(f"error: --hosts {hosts!r}: one of auto, per-host, shared")
        raise typer.Exit(2)
    run_seed = seed if seed is not None else (stress.seed if stress else 0)
    folder = sim_report.run_dir(runs_dir, scenario.name)
    size = stress.fleet_gen.total_nodes if stress and stress.fleet_gen else len(scenario.fleet)
    if hosts == "auto":
        hosts = "shared" if size > SHARED_HOSTS_ABOVE else "per-host"
    if not output.structured:
        out.print(f"running {scenario.name} ({size} node(s), {hosts} simulated hosts) → "
                  f"{folder}")
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        out.print(line)

    log_level = "DEBUG" if debug else "INFO" if verbose else "ERROR"
    if log_level != "ERROR":
        configure_logging(log_level)
    report = asyncio.run(_run(scenario, folder, run_seed, hosts, say, log_level))
    report["seed"] = run_seed
    sim_report.write(folder, file.read_text(), report)
    lines += [*report["failures"],
              f"{'PASSED' if report['passed'] else 'FAILED'} in {report['duration_s']:.1f} s"]
    copies = go_report_files(stress, folder, lines) if stress is not None else []
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
        for copy in copies:
            out.print(f"  also written: {copy}")
    raise typer.Exit(0 if report["passed"] else 1)
