"""The CUDA memory test runs in a child process; its result, crash or hang comes back as a
CheckResult. (On a GPU host tests/test_gpu.py runs it for real.)"""

from __future__ import annotations

import sys

import pytest

from navarch.agent import cuda_check


def test_child_process_result_comes_back():
    result = cuda_check.memory_check(0)
    # No GPU here: the child reports libcuda missing; with a GPU it passes.
    assert result.name == "memory"
    assert result.status in ("skipped", "pass"), result.detail


def test_child_that_crashes_is_a_failure(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    result = cuda_check.memory_check(3)
    assert result.status == "fail"
    assert "GPU 3: memory test exited 1" in result.detail


def test_child_that_hangs_is_killed(monkeypatch: pytest.MonkeyPatch, tmp_path):
    sleeper = tmp_path / "python"
    sleeper.write_text("#!/bin/sh\nsleep 30\n")
    sleeper.chmod(0o755)
    monkeypatch.setattr(sys, "executable", str(sleeper))
    result = cuda_check.memory_check(1, timeout_s=0.5)
    assert result.status == "fail"
    assert "did not finish in 0.5 s" in result.detail


def test_here_without_libcuda_is_skipped(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(cuda_check, "_load", lambda: None)
    assert cuda_check.memory_check_here(0).status == "skipped"
