from __future__ import annotations

from navarch.health import xid


def test_dictionary_covers_every_catalog_code():
    codes = sorted(xid.catalog())
    assert codes == list(range(1, 173))


def test_verdict_follows_nvidia_fatality():
    for info in xid.catalog().values():
        expected = {"yes": "unhealthy", "conditional": "conditional"}.get(info.fatal, "degraded")
        assert info.verdict == expected, info
        assert info.summary and info.name and info.nvidia_action_text


def test_well_known_codes():
    bus = xid.lookup(79)
    assert bus is not None
    assert bus.name == "ROBUST_CHANNEL_GPU_HAS_FALLEN_OFF_THE_BUS"
    assert bus.verdict == "unhealthy" and bus.nvidia_action == "RESTART_BM"
    assert "PCIe" in bus.summary
    assert xid.lookup(13).verdict == "degraded"  # type: ignore[union-attr]
    assert xid.lookup(48).nvidia_action == "WORKFLOW_XID_48"  # type: ignore[union-attr]
    assert xid.lookup(45).verdict == "conditional"  # type: ignore[union-attr]
    assert xid.lookup(999) is None
