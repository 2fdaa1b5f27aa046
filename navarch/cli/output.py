"""Output shared by the `navarch` command groups: the consoles, `-o table|json|yaml`,
problem lists. JSON and YAML carry string enums and RFC 3339 times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from navarch.validation import Problem

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


class Output(StrEnum):
    table = "table"
    text = "text"  # the same as table
    json = "json"
    yaml = "yaml"

    @property
    def structured(self) -> bool:
        return self in (Output.json, Output.yaml)


OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="table, json or yaml")]


def print_table(table: Table, *, drop: Sequence[str] = (),
                console: Console | None = None) -> None:
    """A table whole. Piped or written to a file there is no width to fit, so every column
    keeps its width (grep and cut see whole values); in a terminal too narrow for it, the
    columns named in `drop` go first, in that order, until the rest fit, and rich shrinks
    what still does not."""
    console = console or out
    if not console.is_terminal:
        before = console.width  # print(width=) would not go past the console's own
        console.width = max(before, _natural_width(console, table))
        try:
            console.print(table)
        finally:
            console.width = before
        return
    for name in drop:
        if _natural_width(console, table) <= console.width:
            break
        table.columns[:] = [c for c in table.columns if c.header != name]
    console.print(table)


def _natural_width(console: Console, table: Table) -> int:
    return Measurement.get(console, console.options.update(width=10_000), table).maximum


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str), highlight=False)


def print_data(data: Any, fmt: Output) -> None:
    """`data` (JSON-ready: dicts, lists, strings, numbers) as JSON or YAML."""
    if fmt is Output.yaml:
        import yaml

        plain = json.loads(json.dumps(data, default=str))
        out.print(yaml.safe_dump(plain, sort_keys=False, allow_unicode=True).rstrip("\n"),
                  markup=False, highlight=False)
    else:
        print_json(data)


def print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        err.print(f"[red]error[/red] {p}", markup=True, highlight=False)
    err.print(f"{len(problems)} error{'s' if len(problems) != 1 else ''}")


# Click's names for parameter types, as most CLIs show them.
_TYPE_NAMES = {"str": "TEXT", "int": "INTEGER", "float": "FLOAT", "path": "PATH",
               "bool": "BOOLEAN", "datetime": "DATETIME"}


def _plain_type(label: str | None) -> str | None:
    if not label:
        return label
    bare = label.strip("<>")
    return bare if "|" in bare else _TYPE_NAMES.get(bare, bare.upper())


def help_like_other_clis() -> None:
    """typer 0.29 labels each parameter in `--help` with its Python type (`--no-wait <bool>`,
    `--reason <str>`) and shows a required argument as `{node_id}`. Show what other CLIs do:
    no type for a flag, click's type names (TEXT, INTEGER, PATH) for values, NODE_ID."""
    from typer.core import TyperArgument, TyperOption

    option_type = TyperOption.display_type_rich
    argument_type = TyperArgument.display_type_rich

    def option_display(self: TyperOption, ctx: Any) -> str | None:
        return None if self.is_flag else _plain_type(option_type(self, ctx))

    def argument_display(self: TyperArgument, ctx: Any) -> str | None:
        return _plain_type(argument_type(self, ctx))

    def usage_name(self: TyperArgument) -> str:
        name = self.display_name_raw.upper()
        return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")

    TyperOption.display_type_rich = option_display  # type: ignore[method-assign]
    TyperArgument.display_type_rich = argument_display  # type: ignore[method-assign,assignment]
    TyperArgument._usage_display_name = usage_name  # type: ignore[method-assign]
