"""`navarch provider types`: what each cloud in a config sells (GPU instance types, prices,
where there is capacity), asked directly with this machine's cloud credentials."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from navarch.activities.cloud import CloudProvider, ProviderError
from navarch.cli.common import load_config_or_exit
from navarch.cli.output import Output, OutputOpt, err, print_data, print_table
from navarch.config.settings import fake_world_path
from navarch.contracts.cloud import InstanceTypeInfo
from navarch.contracts.spec import ProviderChoice, build_pool_specs
from navarch.sim.fakeworld import FakeWorld
from navarch.workers.control_plane import provider_factories

provider_app = typer.Typer(help="Ask the clouds in a config what they offer.",
                           no_args_is_help=True)


def _choices(file: Path) -> dict[str, ProviderChoice]:
    """One choice per provider named by a pool (with that pool's regions and zones)."""
    loaded = load_config_or_exit(file)
    choices: dict[str, ProviderChoice] = {}
    for spec in build_pool_specs(loaded).values():
        for choice in spec.providers:
            choices.setdefault(choice.name, choice)
    return choices


def _where(info: InstanceTypeInfo) -> str:
    if info.available_regions is not None:
        return ("capacity: " + ", ".join(info.available_regions)
                if info.available_regions else "no capacity now")
    if info.zones:
        shown = ", ".join(info.zones[:6])
        return f"offered: {shown}" + (f" (+{len(info.zones) - 6})" if len(info.zones) > 6
                                      else "")
    return ""


@provider_app.command("types")
def provider_types(
    file: Annotated[Path, typer.Option("--file", "-f", help="a Navarch (Go-format) config")],
    provider: Annotated[str | None, typer.Option(help="only this provider")] = None,
    gpu: Annotated[str | None, typer.Option(help="only types whose GPU model has this")] = None,
    output: OutputOpt = Output.table,
) -> None:
    """List the GPU instance types of each provider a pool uses, with price and availability
    where the cloud tells them (Lambda: price and regions with capacity; EC2: zones
    offering the type; GCE: zones, and the GPUs N1 machines can attach)."""
    choices = _choices(file)
    if provider is not None:
        if provider not in choices:
            err.print(f"error: no pool uses provider {provider!r} (used: "
                      f"{', '.join(sorted(choices)) or 'none'})")
            raise typer.Exit(2)
        choices = {provider: choices[provider]}
    needs_world = any(c.type == "fake" for c in choices.values())
    factories = provider_factories(world=FakeWorld(fake_world_path()) if needs_world else None)
    results: dict[str, list[InstanceTypeInfo] | str] = {}
    for name, choice in choices.items():
        factory = factories.get(choice.type)
        if factory is None:
            results[name] = f"the {choice.type} client is not installed (navarch[{choice.type}])"
            continue
        try:
            listed = asyncio.run(_list(factory(choice)))
        except ProviderError as exc:
            results[name] = f"{exc.error_type.value}: {exc}"
            continue
        results[name] = [t for t in listed
                         if gpu is None or gpu.lower() in (t.gpu_model or "").lower()]
    failed = any(isinstance(r, str) for r in results.values())
    if output.structured:
        print_data({name: r if isinstance(r, str) else [t.model_dump(mode="json") for t in r]
                    for name, r in results.items()}, output)
        raise typer.Exit(1 if failed else 0)
    for name, result in results.items():
        if isinstance(result, str):
            err.print(f"[bold]{name}[/bold]: [red]{result}[/red]")
            continue
        table = Table(title=f"{name} ({choices[name].type})", show_edge=False,
                      title_justify="left")
        for col in ("type", "GPUs", "model", "vCPUs", "memory GiB", "$/hour", "where"):
            table.add_column(col)
        for t in result:
            gpus = f"≤{t.gpu_count}" if t.kind == "accelerator" and t.gpu_count else str(
                t.gpu_count or "?")
            table.add_row(t.name + (" (attach to N1)" if t.kind == "accelerator" else ""),
                          gpus, t.gpu_model or "?", str(t.vcpus or ""),
                          f"{t.memory_gib:g}" if t.memory_gib else "",
                          f"{t.price_per_hour:.2f}" if t.price_per_hour is not None else "",
                          _where(t))
        print_table(table, drop=("where", "memory GiB", "vCPUs"))
    raise typer.Exit(1 if failed else 0)


async def _list(provider: CloudProvider) -> list[InstanceTypeInfo]:
    return await provider.list_types()
