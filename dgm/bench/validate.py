"""Validate benchmark tasks the way SWE-bench validates its instances.

Per task: FAIL_TO_PASS tests fail before the gold patch and pass after it, PASS_TO_PASS tests pass
in both, an empty patch is not resolved, the gold patch touches no test files, and two gold runs
agree. Tasks run in parallel on a thread pool (each run is its own sandbox process).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from .grading_rules import maintained, passed
from .local import LocalBenchmark
from .patches import is_test_path, split_patch


@dataclass
class TaskValidation:
    instance_id: str
    problems: list[str] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems


def validate_task(bench: LocalBenchmark, instance_id: str, *, backend: str, timeout: float = 120) -> TaskValidation:
    result = TaskValidation(instance_id)
    try:
        _check(bench, instance_id, backend, timeout, result)
    except Exception as exc:  # a broken task must be reported, not abort the whole validation
        result.problems.append(f"crashed: {type(exc).__name__}: {exc}")
    return result


def _check(bench, instance_id, backend, timeout, result) -> None:
    task = bench.task(instance_id)
    gold = bench.gold_patch(instance_id)
    if not task.fail_to_pass:
        result.problems.append("FAIL_TO_PASS is empty")
    touched = [c.path for c in split_patch(gold) if is_test_path(c.path, c.text)]
    if touched:
        result.problems.append(f"gold patch touches test files: {', '.join(touched)}")

    before = bench.run_eval(instance_id, "", backend=backend, timeout=timeout)
    wrongly_passing = [t for t in task.fail_to_pass if passed(t, before.statuses)]
    if wrongly_passing:
        result.problems.append(f"F2P pass before the gold patch: {', '.join(wrongly_passing)}")
    broken = [t for t in task.pass_to_pass if not maintained(t, before.statuses)]
    if broken:
        result.problems.append(f"P2P fail before the gold patch: {', '.join(broken)}")

    empty = bench.grade(instance_id, "", backend=backend, timeout=timeout)
    if empty.outcome == "resolved":
        result.problems.append("an empty patch counts as resolved")

    runs = [bench.grade(instance_id, gold, backend=backend, timeout=timeout) for _ in range(2)]
    for n, run in enumerate(runs, 1):
        if run.outcome != "resolved":
            status = run.report.get(instance_id, {}).get("tests_status", {})
            failing = status.get("FAIL_TO_PASS", {}).get("failure", []) + status.get("PASS_TO_PASS", {}).get("failure", [])
            result.problems.append(f"gold run {n}: {run.outcome} {run.reason} {', '.join(failing)}".strip())
    if runs[0].report != runs[1].report:
        result.problems.append("two gold runs disagree")
    result.duration_s = before.duration_s + sum(r.duration_s for r in runs)


def validate(bench: LocalBenchmark, ids: list[str], *, backend: str, workers: int = 1, timeout: float = 120,
             on_done=None) -> list[TaskValidation]:
    """Validate tasks in parallel; results come back in the order of `ids`."""

    def one(instance_id):
        outcome = validate_task(bench, instance_id, backend=backend, timeout=timeout)
        if on_done is not None:
            on_done(outcome)
        return outcome

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        return list(pool.map(one, ids))
