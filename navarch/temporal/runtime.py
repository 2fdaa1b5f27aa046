"""The Temporal SDK runtime a Navarch worker runs on: Prometheus metrics, and the SDK core's
log lines routed through Python's logging, with the one warning that a working fleet prints
by design quieted."""

from __future__ import annotations

import logging

from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

CORE_LOGGER = "navarch.sdk_core"
# The core warns when a worker completes an activity the server no longer waits for. In
# Navarch that is a repair doing its job: the node workflow moved on (the machine was
# drained and terminated, the watch cancelled) while the agent's answer was on its way.
EXPECTED_CORE_WARNINGS = ("Activity not found on completion",)


class ExpectedCoreWarnings(logging.Filter):
    """Turns the core's expected warnings into debug lines; everything else passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(
                text in record.getMessage() for text in EXPECTED_CORE_WARNINGS):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger(record.name).isEnabledFor(logging.DEBUG)
        return True


def worker_runtime(port: int, host: str = "0.0.0.0", *, quiet_core: bool = False) -> Runtime:
    """The worker's Temporal runtime: Prometheus metrics on :port (0: none) — the SDK's own
    (workflow and activity latencies, task slots, polls) and the workflows' (e.g.
    `navarch_autoscaler_decisions`). The core's log lines go to the `navarch.sdk_core`
    logger; `quiet_core`: errors only."""
    level = "ERROR" if quiet_core else "WARN"
    core = logging.getLogger(CORE_LOGGER)
    if not any(isinstance(f, ExpectedCoreWarnings) for f in core.filters):
        core.addFilter(ExpectedCoreWarnings())
    logging_config = LoggingConfig(filter=TelemetryFilter(core_level=level, other_level=level),
                                   forwarding=LogForwardingConfig(logger=core,
                                                                  append_target_to_name=False))
    return Runtime(telemetry=TelemetryConfig(
        logging=logging_config,
        metrics=PrometheusConfig(bind_address=f"{host}:{port}") if port else None))
