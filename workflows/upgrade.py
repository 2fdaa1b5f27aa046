"""How Navarch's workflows move between builds under Worker Versioning.

Every workflow is pinned (the versioned worker's default behaviour, set in
`navarch.temporal.versioning`; a workflow type cannot declare it and still run on an
unversioned worker, as `navarch up` and the tests run them): a run executes on the build
it started on from its first task to its last, so a change to workflow code needs no
patch to be safe for runs already going.
A long-lived workflow (pool, node, orphan sweep) moves to the deployment's current build at
its continue-as-new: it continues as new when Temporal says the target build changed (seen
at its next task) or at its own cadence, and the new run starts on the target build.
Without versioning (the workers unversioned, the time-skipping test server, the replayer)
the target never "changes" and continue-as-new behaves as before.
"""

from __future__ import annotations

from typing import Any, NoReturn

from temporalio import workflow


def upgrade_due() -> bool:
    """A newer build is the target for this pinned run: continue as new to move to it."""
    return workflow.info().is_target_worker_deployment_version_changed()


def continue_as_new(arg: Any) -> NoReturn:
    """Continue as new onto the deployment's target build (the same one when nothing
    changed)."""
    workflow.continue_as_new(
        arg, initial_versioning_behavior=workflow.ContinueAsNewVersioningBehavior.AUTO_UPGRADE)
