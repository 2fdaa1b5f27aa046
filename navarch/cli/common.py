"""What the `navarch` command groups share beyond printing: failing with a clear message,
asking the fleet (through `navarch.client`), loading the user's config (one loader, so
every command reports a bad file the same way)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from pydantic import BaseModel

from navarch.cli.output import Output, err, print_data, print_problems
from navarch.client import Navarch, NavarchError
from navarch.config.loader import LoadedConfig, load_config
from navarch.validation import Problem, ValidationFailed

T = TypeVar("T")

EXIT_OK = 0
EXIT_INVALID = 1
EXIT_USAGE = 2


def fail(message: str, code: int = EXIT_INVALID) -> NoReturn:
    err.print(f"error: {message}", markup=False)
    raise typer.Exit(code)


def fail_with_problems(problems: list[Problem], fmt: Output = Output.text,
                       extra: dict[str, Any] | None = None) -> NoReturn:
    """Every problem of a file, as text on stderr or as `{"valid": false, "errors": [...]}`."""
    if fmt.structured:
        print_data({"valid": False, "errors": [p.to_dict() for p in problems],
                    **(extra or {})}, fmt)
    else:
        print_problems(problems)
    raise typer.Exit(EXIT_INVALID)


def load_config_or_exit(file: Path, fmt: Output = Output.text) -> LoadedConfig:
    try:
        return load_config(file)
    except ValidationFailed as exc:
        fail_with_problems(exc.problems, fmt, {"file": str(file)})


def ask(fetch: Callable[[Navarch], Awaitable[T]]) -> T:
    """Connect, run `fetch` on the fleet, and fail with the client's clear message (what was
    asked: why) when Temporal or a workflow says no."""

    async def run() -> T:
        return await fetch(await Navarch.connect())

    try:
        return asyncio.run(run())
    except NavarchError as exc:
        fail(str(exc))


M = TypeVar("M", bound=BaseModel)


def show(fetch: Callable[[Navarch], Awaitable[M]], output: Output) -> M | None:
    """Ask for a status; with -o json|yaml print it whole and return None, else return it
    for the command's own table or text."""
    status = ask(fetch)
    if output.structured:
        print_data(status.model_dump(mode="json"), output)
        return None
    return status
