"""Power and budget planning: how many tasks a comparison needs, and what a stage size can detect.

Two designs, both two-sided at level alpha:

- **two-proportion** (two agents on independent task samples), Fleiss' formula without continuity
  correction:  n = [z_{1-a/2} sqrt(2 pbar qbar) + z_{1-b} sqrt(p1 q1 + p2 q2)]^2 / (p2 - p1)^2  per agent;
- **paired** (both agents on the same tasks, tested with McNemar), Connor's (1987) formula:
  n = [z_{1-a/2} sqrt(psi) + z_{1-b} sqrt(psi - d^2)]^2 / d^2, where d = p2 - p1 and psi is the
  share of discordant tasks (solved by exactly one agent). Unless given, psi assumes the agents'
  successes are independent, psi = p1 (1 - p2) + p2 (1 - p1): the most discordance two agents with
  these scores would show, so the figure is an upper bound when agents agree on easy and hard tasks.

Quantiles come from the standard library (statistics.NormalDist): no scipy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

PAIRED, TWO_PROPORTION = "paired", "two_proportion"
DESIGNS = (PAIRED, TWO_PROPORTION)


def z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def _check(p1: float, p2: float, alpha: float, power: float) -> None:
    for name, value in (("baseline", p1), ("baseline + effect", p2)):
        if not 0 <= value <= 1:
            raise ValueError(f"{name} must be a score in [0, 1] (got {value:g})")
    if p1 == p2:
        raise ValueError("the effect must not be 0")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must be in (0, 1) (got {alpha:g}, {power:g})")


def independent_discordance(p1: float, p2: float) -> float:
    return p1 * (1 - p2) + p2 * (1 - p1)


def tasks_needed(p1: float, p2: float, *, alpha: float = 0.05, power: float = 0.8, design: str = PAIRED,
                 discordance: float | None = None) -> int:
    """Tasks per agent for a two-sided test of score p1 vs p2 to reach `power` (rounded up)."""
    _check(p1, p2, alpha, power)
    d, za, zb = p2 - p1, z(1 - alpha / 2), z(power)
    if design == TWO_PROPORTION:
        pbar = (p1 + p2) / 2
        root = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    elif design == PAIRED:
        psi = independent_discordance(p1, p2) if discordance is None else discordance
        if not abs(d) <= psi <= 1:
            raise ValueError(f"discordance must be >= |effect| = {abs(d):g} and <= 1 (got {psi:g}): the "
                             f"tasks only one agent solves must include the net gain")
        root = za * math.sqrt(psi) + zb * math.sqrt(psi - d * d)
    else:
        raise ValueError(f"unknown design {design!r} (one of {', '.join(DESIGNS)})")
    return math.ceil(round(root * root / (d * d), 9))  # the rounding keeps 385.0000000001 at 385


def detectable_effect(n: int, p1: float, *, alpha: float = 0.05, power: float = 0.8,
                      design: str = PAIRED) -> float | None:
    """The smallest gain over baseline p1 that n tasks detect with `power`; None if even 1 - p1 is too small."""
    if n < 1:
        return None
    high = 1 - p1
    if high <= 0 or tasks_needed(p1, 1.0, alpha=alpha, power=power, design=design) > n:
        return None
    low = 0.0
    for _ in range(60):  # bisection: tasks_needed falls as the effect grows
        mid = (low + high) / 2
        if mid > 0 and tasks_needed(p1, p1 + mid, alpha=alpha, power=power, design=design) <= n:
            high = mid
        else:
            low = mid
    return high


@dataclass
class SamplePlan:
    design: str
    baseline: float
    effect: float
    alpha: float
    power: float
    tasks: int  # per agent, per comparison
    cost_per_child_usd: float | None  # evaluating one child on those tasks
    cost_per_run_usd: float | None  # the initial agent + every child


def plan_samples(baseline: float, effect: float, *, alpha: float = 0.05, power: float = 0.8,
                 cost_per_task: float | None = None, children: int = 80,
                 discordance: float | None = None) -> list[SamplePlan]:
    """Both designs for one target effect, with the evaluation cost per child and per run."""
    plans = []
    for design in DESIGNS:
        n = tasks_needed(baseline, baseline + effect, alpha=alpha, power=power, design=design,
                         discordance=discordance if design == PAIRED else None)
        child = None if cost_per_task is None else round(n * cost_per_task, 4)
        run = None if child is None else round(child * (children + 1), 4)
        plans.append(SamplePlan(design, baseline, effect, alpha, power, n, child, run))
    return plans


@dataclass
class StagePower:
    stage: int
    tasks: int  # cumulative: a node that reaches this stage is scored over this many tasks
    paired_effect: float | None  # smallest detectable gain over the baseline, same tasks (McNemar)
    two_proportion_effect: float | None
    cost_usd: float | None  # evaluating one node up to this stage


def stage_power(sizes: list[int], baseline: float, *, alpha: float = 0.05, power: float = 0.8,
                cost_per_task: float | None = None) -> list[StagePower]:
    rows, total = [], 0
    for index, size in enumerate(sizes, 1):
        total += size
        rows.append(StagePower(index, total,
                               detectable_effect(total, baseline, alpha=alpha, power=power, design=PAIRED),
                               detectable_effect(total, baseline, alpha=alpha, power=power, design=TWO_PROPORTION),
                               None if cost_per_task is None else round(total * cost_per_task, 4)))
    return rows
