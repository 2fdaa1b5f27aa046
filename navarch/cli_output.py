"""Output shared by the `navarch` command groups: the consoles, `-o table|json|yaml`,
problem lists. JSON and YAML carry string enums and RFC 3339 times."""

from __future__ import annotations

import json
from collections.abc import Sequence
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console

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
