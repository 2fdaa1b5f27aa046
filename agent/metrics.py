"""Prometheus metrics of the agent, read from the GPU backend when scraped.

GPU gauges use dcgm-exporter's names and labels where they overlap (DCGM_FI_DEV_GPU_TEMP,
DCGM_FI_DEV_POWER_USAGE, DCGM_FI_DEV_GPU_UTIL, DCGM_FI_DEV_FB_USED, the ECC totals and the
last Xid), so existing Grafana dashboards keep working; Navarch adds the health the pool's
policy gave each GPU (0 healthy, 1 degraded, 2 unhealthy) and the node's.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from navarch.health.events import EventType, HealthResult

from .activities import AgentActivities
from .backend import BackendError


class AgentCollector(Collector):
    def __init__(self, agent: AgentActivities, node_id: str) -> None:
        self.agent = agent
        self.node_id = node_id
        self.hostname = socket.gethostname()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        labels = ["gpu", "UUID", "modelName", "Hostname", "node_id"]

        def family(name: str, doc: str) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, doc, labels=labels)

        temp = family("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (C).")
        power = family("DCGM_FI_DEV_POWER_USAGE", "Power draw (W).")
        util = family("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (%).")
        fb_used = family("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (MiB).")
        sm_clock = family("DCGM_FI_DEV_SM_CLOCK", "SM clock (MHz).")
        dbe = family("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "Uncorrectable ECC errors (volatile).")
        sbe = family("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "Correctable ECC errors (volatile).")
        xid = family("DCGM_FI_DEV_XID_ERRORS", "Code of the last Xid seen.")
        health = family("navarch_gpu_health",
                        "Policy verdict per GPU: 0 healthy, 1 degraded, 2 unhealthy.")
        up = GaugeMetricFamily("navarch_agent_backend_up",
                               "1 when the GPU driver answers.", labels=["node_id", "backend"])
        backend = self.agent.backend
        try:
            inventory = backend.inventory()
            samples = {s.index: s for s in backend.sample()}
            up.add_metric([self.node_id, backend.name], 1)
        except BackendError:
            up.add_metric([self.node_id, backend.name], 0)
            yield up
            return
        events = backend.current_events()
        verdicts = self.agent.gpu_health
        for gpu in inventory.gpus:
            values = [str(gpu.index), gpu.uuid, gpu.name, self.hostname, self.node_id]
            sample = samples.get(gpu.index)
            if sample is not None and sample.temperature_c is not None:
                temp.add_metric(values, sample.temperature_c)
            if sample is not None and sample.utilization_pct is not None:
                util.add_metric(values, sample.utilization_pct)
            if sample is not None and sample.memory_used_mib is not None:
                fb_used.add_metric(values, sample.memory_used_mib)
            if sample is not None and sample.power_w is not None:
                power.add_metric(values, sample.power_w)
            if sample is not None and sample.sm_clock_mhz is not None:
                sm_clock.add_metric(values, sample.sm_clock_mhz)
            mine = [e for e in events if e.gpu_index == gpu.index]
            for e in mine:
                if e.event_type is EventType.ECC_DBE:
                    dbe.add_metric(values, float(e.metrics.get("ecc_dbe_count", 0)))
                elif e.event_type is EventType.ECC_SBE:
                    sbe.add_metric(values, float(e.metrics.get("ecc_sbe_count", 0)))
                elif e.event_type is EventType.XID:
                    xid.add_metric(values, float(e.metrics.get("xid_code", 0)))
            verdict = verdicts.get(gpu.index, HealthResult.HEALTHY)
            health.add_metric(values, verdict.severity)
        yield from (temp, power, util, fb_used, sm_clock, dbe, sbe, xid, health, up)


def serve_metrics(agent: AgentActivities, node_id: str, port: int,
                  addr: str = "0.0.0.0") -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(AgentCollector(agent, node_id))
    start_http_server(port, addr=addr, registry=registry)
    return registry
