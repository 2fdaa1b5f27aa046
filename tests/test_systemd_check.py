from __future__ import annotations

import stat

from navarch.agent.systemd import service_active


def test_service_states(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert service_active("nvidia-fabricmanager").status == "skipped"
    script = tmp_path / "systemctl"
    script.write_text('#!/bin/sh\nif [ "$2" = good ]; then echo active; exit 0; fi\n'
                      'echo inactive; exit 3\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    assert service_active("good").status == "pass"
    bad = service_active("nvidia-fabricmanager")
    assert (bad.status, bad.detail) == ("fail", "inactive")
