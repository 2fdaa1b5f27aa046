from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from navarch.bootstrap import render_user_data, systemd_unit

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
