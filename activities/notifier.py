"""The workload notifier: tell the workload system (Slurm, Kubernetes, a webhook) that a
node was cordoned, uncordoned or is being drained, ask whether the drain is done, and at the
grace's end requeue, cancel or delete what is left.

Webhook payloads keep the Go Navarch's shape: POST `{event, node_id, reason, timestamp}`;
drain status is `GET drain_status_url?node_id=...` answering `{drained, message}`.
Header values may reference `${VAR}`; they are expanded here, from the worker's
environment, so tokens never pass through workflow history.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from typing import Any

from temporalio import activity
from temporalio.exceptions import ApplicationError

from navarch.config.schema import NotifierConfig
from navarch.contracts.notifier import (
    DRAIN_STATUS,
    FORCE_DRAIN,
    NOTIFY,
    DrainStatus,
    DrainStatusInput,
    ForceDrainInput,
    ForceDrainResult,
    NotifyInput,
    SchedulerNode,
)
from navarch.redact import excerpt, scrub


class SchedulerUnreachable(ApplicationError):
    """The workload scheduler did not answer (or refused): retried, never "drained"."""

    def __init__(self, message: str) -> None:
        super().__init__(message, type="SchedulerUnreachable")


_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_headers(headers: dict[str, str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        def sub(m: re.Match[str], header: str = name) -> str:
            var = m.group(1)
            if var not in os.environ:
                raise ApplicationError(
                    f"notifier header {header!r} uses ${{{var}}}, which is not set in the "
                    "worker's environment", type="NotifierConfigError", non_retryable=True,
                )
            return os.environ[var]

        out[name] = _VAR.sub(sub, value)
    return out


def _request(method: str, url: str, headers: dict[str, str], body: bytes | None,
             timeout: float) -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), bytes(resp.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.read()
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise ApplicationError(f"{method} {scrub(url)}: {excerpt(str(exc), headers.values())}",
                               type="NotifierUnreachable") from None


async def _call(method: str, url: str, cfg: NotifierConfig, payload: Any = None) -> bytes:
    webhook = cfg.webhook
    assert webhook is not None
    headers = {"Content-Type": "application/json", **expand_headers(webhook.headers)}
    body = json.dumps(payload).encode() if payload is not None else None
    status, data = await asyncio.to_thread(
        _request, method, url, headers, body, webhook.timeout.total_seconds()
    )
    if status >= 400:
        # The answer may echo what it was sent (a 401 quoting the Authorization header): only
        # a scrubbed excerpt reaches the failure, and so history and the worker's log.
        raise ApplicationError(
            f"{method} {scrub(url)} answered {status}: {excerpt(data, headers.values())}",
            type="NotifierHTTPError",
        )
    return data


def _scheduler(cfg: NotifierConfig) -> Any:
    """The workload scheduler a notifier config names (slurm, kubernetes), or None."""
    if cfg.type == "slurm" and cfg.slurm is not None:
        from .slurm import Slurm

        return Slurm(cfg.slurm)
    if cfg.type == "kubernetes" and cfg.kubernetes is not None:
        from .kubernetes import Kubernetes

        return Kubernetes(cfg.kubernetes)
    return None


def _target(node_id: str, target: SchedulerNode | None) -> SchedulerNode:
    return target or SchedulerNode(node_id=node_id)


@activity.defn(name=NOTIFY)
async def notify(params: NotifyInput) -> bool:
    """Tell the workload scheduler (cordon or drain: no new work; uncordon: only what
    Navarch itself cordoned), or POST the event to the webhook; False when nothing is
    configured for it."""
    cfg = params.notifier
    scheduler = _scheduler(cfg)
    if scheduler is not None:
        target = _target(params.node_id, params.target)
        said = (await scheduler.resume(target) if params.event == "uncordon"
                else await scheduler.drain(target, params.reason))
        activity.logger.info("%s %s: %s", cfg.type, params.event, said)
        return True
    if cfg.type != "webhook" or cfg.webhook is None:
        return False
    url = getattr(cfg.webhook, f"{params.event}_url")
    if not url:
        return False
    payload = {
        "event": params.event,
        "node_id": params.node_id,
        "reason": params.reason,
        "timestamp": params.timestamp.isoformat().replace("+00:00", "Z"),
    }
    await _call("POST", url, cfg, payload)
    return True


@activity.defn(name=DRAIN_STATUS)
async def drain_status(params: DrainStatusInput) -> DrainStatus:
    cfg = params.notifier
    scheduler = _scheduler(cfg)
    if scheduler is not None:
        status: DrainStatus = await scheduler.status(_target(params.node_id, params.target),
                                                     probe_only=params.probe_only)
        return status
    if cfg.type != "webhook" or cfg.webhook is None or not cfg.webhook.drain_status_url:
        return DrainStatus(drained=True, message="no drain_status_url configured")
    base = cfg.webhook.drain_status_url
    sep = "&" if "?" in base else "?"
    url = f"{base}{sep}{urllib.parse.urlencode({'node_id': params.node_id})}"
    data = await _call("GET", url, cfg)
    try:
        return DrainStatus.model_validate_json(data)
    except ValueError:
        raise ApplicationError(
            f"GET {scrub(url)}: expected JSON like {{\"drained\": true}}, got "
            f"{excerpt(data, expand_headers(cfg.webhook.headers).values())!r}",
            type="NotifierBadResponse",
        ) from None


@activity.defn(name=FORCE_DRAIN)
async def force_drain(params: ForceDrainInput) -> ForceDrainResult:
    scheduler = _scheduler(params.notifier)
    if scheduler is None:
        return ForceDrainResult(action="none", detail=f"notifier {params.notifier.type}")
    result: ForceDrainResult = await scheduler.force(params.target)
    return result


NOTIFIER_ACTIVITIES: list[Callable[..., object]] = [notify, drain_status, force_drain]
