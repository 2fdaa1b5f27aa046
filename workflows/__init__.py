"""Navarch's Temporal workflows (deterministic orchestration only). The list the worker runs
is `registry.WORKFLOWS`; this file stays empty, since the sandbox runs it for every
workflow instance."""
