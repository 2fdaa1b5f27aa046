"""Benchmark 8: health-policy evaluations per second, through Navarch's own Policy (the
code the agent runs), for each built-in policy:

- events judged per second, over a mix of Xids, thermal, ECC, NVLink and DCGM events;
- node judgements per second (`Policy.evaluate` of a node's whole event list) for a quiet
  node (no events), a node with one Xid, and a busy node with 8 events.

Prints the figures and writes results/policy_eval.json.

    python benchmarks/policy_eval.py [--seconds 2]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from cel_engines import EVENTS
from harness import save

from navarch.health.events import EventType, HealthEvent
from navarch.health.policy import Policy, builtin_policy

MIX = [*EVENTS, HealthEvent(event_type=EventType.ECC_DBE, metrics={"ecc_dbe_count": 1})]
NODES: dict[str, list[HealthEvent]] = {
    "quiet node (0 events)": [], "one Xid 79": MIX[:1], "busy node (8 events)": MIX[:8]}


def rate(fn: Callable[[int], Any], seconds: float) -> float:
    """Calls per second of fn(i), over about `seconds`."""
    n, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for i in range(200):
            fn(n + i)
        n += 200
    return n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    for name in ("default", "go-default"):
        policy = builtin_policy(name)

        def one_event(i: int, p: Policy = policy) -> object:
            return p.evaluate_event(MIX[i % len(MIX)])

        def one_node(events: list[HealthEvent], p: Policy = policy) -> Callable[[int], object]:
            return lambda _i: p.evaluate(events)

        per_event = rate(one_event, args.seconds)
        nodes = {label: rate(one_node(events), args.seconds) for label, events in NODES.items()}
        figures[name] = {"rules": len(policy.rules), "events_per_s": round(per_event),
                         "node_judgements_per_s": {k: round(v) for k, v in nodes.items()}}
        print(f"policy {name} ({len(policy.rules)} rules)")
        print(f"  {per_event:>12,.0f} events judged/s ({1e6 / per_event:.1f} µs/event)")
        for label, value in nodes.items():
            print(f"  {value:>12,.0f} node judgements/s — {label}")
    print(f"wrote {save('policy_eval', figures)}")


if __name__ == "__main__":
    main()
