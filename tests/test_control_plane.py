"""The control-plane worker's optional cloud clients: a missing extra is simply absent."""

from __future__ import annotations

import sys

import pytest

from navarch.workers.control_plane import ControlPlane, installed


def test_installed_is_false_when_a_parent_package_is_missing():
    # `google` is present (protobuf brings it) while `google.cloud` may not be: the probe
    # must answer False, not raise, so the worker starts without the gcp extra.
    assert installed("json")
    assert not installed("navarch_absent_pkg")
    assert not installed("google.navarch_absent_pkg.compute_v1")


def test_worker_starts_without_the_gcp_extra(monkeypatch: pytest.MonkeyPatch):
    # Hide google.cloud the way an install without navarch[gcp] lacks it.
    for name in [m for m in sys.modules if m == "google.cloud" or m.startswith("google.cloud.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "google.cloud", None)
    plane = ControlPlane(object())  # type: ignore[arg-type]
    factories = plane.provider_factories()
    assert "gcp" not in factories
    assert {"aws", "lambda"} <= set(factories)
