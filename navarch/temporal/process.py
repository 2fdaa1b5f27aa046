"""Entry-point plumbing shared by `navarch-worker` and `navarch-agent`."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from typing import NoReturn

# Seconds to let the SDK's core threads wind down before the interpreter exits. Without
# this, ~20-30% of exits crash (sdk-python #300) and exit codes can't be trusted.
SDK_SETTLE_SECONDS = 0.2


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )


def run_until_signalled(body: Callable[[asyncio.Event], Awaitable[int]]) -> NoReturn:
    """Run `body(stop)` until it returns; SIGINT/SIGTERM set `stop`. Exit with its code."""

    async def _main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        rc = await body(stop)
        await asyncio.sleep(SDK_SETTLE_SECONDS)
        return rc

    rc = asyncio.run(_main())
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)
