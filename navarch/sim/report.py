"""A simulation run's folder: `sim-runs/<timestamp>/` with the scenario, `report.json` and
`report.html` (node states over time, fault-to-cordon times, rules that fired, events,
assertions) — one self-contained file, charts as inline SVG."""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

COLORS = {"active": "#2e7d32", "cordoned": "#f9a825", "draining": "#ef6c00",
          "unhealthy": "#c62828", "terminated": "#616161", "unreachable": "#6a1b9a",
          "not started": "#bdbdbd", "provisioning": "#90caf9", "booting": "#42a5f5",
          "boot_checking": "#1565c0", "degraded": "#9e9d24", "failed": "#4e342e",
          "failures": "#c62828", "recoveries": "#2e7d32"}
OTHER_COLORS = ("#00838f", "#ad1457", "#5d4037", "#283593")  # keys not above, in turn


def _color(key: str, keys: list[str]) -> str:
    if key in COLORS:
        return COLORS[key]
    others = [k for k in keys if k not in COLORS]
    return OTHER_COLORS[others.index(key) % len(OTHER_COLORS)]


def run_dir(base: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = base / f"{stamp}-{name}"
    path.mkdir(parents=True, exist_ok=False)
    return path


def _states_chart(timeline: list[dict[str, Any]], width: int = 720, height: int = 220,
                 label: str = "node states over time") -> str:
    if not timeline:
        return "<p>no samples</p>"
    keys = sorted({k for s in timeline for k in s if k != "t"})
    t_end = max(s["t"] for s in timeline) or 1.0
    top = max(sum(v for k, v in s.items() if k != "t") for s in timeline) or 1

    def xy(t: float, v: float) -> str:
        return f"{40 + t / t_end * (width - 60):.1f},{height - 30 - v / top * (height - 50):.1f}"

    lines = []
    for k in keys:
        points = " ".join(xy(s["t"], s.get(k, 0)) for s in timeline)
        lines.append(f'<polyline fill="none" stroke="{_color(k, keys)}" '
                     f'stroke-width="2" points="{points}"><title>{html.escape(k)}</title>'
                     "</polyline>")
    legend = " ".join(f'<tspan fill="{_color(k, keys)}">■ {html.escape(k)}</tspan>'
                      for k in keys)
    return (f'<svg width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(label)}">'
            f'<line x1="40" y1="{height - 30}" x2="{width - 20}" y2="{height - 30}" '
            'stroke="#999"/>'
            f'<line x1="40" y1="20" x2="40" y2="{height - 30}" stroke="#999"/>'
            f'<text x="40" y="{height - 10}" font-size="11">0 s</text>'
            f'<text x="{width - 60}" y="{height - 10}" font-size="11">{t_end:.0f} s</text>'
            f'<text x="4" y="24" font-size="11">{top}</text>'
            + "".join(lines) + f'<text x="60" y="14" font-size="12">{legend}</text></svg>')


def _bars(values: dict[str, float], unit: str = "") -> str:
    if not values:
        return "<p>none</p>"
    top = max(values.values()) or 1
    rows = "".join(
        f'<tr><td>{html.escape(k)}</td><td><div style="background:#1565c0;height:12px;'
        f'width:{max(2, v / top * 300):.0f}px"></div></td><td>{v:g}{unit}</td></tr>'
        for k, v in values.items())
    return f"<table>{rows}</table>"


EDGES = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 900)


def _distribution(seconds: list[float]) -> str:
    """How many took how long: counts in buckets, with the median and p90."""
    if not seconds:
        return "<p>none</p>"
    ordered = sorted(seconds)
    counts: dict[str, float] = {}
    low = 0.0
    for edge in (*EDGES, float("inf")):
        n = sum(1 for v in ordered if low <= v < edge)
        if n:
            counts[f"{low:g}–{edge:g} s" if edge != float("inf") else f"≥ {low:g} s"] = n
        low = edge
    p50, p90 = ordered[len(ordered) // 2], ordered[min(len(ordered) - 1,
                                                        int(0.9 * len(ordered)))]
    return (f"<p>{len(ordered)} · median {p50:.2f} s · p90 {p90:.2f} s · max "
            f"{ordered[-1]:.2f} s</p>" + _bars(counts))


