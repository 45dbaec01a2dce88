"""Statistics for small-sample agent scores.

Scores in a DGM run are proportions over 10, 60 or 200 tasks, so every number we show comes with
a Wilson 95% interval (better behaved than the normal approximation near 0 and 1), and two agents
are compared on the tasks both attempted with the exact (binomial) McNemar test.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def wilson_interval(successes: int, total: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for successes/total; (0, 1) when total is 0 (nothing is known)."""
    if total < 0 or successes < 0 or successes > total:
        raise ValueError(f"wilson_interval needs 0 <= successes <= total, got {successes}/{total}")
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == total else min(1.0, centre + half)
    return low, high


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value from the discordant counts.

    b = tasks only the first agent solved, c = tasks only the second solved. Under the null each
    discordant task is a fair coin, so p = min(1, 2 * P(X <= min(b, c))) with X ~ Binomial(b + c, 1/2).
    """
    if b < 0 or c < 0:
        raise ValueError(f"discordant counts must be >= 0, got b={b}, c={c}")
    n = b + c
    if n == 0:
        return 1.0
    k = min(b, c)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


@dataclass
class PairedComparison:
    """Two agents on the tasks both were graded on."""

    shared: int
    both: int
    only_a: int
    only_b: int
    neither: int
    p_value: float


def compare_outcomes(a: dict[str, bool], b: dict[str, bool]) -> PairedComparison:
    """McNemar comparison of two {task_id: resolved} maps on their shared tasks."""
    shared = sorted(set(a) & set(b))
    both = sum(1 for t in shared if a[t] and b[t])
    only_a = sum(1 for t in shared if a[t] and not b[t])
    only_b = sum(1 for t in shared if b[t] and not a[t])
    neither = len(shared) - both - only_a - only_b
    return PairedComparison(len(shared), both, only_a, only_b, neither, mcnemar_exact(only_a, only_b))


BOOTSTRAP_RESAMPLES = 10_000


def _resample_means(per_task: list[float], resamples: int, rng) -> list[float]:
    n = len(per_task)
    return [sum(per_task[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples)]


def bootstrap_interval(per_task: list[float], *, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of a mean score, resampling tasks (not runs).

    With R repeats per task the R outcomes of one task are not independent draws, so the task is the
    unit that is resampled: `per_task` holds each task's mean over its repeats.
    """
    if not per_task:
        return 0.0, 1.0
    import random

    means = sorted(_resample_means(per_task, resamples, random.Random(seed)))
    tail = (1 - level) / 2
    return means[int(tail * (resamples - 1))], means[int(round((1 - tail) * (resamples - 1)))]


def paired_bootstrap(a: dict[str, float], b: dict[str, float], *, resamples: int = BOOTSTRAP_RESAMPLES,
                     seed: int = 0) -> float:
    """Two-sided p-value that agents a and b have the same mean score, on the tasks both were run on.

    Each value is a task's mean over its repeats. The per-task differences are resampled around
    their mean (the null: no difference), and p is the share of resampled mean differences at
    least as far from 0 as the observed one (with the +1 correction, so p is never 0).
    """
    import random

    shared = sorted(set(a) & set(b))
    diffs = [a[t] - b[t] for t in shared]
    if not diffs or all(d == 0 for d in diffs):
        return 1.0
    observed = sum(diffs) / len(diffs)
    centred = [d - observed for d in diffs]
    extreme = sum(abs(m) >= abs(observed) - 1e-12
                  for m in _resample_means(centred, resamples, random.Random(seed)))
    return min(1.0, (extreme + 1) / (resamples + 1))
