"""The `navarch` command line: one app, a command group per module of `navarch.cli`.

Exit codes: 0 success, 1 validation errors (or a failed check), 2 usage errors.
`-o json` gives machine-readable output wherever the output is data.
"""

from __future__ import annotations

import os
import sys

import typer

from navarch.cli import (
    checks,
    cloud,
    codec,
    credentials,
    node,
    pool,
    providers,
    simulate,
    up,
    upgrade,
)
from navarch.cli.common import EXIT_INVALID, EXIT_OK
from navarch.cli.output import err, help_like_other_clis
from navarch.client import NavarchError
from navarch.temporal.client import BinaryNotFound
from navarch.temporal.codec import CodecKeyError

help_like_other_clis()
app = typer.Typer(
    name="navarch",
    help="Navarch: a GPU fleet manager on Temporal.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)
app.add_typer(checks.config_app, name="config")
app.add_typer(checks.policy_app, name="policy")
app.add_typer(checks.xid_app, name="xid")
app.add_typer(pool.pool_app, name="pool")
app.add_typer(node.node_app, name="node")
app.add_typer(up.demo_app, name="demo")
app.add_typer(providers.provider_app, name="provider")
app.add_typer(cloud.cloud_app, name="cloud")
app.add_typer(simulate.simulate_app, name="simulate")
app.add_typer(upgrade.upgrade_app, name="upgrade")
app.command("up")(up.up)
app.command("setup")(up.setup)
app.command("codec-server")(codec.codec_server)
app.command("codec-key")(codec.codec_key)
app.command("codec-token")(codec.codec_token)
app.command("agent-credentials")(credentials.agent_credentials)


def main() -> None:
    """Entry point. Exits through os._exit so a Temporal client's exit crash (sdk-python
    #300) can never turn a success into a failure; output is flushed first."""
    code = EXIT_OK
    try:
        app()
    except SystemExit as exc:
        if isinstance(exc.code, int):
            code = exc.code
        elif exc.code is not None:
            err.print(str(exc.code))
            code = EXIT_INVALID
    except (BinaryNotFound, CodecKeyError, NavarchError) as exc:  # no trace, just the why
        err.print(f"error: {exc}", markup=False)
        code = EXIT_INVALID
    except KeyboardInterrupt:
        code = 130
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    main()
