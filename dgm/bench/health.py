"""Harness health: is each task's grading trustworthy, run after run?

A task is healthy when its gold patch resolves it R times out of R and the unpatched base fails
it R times out of R. A task whose runs disagree is *flaky* (its score moves with no change to the
agent); one that gets a consistent wrong answer (gold never resolves, or the base always passes)
is *invalid*. Either kind adds noise to every comparison, so `evaluation.exclude_unhealthy`
drops them from a run, and plan.json records which were dropped.

The empty patch is graded by running the hidden tests on the base repository (`run_eval` with no
patch): grading the literal empty string would short-circuit to `empty_patch` without ever
running a test, which checks nothing about the harness.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .grading_rules import is_resolved, tests_status
from .local import LocalBenchmark

HEALTHY, FLAKY, INVALID = "healthy", "flaky", "invalid"


@dataclass
class TaskHealth:
    task_id: str
    repeats: int
    gold_resolved: int = 0  # of `repeats` gold-patch gradings
    empty_failed: int = 0  # of `repeats` runs of the hidden tests on the unpatched base
    problems: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.problems or self.gold_resolved == 0 or self.empty_failed == 0:
            return INVALID
        if self.gold_resolved < self.repeats or self.empty_failed < self.repeats:
            return FLAKY
        return HEALTHY

    def to_json(self) -> dict:
        return {**asdict(self), "verdict": self.verdict}


def check_task(bench: LocalBenchmark, task_id: str, *, repeats: int, backend: str, timeout: float) -> TaskHealth:
    health = TaskHealth(task_id, repeats)
    try:
        task = bench.task(task_id)
        gold = bench.gold_patch(task_id)
        for _ in range(repeats):
            health.gold_resolved += bench.grade(task_id, gold, backend=backend, timeout=timeout).outcome == "resolved"
            base = bench.run_eval(task_id, "", backend=backend, timeout=timeout)
            status = tests_status(base.statuses, task.fail_to_pass, task.pass_to_pass)
            health.empty_failed += not (base.statuses and is_resolved(status) and base.exit_code == 0)
    except Exception as exc:  # a task that cannot even be graded is invalid, and says why
        health.problems.append(f"{type(exc).__name__}: {exc}")
    return health


def check_health(bench: LocalBenchmark, ids: list[str], *, repeats: int, backend: str, workers: int = 1,
                 timeout: float = 120, on_done=None) -> list[TaskHealth]:
    """Every task R times (gold and base), in parallel; results in the order of `ids`."""

    def one(task_id: str) -> TaskHealth:
        result = check_task(bench, task_id, repeats=repeats, backend=backend, timeout=timeout)
        if on_done is not None:
            on_done(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, ids))


def write_report(path: Path, benchmark: str, backend: str, results: list[TaskHealth]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": benchmark, "backend": backend, "tasks": [r.to_json() for r in results],
            "unhealthy": sorted(r.task_id for r in results if r.verdict != HEALTHY)}
    path.write_text(json.dumps(data, indent=2) + "\n")


def unhealthy_tasks(report: Path) -> dict[str, str]:
    """{task id: verdict} of the tasks a health report flagged; ValueError names a bad report."""
    try:
        data = json.loads(Path(report).read_text())
        return {t["task_id"]: t["verdict"] for t in data["tasks"] if t["verdict"] != HEALTHY}
    except FileNotFoundError:
        raise ValueError(f"evaluation.exclude_unhealthy: no health report at {report} "
                         f"(write one with `dgm tasks health BENCH --out {report}`)") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"evaluation.exclude_unhealthy: {report} is not a health report ({exc})") from None
