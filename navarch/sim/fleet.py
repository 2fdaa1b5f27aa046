"""A stress block's fleet made concrete: nodes from weighted templates, providers and
regions, when each starts, and how long each machine takes to come up (cold starts)."""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from navarch.sim.scenario import FleetGen, FleetNode, Scenario, StartupConfig


def weighted(rng: random.Random, weights: dict[Any, int]) -> Any:
    """One key, drawn with the weights given (None from no weights)."""
    keys = list(weights)
    return rng.choices(keys, weights=[weights[k] for k in keys])[0] if keys else None



def generate_fleet(gen: FleetGen, rng: random.Random) -> list[FleetNode]:
    """`stress.fleet_gen` made concrete: templates by weight, providers and regions by their
    percentages, a zone of the region."""
    out = []
    templates = {i: t.weight for i, t in enumerate(gen.templates)}
    for i in range(gen.total_nodes):
        template = gen.templates[weighted(rng, templates)]
        region = weighted(rng, gen.regions) or ""
        zones = gen.zones.get(region, [])
        out.append(FleetNode(
            id=f"node-{i + 1:04d}", provider=weighted(rng, gen.providers) or "fake",
            region=region, zone=rng.choice(zones) if zones else "",
            instance_type=template.instance_type, gpu_count=template.gpu_count,
            gpu_type=template.gpu_type, labels=dict(template.labels)))
    return out


def start_offsets(gen: FleetGen, rng: random.Random) -> list[float]:
    """When each generated node starts, in seconds from the run's start."""
    n, span = gen.total_nodes, (gen.startup.duration or timedelta(0)).total_seconds()
    pattern = gen.startup.pattern
    if pattern == "instant" or span == 0:
        base = [0.0] * n
    elif pattern == "linear":
        base = [span * i / n for i in range(n)]
    elif pattern == "exponential":
        base = [span * (2 ** (i / max(n - 1, 1)) - 1) for i in range(n)]
    else:  # wave: batches at equal intervals
        size = gen.startup.batch_size or max(1, n // 5)
        waves = max(1, -(-n // size))
        base = [span * (i // size) / waves for i in range(n)]
    jitter = gen.startup.jitter_percent / 100
    return [max(0.0, t + rng.uniform(-jitter, jitter) * (span / max(n, 1))) for t in base]


def cold_start(startup: StartupConfig, rng: random.Random) -> float | None:
    """Seconds a node's machine takes to come up, drawn from the startup's cold-start
    settings (None: none set, the fake cloud's usual boot time)."""
    low, high = startup.cold_start_min, startup.cold_start_max
    mean, spread = startup.cold_start_mean, startup.cold_start_stddev
    if mean is not None:
        value = rng.gauss(mean.total_seconds(), spread.total_seconds() if spread else 0.0)
    elif high is not None:
        value = rng.uniform(low.total_seconds() if low else 0.0, high.total_seconds())
    elif low is not None:
        value = low.total_seconds()
    else:
        return None
    if low is not None:
        value = max(value, low.total_seconds())
    if high is not None:
        value = min(value, high.total_seconds())
    return max(0.0, value)


def longest_cold_start(scenario: Scenario) -> float:
    """The longest cold start a scenario's nodes may have: their boot deadline allows it."""
    stress = scenario.stress
    if stress is None or stress.fleet_gen is None:
        return 0.0
    startup = stress.fleet_gen.startup
    longest = 0.0
    if startup.cold_start_max is not None:
        longest = startup.cold_start_max.total_seconds()
    elif startup.cold_start_mean is not None:
        spread = startup.cold_start_stddev.total_seconds() if startup.cold_start_stddev else 0
        longest = startup.cold_start_mean.total_seconds() + 4 * spread
    elif startup.cold_start_min is not None:
        longest = startup.cold_start_min.total_seconds()
    recovery = stress.chaos.recovery if stress.chaos else None
    if recovery is not None and recovery.replace_cold_start is not None:
        longest = max(longest, recovery.replace_cold_start.total_seconds())
    return longest
