"""OrphanSweepWorkflow (id `orphan-sweep`, one per namespace): every `interval`, compare what
runs at each configured provider and region with the live node workflows.

- A machine of this installation that no live node owns, older than the grace, is
  terminated (confirmed gone where it lives) or, in `report` mode, recorded once.
- A live node whose machine the cloud no longer runs is told so (`instance_gone`): it
  leaves at once and its pool replaces it.

A long-lived workflow rather than a Schedule: the grace counts from when the sweep first
saw a machine where the cloud gives no launch time (Lambda), which needs memory across
sweeps; `navarch cloud orphans` reads the findings with a query; the orphan gauge is
exported from this one workflow whichever worker runs it; and a config change reaches it
by an update (`configure`), as a pool's does. It continues-as-new every 100 sweeps.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

from .upgrade import continue_as_new, upgrade_due

with workflow.unsafe.imports_passed_through():
    from navarch.contracts.base import (
        FORBID_UNKNOWN,
        InvalidPayload,
        decode_payload,
        invalid_request,
    )
    from navarch.contracts.cloud import TerminateRequest
    from navarch.contracts.cloud import terminate as terminate_instance
    from navarch.contracts.names import node_workflow_id
    from navarch.contracts.node import InstanceGoneInput
    from navarch.contracts.sweep import (
        GoneMachine,
        Orphan,
        ReconcileRequest,
        ReconcileResult,
        SweepConfig,
        SweepInput,
        SweepRecord,
        SweepState,
        SweepStatus,
        SweepTarget,
        reconcile,
    )
    from navarch.decisions.sweep import plan_orphans

from . import metrics
from .node import activity_cause

RECONCILE_TIMEOUT = timedelta(minutes=5)
RECONCILE_RETRY = RetryPolicy(maximum_attempts=3, initial_interval=timedelta(seconds=2),
                              non_retryable_error_types=["InvalidRequestError"])
TERMINATE_TIMEOUT = timedelta(minutes=5)
TERMINATE_RETRY = RetryPolicy(maximum_attempts=5, initial_interval=timedelta(seconds=2),
                              maximum_interval=timedelta(seconds=30),
                              non_retryable_error_types=["InvalidRequestError"])
SWEEPS_PER_RUN = 100
KEEP_RECORDS = 100
ORPHANS_GAUGE = ("orphan_instances", "machines of this installation no live node owns, by "
                                    "provider and region")


@workflow.defn(name="OrphanSweepWorkflow")
class OrphanSweepWorkflow:
    @workflow.init
    def __init__(self, params: SweepInput) -> None:
        self._config = params.config
        self._state = params.state or SweepState()
        self._status = SweepStatus(config=self._config, sweeps=self._state.sweeps,
                                   terminated=self._state.terminated,
                                   records=list(self._state.records))
        self._wake = False
        self._look = False  # a `check_upgrade` signal: look at the target build now
        self._closing = False  # this run is about to continue as new
        self._orphans = metrics.gauge_set(*ORPHANS_GAUGE)

    @workflow.query(name="status")
    def status(self) -> SweepStatus:
        return self._status.model_copy(update={"records": self._state.records[-KEEP_RECORDS:],
                                               "sweeps": self._state.sweeps,
                                               "terminated": self._state.terminated})

    @workflow.update(name="configure")
    def configure(self, *payloads: Any) -> str:
        config = decode_payload(SweepConfig, payloads, optional=False, context=FORBID_UNKNOWN)
        if config == self._config:
            return "unchanged"
        self._config = self._status.config = config
        self._wake = True  # sweep at once with the new settings
        return (f"configured: every {config.interval}, grace {config.grace}, mode "
                f"{config.mode}, {len(config.targets)} target(s)")

    @configure.validator
    def _validate_configure(self, *payloads: Any) -> None:
        try:
            decode_payload(SweepConfig, payloads, optional=False, context=FORBID_UNKNOWN)
        except InvalidPayload as exc:
            raise invalid_request("configure", exc) from None

    @workflow.signal(name="check_upgrade")
    def check_upgrade(self, *payloads: Any) -> None:
        """Wake and look whether a newer build is the target (`navarch upgrade move` sends
        it): the sweep moves now instead of at its next interval. When none is, the next
        sweep comes early."""
        self._look = True

    @workflow.update(name="sweep_now")
    async def sweep_now(self) -> SweepStatus:
        """Sweep at once (whatever the mode, `off` included) and answer with the result."""
        done = self._state.sweeps
        self._wake = True
        # The run may be closing for continue-as-new: then the last sweep's answer.
        await workflow.wait_condition(lambda: self._state.sweeps > done or self._closing)
        return self.status()

    @workflow.run
    async def run(self, params: SweepInput) -> None:
        swept = 0
        while (swept < SWEEPS_PER_RUN and not workflow.info().is_continue_as_new_suggested()
               and not upgrade_due()):
            forced, self._wake, self._look = self._wake, False, False
            if self._config.mode != "off" or forced:
                await self._sweep()
                swept += 1
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: self._wake or self._look,
                                              timeout=self._config.interval)
        self._closing = True
        await workflow.wait_condition(workflow.all_handlers_finished)
        continue_as_new(SweepInput(config=self._config, state=self._state))

    # ------------------------------------------------------------------ one sweep

    async def _sweep(self) -> None:
        config, state, now = self._config, self._state, workflow.now()
        results = await asyncio.gather(*(self._reconcile(t) for t in config.targets))
        errors = {t.key(): r for t, r in zip(config.targets, results, strict=True)
                  if isinstance(r, str)}
        found = [r for r in results if isinstance(r, ReconcileResult)]
        orphans = [o for r in found for o in r.orphans]
        plan = plan_orphans(orphans, state.first_seen, set(state.reported), now,
                            config.grace, "report" if config.mode == "off" else config.mode)
        targets = {t.provider.name: t for t in config.targets}
        left = [*plan.waiting, *plan.report]
        for orphan in plan.terminate:
            if not await self._terminate(targets[orphan.provider], orphan):
                left.append(orphan)
        for orphan in plan.report:
            self._log("reported", orphan.provider, orphan.instance_id, orphan.node_id,
                      f"no live owner ({orphan.why}); report mode leaves it running")
        for gone in (g for r in found for g in r.gone):
            await self._tell_gone(gone)
        for target, error in errors.items():
            self._log("error", target.split("/")[0], detail=error)
        state.first_seen = plan.first_seen
        state.reported = [k for k in [*state.reported, *(o.key() for o in plan.report)]
                          if k in plan.first_seen]
        state.sweeps += 1
        self._status = SweepStatus(
            config=config, cluster_id=found[0].cluster_id if found else "",
            last_sweep_at=now, orphans=sorted(left, key=lambda o: o.key()), errors=errors,
            results=[r.model_copy(update={"orphans": [], "gone": []}) for r in found])
        self._orphans.update(_orphan_counts(left, config.targets))

    async def _reconcile(self, target: SweepTarget) -> ReconcileResult | str:
        try:
            return await workflow.execute_activity(
                reconcile, ReconcileRequest(target=target, cluster_id=self._config.cluster_id),
                start_to_close_timeout=RECONCILE_TIMEOUT, retry_policy=RECONCILE_RETRY,
                heartbeat_timeout=timedelta(minutes=1))
        except ActivityError as err:
            return activity_cause(err)

    async def _terminate(self, target: SweepTarget, orphan: Orphan) -> bool:
        try:
            await workflow.execute_activity(
                terminate_instance,
                TerminateRequest(provider=target.provider, instance_id=orphan.instance_id,
                                 node_id=orphan.node_id, region=orphan.region),
                start_to_close_timeout=TERMINATE_TIMEOUT, retry_policy=TERMINATE_RETRY,
                heartbeat_timeout=timedelta(minutes=1))
        except ActivityError as err:
            self._log("terminate_failed", orphan.provider, orphan.instance_id, orphan.node_id,
                      activity_cause(err))
            return False
        self._state.terminated += 1
        place = "/".join(p for p in (orphan.region, orphan.zone) if p)
        self._log("terminated", orphan.provider, orphan.instance_id, orphan.node_id,
                  f"no live owner ({orphan.why}); in {place or 'its region'}, "
                  f"first seen {orphan.first_seen:%Y-%m-%d %H:%M:%S}")
        metrics.count("orphans_terminated", {"provider": orphan.provider,
                                             "region": orphan.region or "-"},
                      "machines the orphan sweep terminated")
        return True

    async def _tell_gone(self, gone: GoneMachine) -> None:
        detail = f"{gone.instance_id} is {gone.state} at {gone.provider}"
        try:
            await workflow.get_external_workflow_handle(node_workflow_id(gone.node_id)).signal(
                "instance_gone", InstanceGoneInput(instance_id=gone.instance_id,
                                                   state=gone.state, detail=detail))
        except Exception as exc:  # the node ended since the listing
            detail += f" (the node could not be told: {exc})"
        self._log("instance_gone", gone.provider, gone.instance_id, gone.node_id, detail)

    def _log(self, action: Any, provider: str, instance_id: str = "", node_id: str = "",
             detail: str = "") -> None:
        self._state.records.append(SweepRecord(at=workflow.now(), action=action,
                                               target=provider, instance_id=instance_id,
                                               node_id=node_id, detail=detail))
        del self._state.records[:-KEEP_RECORDS]
        workflow.logger.info("orphan sweep: %s %s %s %s", action, provider, instance_id, detail)


def _orphan_counts(orphans: list[Orphan], targets: list[SweepTarget]
                   ) -> dict[tuple[tuple[str, str], ...], float]:
    counts: dict[tuple[tuple[str, str], ...], float] = {
        (("provider", t.provider.name), ("region", t.region)): 0 for t in targets if t.region}
    for orphan in orphans:
        key = (("provider", orphan.provider), ("region", orphan.region or "-"))
        counts[key] = counts.get(key, 0) + 1
    return counts
