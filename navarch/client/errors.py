"""What the client raises, and the one place that turns Temporal's errors into it."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from temporalio.client import WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode


class NavarchError(Exception):
    """Every error of the client: `what` names the pool or node, `reason` says why."""

    def __init__(self, what: str, reason: str) -> None:
        super().__init__(f"{what}: {reason}" if what else reason)
        self.what = what
        self.reason = reason


class NotConnected(NavarchError):
    """Temporal could not be reached (address, TLS or credentials)."""


class NotFound(NavarchError):
    """No such pool or node (no workflow by that id)."""


class Refused(NavarchError):
    """The pool or node refused the request now, and said why (an uncordon under an
    unhealthy verdict, a scale past max_nodes' bounds, a node that already ended)."""


class InvalidRequest(Refused):
    """The request itself is malformed (its payload does not decode)."""


class TimedOut(NavarchError):
    """A wait (pools ready, a pool deleted) ran past its timeout, or no worker answered a
    query or update before its deadline."""


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Temporal's errors of one call, as the client's: `what` is the pool or node asked."""
    try:
        yield
    except WorkflowUpdateFailedError as exc:
        cause = exc.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or exc)
        if isinstance(cause, ApplicationError) and cause.type == "InvalidRequest":
            raise InvalidRequest(what, message) from exc
        raise Refused(what, message) from exc
    except WorkflowQueryFailedError as exc:
        raise Refused(what, str(exc)) from exc
    except RPCError as exc:
        if exc.status is RPCStatusCode.NOT_FOUND:
            if "already completed" in exc.message:
                raise Refused(what, "its workflow has ended") from exc
            raise NotFound(what, "not found") from exc
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.UNAUTHENTICATED,
                          RPCStatusCode.PERMISSION_DENIED):
            raise NotConnected(what, exc.message) from exc
        if exc.status is RPCStatusCode.DEADLINE_EXCEEDED or "Timeout expired" in exc.message:
            raise TimedOut(what, "no worker answered in time: is a navarch-worker running "
                                 "and polling this fleet's task queue?") from exc
        raise NavarchError(what, exc.message) from exc
