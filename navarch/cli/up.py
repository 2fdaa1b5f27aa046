"""`navarch up` (Navarch on this machine: the embedded dev server, the control-plane worker,
simulated hosts for the fake cloud), `navarch setup` (search attributes on a cluster) and
`navarch demo ...` (break a simulated host to watch a repair)."""

from __future__ import annotations

import asyncio
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer
from temporalio.service import RPCError

from navarch.cli.common import fail, load_config_or_exit
from navarch.cli.output import err, out
from navarch.client import Navarch
from navarch.config.settings import fake_world_path, navarch_home
from navarch.health.xid import lookup
from navarch.sim.fakeworld import FakeWorld
from navarch.temporal.client import connect, connect_local, register_search_attributes
from navarch.temporal.codec import EncryptionCodec, keys_from_environment
from navarch.temporal.codec_server import CodecServer, serve
from navarch.temporal.runtime import worker_runtime

DEMO_REBOOT_SECONDS = 20.0

demo_app = typer.Typer(help="Break simulated hosts on the fake cloud, to watch repairs.",
                       no_args_is_help=True)


def _world_for(node_id: str) -> FakeWorld:
    path = fake_world_path()
    if not path.exists():
        fail(f"no fake cloud at {path}; is `navarch up` running?")
    world = FakeWorld(path)
    if world.get_by_node(node_id) is None:
        fail(f"node {node_id} is not a simulated host in {path}")
    return world


@demo_app.command("inject-xid")
def demo_inject_xid(node_id: str, code: int,
                    gpu: Annotated[int, typer.Option(help="GPU index")] = 0) -> None:
    """Make a simulated host report an Xid (stays until `navarch demo clear`)."""
    world = _world_for(node_id)
    info = lookup(code)
    message = (f"NVRM: Xid (PCI:0000:{0x18 + gpu:02x}:00): {code}, "
               f"{info.summary if info else 'unknown Xid'}")
    world.inject(node_id, "xid", gpu_index=gpu, value=code, message=message)
    verdict = info.verdict if info else "unknown"
    out.print(f"Xid {code} injected on GPU {gpu} of node {node_id} ({verdict} in the catalog)")


@demo_app.command("clear")
def demo_clear(node_id: str) -> None:
    """Remove every injected fault from a simulated host."""
    removed = _world_for(node_id).clear(node_id)
    out.print(f"cleared {removed} fault(s) on node {node_id}")


async def run_up(*, demo: bool, config: Path | None, address: str, ui_port: int,
                 metrics_port: int = 0) -> int:
    from navarch.temporal.devserver import DevServer, port_open
    from navarch.workers.control_plane import ControlPlane

    host, _, port_text = address.rpartition(":")
    port = int(port_text)
    server = codec = None
    if port_open(host or "127.0.0.1", port):
        out.print(f"using the Temporal server already answering at {address}")
    else:
        codec = _ui_codec_server(ui_port)
        server = DevServer(navarch_home(), port=port, ui_port=ui_port,
                           codec_endpoint=codec.ui_endpoint if codec else None)
        out.print(f"starting the Temporal dev server (state in {server.db_path})...")
        await asyncio.to_thread(server.start)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        if metrics_port and port_open("127.0.0.1", metrics_port):
            err.print(f"warning: port {metrics_port} is taken: no metrics (use --metrics-port)")
            metrics_port = 0
        runtime = worker_runtime(metrics_port, "127.0.0.1")
        client = await (connect_local(address, ready_within=30, runtime=runtime)
                        if server is not None
                        else connect(target_host=address, ready_within=30, runtime=runtime))
        await register_search_attributes(client)
        world = FakeWorld(fake_world_path())
        # Its hosts are simulated: their diagnostics answer from their faults, and a reboot
        # takes long enough to watch.
        world.simulate_diagnostics()
        world.set_reboot_seconds(DEMO_REBOOT_SECONDS)
        plane = ControlPlane(client, world=world)
        worker = asyncio.create_task(plane.run(stop))
        files = [config] if config else []
        if demo:
            files.append(Path(__file__).with_name("demo.yaml"))
        loaded = [load_config_or_exit(file) for file in files]
        if loaded:
            applied = await Navarch(client).apply(*loaded)
            for name, what in applied.pools.items():
                out.print(f"pool {name}: {what}")
            out.print(f"orphan sweep: {applied.sweep}")
        out.print(f"Navarch is up. Temporal UI: http://127.0.0.1:{ui_port}/namespaces/"
                  f"{client.namespace}/workflows  (Ctrl-C stops)")
        if metrics_port:
            out.print(f"  metrics: http://127.0.0.1:{metrics_port}/metrics")
        if codec is not None:
            out.print(f"  payloads are encrypted; the UI reads them through {codec.server.url}"
                      f" (temporal CLI: --codec-endpoint {codec.server.url} --codec-auth "
                      f"'Bearer {codec.token}')", markup=False, soft_wrap=True)
        out.print("  navarch node list            nodes and their states")
        out.print("  navarch demo inject-xid NODE 119  a GPU the ladder resets")
        out.print("  navarch demo inject-xid NODE 79   a GPU fallen off the bus: replaced")
        await worker
    finally:
        stop.set()
        if server is not None:
            await asyncio.to_thread(server.stop)
        if codec is not None:
            codec.server.shutdown()
            codec.server.server_close()
        out.print("stopped")
    return 0


@dataclass
class _UiCodec:
    server: CodecServer
    token: str

    @property
    def ui_endpoint(self) -> str:  # the UI cannot send a header: the token is the path
        return f"{self.server.url}/{self.token}"


def _ui_codec_server(ui_port: int) -> _UiCodec | None:
    """With codec keys configured, a codec server on 127.0.0.1 (a fresh token each run) for
    the dev server's UI, so the histories `navarch up` writes encrypted stay readable there."""
    keys = keys_from_environment()
    if not keys:
        return None
    token = secrets.token_urlsafe(24)
    server = serve("127.0.0.1", 0, EncryptionCodec(keys), tokens=[token],
                   origins=[f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}"])
    server.serve_in_thread()
    return _UiCodec(server, token)


def setup() -> None:
    """Prepare a Temporal namespace for Navarch: create its search attributes where missing
    (run once per cluster; `navarch up` does it for the embedded server)."""

    async def run() -> list[str]:
        return await register_search_attributes(await connect())

    try:
        added = asyncio.run(run())
    except RPCError as exc:
        fail(f"cannot create search attributes: {exc.message}")
    out.print("search attributes: " + (f"created {', '.join(added)}" if added
                                      else "all present"))


def up(
    demo: Annotated[bool, typer.Option("--demo", help="also start the demo pool")] = False,
    config: Annotated[Path | None, typer.Option("--file", "-f", help="pools to apply")] = None,
    address: Annotated[str, typer.Option(help="Temporal frontend")] = "127.0.0.1:7233",
    ui_port: Annotated[int, typer.Option(help="Temporal UI port")] = 8233,
    metrics_port: Annotated[int, typer.Option(
        help="Prometheus metrics of the control-plane worker (0: off)")] = 9400,
) -> None:
    """Run Navarch on this machine: the Temporal dev server (unless one is already
    running), the control-plane worker and simulated GPU hosts for the fake cloud."""
    raise typer.Exit(asyncio.run(run_up(demo=demo, config=config, address=address,
                                        ui_port=ui_port, metrics_port=metrics_port)))
