"""Quiet endings for activities nobody waits for any more.

When a workflow ends, or the server times an activity out, the activity learns it at its
next heartbeat and is cancelled, though no one asked for a cancel. The SDK reports such
an activity as failed, with a warning and a traceback: a leaving node's health watch would
log one every time. Its result goes nowhere, so this interceptor ends it with a benign
error instead, which the SDK logs at debug. A cancel someone asked for (the workflow's,
a worker shutdown, a pause or reset) is left to the SDK."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)


class QuietAbandonment(Interceptor):
    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _Inbound(next)


class _Inbound(ActivityInboundInterceptor):
    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        try:
            return await super().execute_activity(input)
        except asyncio.CancelledError:
            details = activity.cancellation_details()
            if details is None or not (details.not_found or details.timed_out):
                raise
            why = "its workflow has ended" if details.not_found else "the server timed it out"
            raise ApplicationError(f"activity no longer wanted: {why}", type="Abandoned",
                                   non_retryable=True,
                                   category=ApplicationErrorCategory.BENIGN) from None
