"""What scripted `dcgmi diag -j` prints for a failed and a passed run (the `tools` fixture
puts such a script on PATH)."""

from __future__ import annotations

DIAG_FAIL = {"DCGM Diagnostic": {"test_categories": [
    {"category": "Deployment", "tests": [
        {"name": "Denylist", "results": [{"gpu_id": 0, "status": "Pass"}]}]},
    {"category": "Hardware", "tests": [
        {"name": "Memory", "results": [
            {"gpu_id": 0, "status": "Pass"},
            {"gpu_id": 3, "status": "Fail", "info": "Memory errors detected"}]}]},
]}}
DIAG_PASS = {"DCGM Diagnostic": {"test_categories": [
    {"category": "Hardware", "tests": [{"name": "Memory", "results": [
        {"gpu_id": 0, "status": "Pass"}, {"gpu_id": 1, "status": "Skip"}]}]}]}}
