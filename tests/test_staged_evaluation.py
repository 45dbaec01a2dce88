"""Staged evaluation thresholds at their edges (the task runs themselves are replaced by fixed outcomes:
this tests only the staging rule; real task runs are covered by the end-to-end loop test)."""

from pathlib import Path

import pytest

from dgm.bench.base import TaskInfo
from dgm.config import EvaluationSection, Stage
from dgm.evaluate import Evaluator
from dgm.store import TaskResult

PAPER_STAGES = [
    Stage(tasks="small"),
    Stage(tasks="medium", threshold=0.4),
    Stage(tasks="big", threshold=0.4, require_second_best=True),
]


class TinyBench:
    name = "tiny"

    def __init__(self, sizes=(10, 50, 140)):
        names = ("small", "medium", "big")
        self._subsets = {n: [f"{n}-{i}" for i in range(size)] for n, size in zip(names, sizes)}

    def subsets(self):
        return self._subsets

    def task_ids(self, subset=None):
        return [t for ids in self._subsets.values() for t in ids]

    def task_info(self, instance_id):
        return TaskInfo(instance_id, "", "")


class FixedOutcomes(Evaluator):
    def __init__(self, resolved: set[str], stages=PAPER_STAGES, num_evals=1):
        super().__init__(benchmark=TinyBench(), policy=None, llm=None,
                         cfg=EvaluationSection(stages=stages, num_evals=num_evals), limits=None)
        self.resolved = resolved

    def run_task(self, agent_dir, task_id, stage, node_id, attempt_id, out_dir, eval_index=0):
        return TaskResult(task_id, stage, "resolved" if task_id in self.resolved else "unresolved", 0.0, None, eval_index)


def _solve(small=0, medium=0):
    return {f"small-{i}" for i in range(small)} | {f"medium-{i}" for i in range(medium)}


def _eval(ev, second_best=None):
    return ev.evaluate(Path("/nonexistent"), "n", "1:0", Path("/tmp"), second_best=second_best)


def test_exactly_40_percent_enters_stage_two():
    result = _eval(FixedOutcomes(_solve(small=4)))
    assert [s.total for s in result.stages][:2] == [10, 60]


def test_just_under_40_percent_stops_after_stage_one():
    result = _eval(FixedOutcomes(_solve(small=3)))
    assert [(s.resolved, s.total) for s in result.stages] == [(3, 10)]
    assert result.score == pytest.approx(0.3)


def test_stage_three_needs_second_best_and_ties_are_enough():
    ev = FixedOutcomes(_solve(small=10, medium=20))  # 30/60 = 0.5
    assert [s.total for s in _eval(ev, second_best=0.5).stages] == [10, 60, 200]  # tie: enters
    assert [s.total for s in _eval(ev, second_best=0.51).stages] == [10, 60]      # below: stops
    assert [s.total for s in _eval(ev, second_best=None).stages] == [10, 60, 200]  # no second-best yet


def test_stage_three_threshold_is_applied_unlike_the_official_code():
    ev = FixedOutcomes(_solve(small=10, medium=13))  # 23/60 = 0.383 < 0.4, but above second best
    assert [s.total for s in _eval(ev, second_best=0.1).stages] == [10, 60]


def test_scores_are_cumulative_and_selection_uses_the_largest_stage():
    result = _eval(FixedOutcomes(_solve(small=5, medium=25)), second_best=0.9)
    assert [(s.resolved, s.total) for s in result.stages] == [(5, 10), (30, 60)]
    assert result.score == pytest.approx(0.5)


def test_repeated_evaluations_count_every_run():
    ev = FixedOutcomes(_solve(small=10), stages=[Stage(tasks="small")], num_evals=3)
    result = _eval(ev)
    assert (result.stages[0].resolved, result.stages[0].total) == (30, 30)
    assert {r.eval_index for r in result.results} == {0, 1, 2}


def test_unknown_subset_is_named():
    with pytest.raises(ValueError, match="no subset 'huge'"):
        FixedOutcomes(set(), stages=[Stage(tasks="huge")])
