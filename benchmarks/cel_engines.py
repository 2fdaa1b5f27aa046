"""Which CEL engine evaluates Navarch policies faster, and does it give the Go results?

Runs the Go Navarch's default policy over a mix of events with each engine installed:
`cel` (common-expression-language, Rust) and, if present, `celpy` (cel-python, pure
Python: `pip install cel-python`). Prints events judged per second and whether the
verdicts agree. Usage: python benchmarks/cel_engines.py [--events N]
"""

from __future__ import annotations

import argparse
import importlib
import time
from typing import Any

import cel

from navarch.health.events import EventType, HealthEvent
from navarch.health.policy import builtin_policy

EVENTS = [
    HealthEvent(event_type=EventType.XID, gpu_index=i % 8, metrics={"xid_code": code})
    for i, code in enumerate([79, 13, 48, 8, 94, 31, 119, 63])
] + [
    HealthEvent(event_type=EventType.THERMAL, metrics={"temperature": t}) for t in (60, 86, 97)
] + [
    HealthEvent(event_type=EventType.ECC_SBE, metrics={"ecc_sbe_count": 150}),
    HealthEvent(event_type=EventType.NVLINK),
    HealthEvent(event_type=EventType.POWER, system="DCGM_HEALTH_WATCH_POWER"),
]


def first_match(programs: list[tuple[str, Any]], run: Any, event: HealthEvent) -> str | None:
    activation = {"event": event.cel_activation()}
    for name, program in programs:
        try:
            if run(program, activation) is True:
                return name
        except Exception:
            continue
    return None


def bench(label: str, programs: list[tuple[str, Any]], run: Any, n: int) -> list[str | None]:
    verdicts = [first_match(programs, run, e) for e in EVENTS]
    start = time.perf_counter()
    for i in range(n):
        first_match(programs, run, EVENTS[i % len(EVENTS)])
    elapsed = time.perf_counter() - start
    print(f"{label:<34} {n / elapsed:>12,.0f} events/s  ({elapsed * 1e6 / n:.1f} µs/event)")
    return verdicts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20_000)
    args = parser.parse_args()
    policy = builtin_policy("go-default")
    rules = [(r.rule.name, r.rule.condition) for r in policy.rules]

    compiled = [(name, cel.compile(cond)) for name, cond in rules]
    reference = bench("cel (common-expression-language)", compiled,
                      lambda p, a: p.execute(a), args.events)
    expected = [policy.evaluate_event(e).rule for e in EVENTS]
    print(f"  agrees with navarch.health.policy: {reference == expected}")

    try:
        celpy: Any = importlib.import_module("celpy")  # optional: pip install cel-python
    except ImportError:
        print("celpy (cel-python) not installed: pip install cel-python to compare")
        return
    env = celpy.Environment()
    py_programs = [(name, env.program(env.compile(cond))) for name, cond in rules]

    def run_py(program: Any, activation: dict[str, Any]) -> Any:
        out = program.evaluate({"event": celpy.json_to_cel(activation["event"])})
        return bool(out) if isinstance(out, celpy.celtypes.BoolType) else out

    got = bench("celpy (cel-python)", py_programs, run_py, max(1, args.events // 10))
    disagree = [(e.event_type.value, e.metrics, a, b)
                for e, a, b in zip(EVENTS, expected, got, strict=True) if a != b]
    print(f"  agrees with navarch.health.policy: {not disagree}")
    for item in disagree:
        print(f"    differs: {item}")


if __name__ == "__main__":
    main()
