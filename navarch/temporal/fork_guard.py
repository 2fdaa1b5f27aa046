"""Keep a worker from forking a workflow's history when it answers a query.

A query the server sends straight to a worker (not with a workflow task) carries the whole
history, up to events that no workflow task has taken yet. A worker that does not hold the
workflow in memory replays it to answer, and SDK core (temporalio 1.35) runs those pending
events too, as if they were a task of their own, then keeps the workflow in memory. When
the pending task later reaches that worker (it waited on the queue of a worker that died),
only the events that came after the query are left to run: one task's events ran as two
activations, where a replay of the history runs them as one. A workflow whose commands
depend on how its events are grouped (a loop that starts a timer or a child each turn)
then records commands that its own replay cannot reproduce, and every later task that has
to replay it fails with a nondeterminism error. tests/test_scale_out_e2e.py reproduces it
with a dead worker, a query and two signals.

The guard recognises that activation: it is not a replay, yet it carries no new task time
(core has no started workflow task to take a time from, so it repeats the previous
activation's). It fails that activation instead of running it: the query is answered with
an error (the caller asks again), core drops the workflow from this worker's memory, and
the pending task, when it comes, replays the history from the start as one activation.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from temporalio.bridge.proto.workflow_activation import WorkflowActivation
from temporalio.bridge.proto.workflow_completion import WorkflowActivationCompletion
from temporalio.worker import WorkflowInstance, WorkflowInstanceDetails, WorkflowRunner

log = logging.getLogger(__name__)

REFUSAL = ("navarch fork guard: the worker that ran this workflow is gone and its next "
           "task is still waiting for it; this worker will not answer from a replay that "
           "runs that task's events early (it would fork the workflow's history). Ask "
           "again in a few seconds")


def runs_pending_events(previous: WorkflowActivation | None, act: WorkflowActivation) -> bool:
    """Whether `act` runs events no workflow task has taken (see the module's doc)."""
    if previous is None or act.is_replaying:
        return False
    if all(job.HasField("query_workflow") or job.HasField("remove_from_cache")
           for job in act.jobs):
        return False
    return (act.timestamp == previous.timestamp
            and act.history_length > previous.history_length)


class _Guarded(WorkflowInstance):
    def __init__(self, inner: WorkflowInstance) -> None:
        self._inner = inner
        self._previous: WorkflowActivation | None = None

    def activate(self, act: WorkflowActivation) -> WorkflowActivationCompletion:
        previous, self._previous = self._previous, act
        if runs_pending_events(previous, act):
            info = self._inner.get_info()
            log.warning("%s (%s %s, history length %d)", REFUSAL, info.workflow_type,
                        info.workflow_id, act.history_length)
            completion = WorkflowActivationCompletion(run_id=act.run_id)
            completion.failed.failure.message = REFUSAL
            return completion
        return self._inner.activate(act)

    def get_serialization_context(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.get_serialization_context(*args, **kwargs)

    def get_external_store_context(self, *args: Any, **kwargs: Any) -> Any:
        return self._inner.get_external_store_context(*args, **kwargs)

    def get_info(self) -> Any:
        return self._inner.get_info()

    def get_thread_id(self) -> int | None:
        return self._inner.get_thread_id()

    def __getattr__(self, name: str) -> Any:  # the SDK's own extras on an instance
        return getattr(self._inner, name)


class ForkGuard(WorkflowRunner):
    """A workflow runner that runs workflows with `inner`, less the activations that would
    fork their history."""

    def __init__(self, inner: WorkflowRunner) -> None:
        self._inner = inner

    def prepare_workflow(self, defn: Any) -> None:
        self._inner.prepare_workflow(defn)

    def create_instance(self, det: WorkflowInstanceDetails) -> WorkflowInstance:
        return _Guarded(self._inner.create_instance(det))

    def set_worker_level_failure_exception_types(
            self, types: Sequence[type[BaseException]]) -> None:
        self._inner.set_worker_level_failure_exception_types(types)
