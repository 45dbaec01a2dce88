"""Repeated samples of agents: pass@k, pass^k, and where a score's variance comes from.

pass@k (Chen et al. 2021, "Evaluating Large Language Models Trained on Code", the Codex paper): the
chance that at least one of k samples resolves a task, estimated without bias from n >= k samples of
which c resolved as 1 - C(n-c, k) / C(n, k), then averaged over tasks.

pass^k (Yao et al. 2024, tau-bench): the chance that all k samples resolve it, C(c, k) / C(n, k),
averaged over tasks. pass@k rewards a lucky sample; pass^k rewards reliability.

A score over T tasks moves for two reasons: which tasks were drawn (task sampling: another T tasks
of the same benchmark would give another number) and the agent's own randomness (run to run: the
same tasks, evaluated again or by another seed's run, give another number). `variance_split`
measures both from a matrix of outcomes (repeats x tasks): the bootstrap over tasks of the mean
score, and the spread of the per-repeat scores.
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass
from typing import Callable, Sequence

BOOTSTRAP_REPLICATES = 2000


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k of one task from n samples with c resolved (Codex paper, eq. 1)."""
    _check_counts(n, c, k)
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """pass^k of one task from n samples with c resolved (tau-bench): all k samples resolve it."""
    _check_counts(n, c, k)
    return math.comb(c, k) / math.comb(n, k)


def _check_counts(n: int, c: int, k: int) -> None:
    if not (0 <= c <= n and 1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n (got n={n}, c={c}, k={k})")


def mean_over_tasks(counts: dict[str, tuple[int, int]], k: int, per_task: Callable[[int, int, int], float]) -> float:
    """`per_task` (pass_at_k or pass_hat_k) averaged over {task: (n samples, c resolved)}."""
    if not counts:
        raise ValueError("no tasks to average over")
    return sum(per_task(n, c, k) for n, c in counts.values()) / len(counts)


def k_values(n: int) -> list[int]:
    """The k worth showing for n samples: 1, 2, 5, 10, 20, 50, ... up to n, and n itself."""
    ks = [k for k in (1, 2, 5, 10, 20, 50, 100, 200, 500) if k <= n]
    return ks + ([n] if n not in ks else [])


def bootstrap_summary(values: Sequence[float], stat: Callable[[Sequence[float]], float] = statistics.fmean,
                      replicates: int = BOOTSTRAP_REPLICATES, seed: int = 0) -> tuple[float, float, float]:
    """(standard error, 2.5% and 97.5% percentiles) of `stat` over resamples of `values` with replacement.

    Like dgm.analysis.stats.bootstrap_interval (the interval alone), plus the standard error, which is
    what the variance split compares."""
    if not values:
        raise ValueError("bootstrap of no values")
    rng = random.Random(seed)
    draws = sorted(stat(rng.choices(values, k=len(values))) for _ in range(replicates))
    se = statistics.pstdev(draws)
    return se, draws[int(0.025 * (replicates - 1))], draws[int(0.975 * (replicates - 1))]


@dataclass
class VarianceSplit:
    """How much a mean score moves with the tasks drawn, and with the run on fixed tasks."""

    repeats: int
    tasks: int
    mean_score: float
    task_se: float  # bootstrap over tasks of the mean score (per-task means over repeats)
    task_interval: tuple[float, float]
    run_sd: float | None  # standard deviation of the per-repeat scores (None with one repeat)
    run_se: float | None  # ... and of their mean: run_sd / sqrt(repeats)

    def as_dict(self) -> dict:
        return {"repeats": self.repeats, "tasks": self.tasks, "mean_score": self.mean_score,
                "task_sampling_se": self.task_se, "task_sampling_interval95": list(self.task_interval),
                "run_to_run_sd": self.run_sd, "run_to_run_se_of_mean": self.run_se}


def variance_split(outcomes: Sequence[Sequence[bool]], seed: int = 0) -> VarianceSplit:
    """From a repeats x tasks matrix of resolved flags (every repeat on the same tasks, same order)."""
    if not outcomes or not outcomes[0]:
        raise ValueError("variance_split needs at least one repeat of at least one task")
    tasks = len(outcomes[0])
    if any(len(row) != tasks for row in outcomes):
        raise ValueError("every repeat must cover the same tasks")
    per_task = [sum(row[t] for row in outcomes) / len(outcomes) for t in range(tasks)]
    per_repeat = [sum(row) / tasks for row in outcomes]
    se, low, high = bootstrap_summary(per_task, seed=seed)
    run_sd = statistics.stdev(per_repeat) if len(per_repeat) > 1 else None
    run_se = run_sd / math.sqrt(len(per_repeat)) if run_sd is not None else None
    return VarianceSplit(len(outcomes), tasks, statistics.fmean(per_repeat), se, (low, high), run_sd, run_se)