def _failures_vs_recoveries(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cumulative failures injected and recovered over the run, as a chart timeline."""
    failures = recoveries = 0
    timeline: list[dict[str, Any]] = [{"t": 0.0, "failures": 0, "recoveries": 0}]
    for e in sorted(events, key=lambda e: e["at"]):
        if e["action"] == "inject_failure":
            failures += 1
        elif e["action"] == "recover_failure":
            recoveries += 1
        else:
            continue
        timeline.append({"t": e["at"], "failures": failures, "recoveries": recoveries})
    return timeline


def _floats(counts: dict[str, Any]) -> dict[str, float]:
    return {str(k): float(v) for k, v in counts.items()}


def render_html(report: dict[str, Any]) -> str:
    esc = html.escape
    verdict = ("<b style='color:#2e7d32'>PASSED</b>" if report["passed"]
               else "<b style='color:#c62828'>FAILED</b>")
    assertions = "".join(
        f"<tr><td>{esc(a['type'])}</td><td>{esc(a['target'])}</td><td>{esc(a['expected'])}"
        f"</td><td>{esc(a['actual'])}</td><td>{'✔' if a['passed'] else '✘'}</td></tr>"
        for a in report["assertions"])
    events = "".join(
        f"<tr><td>{e['at']:.2f}</td><td>{esc(e['action'])}</td><td>{esc(e['target'])}</td>"
        f"<td>{esc(str(e['outcome']))}</td></tr>" for e in report["events"])
    cordon = [c["seconds"] for c in report["fault_to_cordon"]]
    replaced = [c["seconds"] for c in report.get("fault_to_replacement", [])]
    cold = report.get("cold_starts", [])
    recoveries = _states_chart(_failures_vs_recoveries(report["events"]),
                               label="failures and recoveries")
    failures = "".join(f"<li>{esc(f)}</li>" for f in report["failures"])
    notes = "".join(f"<li>note: {esc(n)}</li>" for n in report.get("notes", []))
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{esc(report['scenario'])} — Navarch simulation</title>
<style>body{{font-family:system-ui,sans-serif;margin:2em;max-width:960px}}
table{{border-collapse:collapse}}td,th{{padding:2px 8px;border-bottom:1px solid #ddd;
text-align:left}}</style></head><body>
<h1>{esc(report['scenario'])}</h1><p>{esc(report['description'])}</p>
<p>{verdict} in {report['duration_s']:.1f} s · clock: {esc(report['clock'])}</p>
{f"<ul>{failures}</ul>" if failures else ""}{f"<ul>{notes}</ul>" if notes else ""}
<h2>Node states over time</h2>{_states_chart(report['timeline'])}
<h2>Failures vs recoveries</h2>{recoveries}
<h2>Fault → cordon</h2>{_distribution(cordon)}
<h2>Fault → replacement ready</h2>{_distribution(replaced)}
{f"<h2>Cold starts drawn</h2>{_distribution(cold)}" if cold else ""}
<h2>Failures by type</h2>{_bars(_floats(report.get('failures_by_type', {})))}
<h2>Failures by Xid</h2>{_bars(_floats(report.get('failures_by_xid', {})))}
<h2>Policy rules that fired</h2>{_bars({k: float(v) for k, v in report['rules_fired'].items()})}
<h2>Assertions</h2><table><tr><th>type</th><th>target</th><th>expected</th><th>actual</th>
<th></th></tr>{assertions}</table>
<h2>Events</h2><table><tr><th>t (s)</th><th>action</th><th>target</th><th>outcome</th></tr>
{events}</table></body></html>
"""


def write(folder: Path, scenario_text: str, report: dict[str, Any]) -> None:
    (folder / "scenario.yaml").write_text(scenario_text)
    (folder / "report.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
    (folder / "report.html").write_text(render_html(report))
