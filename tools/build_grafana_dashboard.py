"""Writes deploy/grafana/navarch.json: a Grafana dashboard over the control-plane worker's
fleet metrics (workflows/metrics.py) and the agents' GPU gauges (agent/metrics.py).

    python tools/build_grafana_dashboard.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "navarch.json"
POOL = '{pool=~"$pool"}'


def panel(pid: int, title: str, exprs: list[tuple[str, str]], x: int, y: int, *,
          unit: str = "short", kind: str = "timeseries", w: int = 12, h: int = 8,
          stack: bool = False) -> dict[str, Any]:
    field: dict[str, Any] = {"unit": unit}
    if kind == "timeseries" and stack:
        field["custom"] = {"stacking": {"mode": "normal"}, "fillOpacity": 30}
    return {
        "id": pid, "type": kind, "title": title,
        "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "datasource": {"type": "prometheus", "uid": "${datasource}"},
        "fieldConfig": {"defaults": field, "overrides": []},
        "targets": [{"refId": chr(65 + i), "expr": expr, "legendFormat": legend}
                    for i, (expr, legend) in enumerate(exprs)],
    }


def quantiles(metric: str, by: str = "") -> list[tuple[str, str]]:
    group = f"le{', ' + by if by else ''}"
    legend = f"{{{{{by}}}}} " if by else ""
    rate = f"rate({metric}_bucket{POOL}[$__rate_interval])"
    return [(f"histogram_quantile({q}, sum by ({group}) ({rate}))", f"{legend}p{int(q * 100)}")
            for q in (0.5, 0.95)]


# Every control-plane worker exports the same pool gauges (read from the pools): take one
# copy of each series (`max` over the workers), then add up.
def _nodes(where: str = "") -> str:
    return f'max by (pool, state, health, provider) (navarch_pool_nodes{{pool=~"$pool"{where}}})'


GPUS = f"max by (pool, model) (navarch_pool_gpus{POOL})"


def build() -> dict[str, Any]:
    ready, unhealthy = _nodes(', state="ready"'), _nodes(', health="unhealthy"')
    panels = [
        panel(1, "Nodes by state", [(f"sum by (state) ({_nodes()})", "{{state}}")],
              0, 0, stack=True),
        panel(2, "Ready nodes vs target",
              [(f"sum by (pool) ({ready})", "{{pool}} ready"),
               (f"max by (pool) (navarch_pool_target{POOL})", "{{pool}} target")], 12, 0),
        panel(3, "GPUs by model", [(f"sum by (model) ({GPUS})", "{{model}}")],
              0, 8, kind="stat", w=6),
        panel(4, "Unhealthy nodes",
              [(f"sum ({unhealthy}) or vector(0)", "unhealthy")], 6, 8, kind="stat", w=6),
        panel(5, "Transitions by reason (per minute)",
              [(f"sum by (reason) (rate(navarch_node_transitions{POOL}[$__rate_interval])) * 60",
                "{{reason}}")], 12, 8),
        panel(6, "GPU fault → cordon", quantiles("navarch_fault_to_cordon_seconds"), 0, 16,
              unit="s", w=8),
        panel(7, "GPU fault → instance terminated",
              quantiles("navarch_fault_to_terminate_seconds"), 8, 16, unit="s", w=8),
        panel(8, "GPU fault → replacement ready",
              quantiles("navarch_fault_to_replacement_ready_seconds"), 16, 16, unit="s", w=8),
        panel(9, "Provisioning time by provider",
              [("histogram_quantile(0.95, sum by (le, provider, instance_type) "
                "(rate(navarch_provisioning_seconds_bucket[$__rate_interval])))",
                "{{provider}} {{instance_type}} p95")], 0, 24, unit="s"),
        panel(10, "No-capacity answers by provider and zone (per hour)",
              [("sum by (provider, zone) (increase(navarch_capacity_errors[1h]))",
                "{{provider}} {{zone}}")], 12, 24),
        panel(11, "Autoscaler decisions",
              [(f"sum by (pool, direction) (increase(navarch_autoscaler_decisions{POOL}"
                "[$__rate_interval]))", "{{pool}} {{direction}}")], 0, 32),
        panel(12, "GPU health (agents' policy verdict: 0 healthy, 1 degraded, 2 unhealthy)",
              [("max by (node_id) (navarch_gpu_health)", "{{node_id}}")], 12, 32),
        panel(13, "GPU utilization (agents)",
              [("avg by (node_id) (DCGM_FI_DEV_GPU_UTIL)", "{{node_id}}")], 0, 40,
              unit="percent"),
        panel(14, "GPU temperature (agents)",
              [("max by (node_id) (DCGM_FI_DEV_GPU_TEMP)", "{{node_id}}")], 12, 40,
              unit="celsius"),
        panel(15, "Xid errors (agents, last code per GPU)",
              [("DCGM_FI_DEV_XID_ERRORS > 0", "{{node_id}} GPU {{gpu}}")], 0, 48, kind="table",
              w=24),
    ]
    return {
        "title": "Navarch fleet",
        "uid": "navarch-fleet",
        "tags": ["navarch", "gpu"],
        "timezone": "utc",
        "schemaVersion": 39,
        "version": 1,
        "refresh": "30s",
        "time": {"from": "now-6h", "to": "now"},
        "templating": {"list": [
            {"name": "datasource", "type": "datasource", "query": "prometheus",
             "label": "Prometheus"},
            {"name": "pool", "type": "query", "label": "Pool", "multi": True,
             "includeAll": True, "allValue": ".*",
             "datasource": {"type": "prometheus", "uid": "${datasource}"},
             "query": {"query": "label_values(navarch_pool_target, pool)", "refId": "pools"},
             "refresh": 2},
        ]},
        "panels": panels,
    }


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(build(), indent=2) + "\n")
    print(f"wrote {OUT}")
