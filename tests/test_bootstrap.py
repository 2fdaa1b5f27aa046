from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from navarch.bootstrap import AgentSource, render_user_data, systemd_unit

ROOT = Path(__file__).resolve().parent.parent


def test_user_data_is_valid_cloud_config_that_starts_the_agent():
    text = render_user_data(node_id="0b7c-42", pool="training",
                            temporal_address="temporal.internal:7233",
                            extra_env={"TEMPORAL_TLS_CLIENT_CERT_PATH": "/etc/navarch/tls.pem"})
    assert text.startswith("#cloud-config\n")
    doc = yaml.safe_load(text)
    files = {f["path"]: f for f in doc["write_files"]}
    env = files["/etc/navarch/agent.env"]
    assert env["permissions"] == "0600"
    assert env["content"].splitlines() == [
        "NAVARCH_NODE_ID=0b7c-42", "NAVARCH_POOL=training",
        "TEMPORAL_ADDRESS=temporal.internal:7233", "TEMPORAL_NAMESPACE=default",
        "TEMPORAL_TLS_CLIENT_CERT_PATH=/etc/navarch/tls.pem"]
    unit = files["/etc/systemd/system/navarch-agent.service"]["content"]
    assert unit == systemd_unit()
    assert "ExecStart=/opt/navarch/venv/bin/navarch-agent" in unit
    assert ["systemctl", "enable", "--now", "navarch-agent.service"] in doc["runcmd"]
    assert any("navarch[agent]==" in " ".join(map(str, c)) for c in doc["runcmd"])


def test_values_that_would_break_the_env_file_are_refused():
    with pytest.raises(ValueError, match="NAVARCH_NODE_ID"):
        render_user_data(node_id="a\nEVIL=1", pool="p", temporal_address="t:7233")


def test_deploy_folder_holds_the_same_files():
    assert (ROOT / "deploy/systemd/navarch-agent.service").read_text() == systemd_unit()
    assert "$node_id" in (ROOT / "deploy/cloud-init/agent-user-data.yaml").read_text()


def test_startup_script_writes_the_same_files_and_runs_in_sh(tmp_path):
    import subprocess

    from navarch.bootstrap import render_startup_script

    script = render_startup_script(node_id="0b7c-42", pool="training",
                                   temporal_address="temporal.internal:7233")
    assert script.startswith("#!/bin/sh\n")
    assert "NAVARCH_NODE_ID=0b7c-42\nNAVARCH_POOL=training\n" in script
    assert systemd_unit().rstrip("\n") in script
    assert "systemctl enable --now navarch-agent.service" in script
    checked = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True)
    assert checked.returncode == 0, checked.stderr
    with pytest.raises(ValueError, match="TOKEN"):
        render_startup_script(node_id="n", pool="p", temporal_address="t:1",
                              extra_env={"TOKEN": "a`rm -rf /`"})


def _wheel(folder: Path) -> Path:
    """A minimal `navarch` wheel (version 9.9.9), built by hand: no index, no build."""
    import zipfile

    path = folder / "navarch-9.9.9-py3-none-any.whl"
    files = {
        "navarch/__init__.py": '__version__ = "9.9.9"\n',
        "navarch-9.9.9.dist-info/METADATA": "Metadata-Version: 2.1\nName: navarch\n"
                                            "Version: 9.9.9\n",
        "navarch-9.9.9.dist-info/WHEEL": "Wheel-Version: 1.0\nGenerator: test\n"
                                         "Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for name, text in files.items():
            wheel.writestr(name, text)
        wheel.writestr("navarch-9.9.9.dist-info/RECORD",
                       "".join(f"{n},,\n" for n in [*files, "navarch-9.9.9.dist-info/RECORD"]))
    return path


@pytest.mark.parametrize(("source", "expected"), [
    (AgentSource(version="0.3.1"), ["/opt/navarch/venv/bin/pip install --quiet "
                                    "'navarch[agent]==0.3.1'"]),
    (AgentSource(version="0.3.1", index_url="https://pypi.internal/simple", extras=("agent",
                                                                                   "aws")),
     ["/opt/navarch/venv/bin/pip install --quiet --index-url https://pypi.internal/simple "
      "'navarch[agent,aws]==0.3.1'"]),
    (AgentSource(wheel="https://artifacts.internal/navarch-0.3.1-py3-none-any.whl"),
     ["/opt/navarch/venv/bin/pip install --quiet "
      "'navarch[agent] @ https://artifacts.internal/navarch-0.3.1-py3-none-any.whl'"]),
])
def test_the_package_source_is_the_one_named(source, expected):
    assert source.commands() == expected


def test_a_hashed_wheel_installs_only_when_its_hash_matches(tmp_path):
    import hashlib
    import subprocess
    import sys

    wheel = _wheel(tmp_path)
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)

    def install(sha256: str) -> subprocess.CompletedProcess[str]:
        commands = AgentSource(wheel=str(wheel), sha256=sha256).commands()
        assert commands[2].startswith("/opt/navarch/venv/bin/pip install --quiet \"navarch"
                                      "[agent]==$(")  # the dependencies, by the version found
        script = "\n".join(commands[:2]).replace("/opt/navarch/venv", str(venv)).replace(
            "/opt/navarch/agent-requirement.txt", str(tmp_path / "req.txt"))
        return subprocess.run(["sh", "-ec", script], capture_output=True, text=True,
                              timeout=120, env={"PATH": "/usr/bin:/bin",
                                                "PIP_NO_INDEX": "1",
                                                "PIP_DISABLE_PIP_VERSION_CHECK": "1"})

    refused = install("0" * 64)
    assert refused.returncode != 0
    assert "THESE PACKAGES DO NOT MATCH THE HASHES" in refused.stderr
    assert not list(venv.glob("lib/python*/site-packages/navarch"))
    done = install(digest)
    assert done.returncode == 0, done.stderr
    assert list(venv.glob("lib/python*/site-packages/navarch/__init__.py"))
