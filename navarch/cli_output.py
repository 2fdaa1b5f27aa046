"""Output shared by the `navarch` command groups: the consoles, JSON, problem lists."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console

from navarch.validation import Problem

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str), highlight=False)


def print_problems(problems: Sequence[Problem]) -> None:
    for p in problems:
        err.print(f"[red]error[/red] {p}", markup=True, highlight=False)
    err.print(f"{len(problems)} error{'s' if len(problems) != 1 else ''}")
