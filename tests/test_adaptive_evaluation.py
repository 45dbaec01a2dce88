"""Adaptive stage evaluation (dgm/adaptive.py): the same decisions as the full staged evaluation, fewer tasks.

The evaluator is the real one; only its task runs are replaced by fixed outcomes (each writes the model patch
a real run would leave), as in test_staged_evaluation.py: this tests the stopping rule and the parallel
scheduling, not agents. Real task runs with adaptive evaluation: experiments/quickstart-adaptive.yaml."""

import random
import threading
import time
from pathlib import Path

import pytest

from dgm.adaptive import CONTINUE, ENTRY_GUARANTEED, STOP, StageRule, stage_decision
from dgm.config import EvaluationSection, Stage
from dgm.admission import paired_verdict, paired_verdict_settled
from dgm.evaluate import Evaluator, made_patch, resolved_map
from dgm.store import TaskResult
from test_staged_evaluation import PAPER_STAGES, TinyBench

SMALL_STAGES = [Stage(tasks="small"), Stage(tasks="medium", threshold=0.4),
                Stage(tasks="big", threshold=0.4, require_second_best=True)]


class Scripted(Evaluator):
    """The real evaluator with each task run replaced by a fixed outcome (and the patch file it implies)."""

    def __init__(self, outcomes: dict[str, str], *, adaptive: bool, stages=PAPER_STAGES, sizes=(10, 50, 140),
                 workers=1, jitter: random.Random | None = None):
        super().__init__(benchmark=TinyBench(sizes), policy=None, llm=None,
                         cfg=EvaluationSection(stages=stages, adaptive=adaptive, workers=workers), limits=None)
        self.outcomes, self.jitter, self.started = outcomes, jitter, []
        self._lock = threading.Lock()

    def run_task(self, agent_dir, task_id, stage, node_id, attempt_id, out_dir, eval_index=0):
        with self._lock:
            self.started.append(task_id)
            delay = self.jitter.random() * 0.004 if self.jitter else 0
        time.sleep(delay)  # parallel tasks finish out of order
        outcome = self.outcomes.get(task_id, "unresolved")
        task_dir = out_dir / "tasks" / task_id
        task_dir.mkdir(parents=True, exist_ok=True)
        (task_dir / "model_patch.diff").write_text("" if outcome == "empty_patch" else "diff --git a/x b/x\n")
        return TaskResult(task_id, stage, outcome, 0.0, None, eval_index)


def _random_outcomes(rng: random.Random, sizes) -> dict[str, str]:
    rate, empty = rng.random() * 0.6, rng.random() * rng.choice([0, 1])
    out = {}
    for name, size in zip(("small", "medium", "big"), sizes):
        for i in range(size):
            draw = rng.random()
            out[f"{name}-{i}"] = "resolved" if draw < rate else ("empty_patch" if draw < rate + empty else "unresolved")
    return out


def _decisions(ev, evaluation, out_dir, bar):
    """What the loop decides from an evaluation: stages entered, compiled, keep_better admission."""
    compiled = any(made_patch(out_dir, r) for r in evaluation.results if r.stage == 1)
    return len(evaluation.stages), compiled, compiled and evaluation.score >= bar


def test_pure_rule_at_its_edges():
    rule = StageRule(entry_bar=0.4)
    decide = lambda graded, **kw: stage_decision(resolved_before=0, total_before=0, graded=graded, stage_size=10,
                                                 rule=kw.pop("rule", rule), **kw)
    assert decide([False] * 6) == CONTINUE          # 4 left: 4/10 still reachable
    assert decide([False] * 7) == STOP              # at most 3/10 < 0.4
    assert decide([True] * 4) == ENTRY_GUARANTEED   # 4/10 whatever the rest does
    assert decide([False] * 7, patch_seen=False, rule=StageRule(0.4, needs_patch=True)) == CONTINUE
    # keep_better's bar (0.2) still open at 1/10 with 3 left: grade on until it is settled
    assert decide([True] + [False] * 6, rule=StageRule(0.4, other_bars=(0.2,))) == CONTINUE
    assert decide([True, True] + [False] * 7, rule=StageRule(0.4, other_bars=(0.2,))) == STOP
    # cumulative: 5/10 before, stage of 50; reaching 24/60 needs 19 of the 50
    later = dict(resolved_before=5, total_before=10, stage_size=50, rule=rule)
    assert stage_decision(graded=[False] * 31, **later) == CONTINUE
    assert stage_decision(graded=[False] * 32, **later) == STOP


@pytest.mark.parametrize("workers", [1, 4])
def test_same_decisions_as_full_evaluation_with_fewer_tasks(tmp_path, workers):
    rng = random.Random(16)
    saved = total = 0
    for trial in range(40):
        outcomes = _random_outcomes(rng, (10, 20, 30))
        second_best = rng.choice([None, 0.3, 0.45, 0.6])
        bar = rng.choice([0.0, 0.15, 0.3])
        runs = {}
        for adaptive in (False, True):
            out = tmp_path / f"{trial}-{adaptive}"
            ev = Scripted(outcomes, adaptive=adaptive, sizes=(10, 20, 30), workers=workers,
                          jitter=random.Random(trial) if workers > 1 else None)
            evaluation = ev.evaluate(Path("/agent"), "n", "1:0", out, second_best=second_best, score_bars=(bar,))
            runs[adaptive] = (ev, evaluation, out)
        (full_ev, full, full_out), (ad_ev, ad, ad_out) = runs[False], runs[True]
        assert _decisions(full_ev, full, full_out, bar) == _decisions(ad_ev, ad, ad_out, bar), (trial, outcomes)
        assert [s.total for s in ad.stages] == [s.total for s in full.stages]  # the full stages' denominators
        if ad.stop:
            last_full, last = full.stages[-1], ad.stages[-1]
            assert last.graded == len(ad.results) < last.total
            assert last.resolved <= last_full.resolved and last.score <= last_full.score  # a lower bound
            assert ad.skipped == len(full.results) - len(set(ad_ev.started))
        else:
            assert ad.results == full.results
        saved += len(full_ev.started) - len(ad_ev.started)
        total += len(full_ev.started)
    assert 0 < saved < total  # (44 of 820 task runs on these draws)


@pytest.mark.parametrize("settle", [True, False], ids=["with the paired check", "control: without it"])
def test_paired_admission_decides_the_same_as_full_evaluation(tmp_path, settle):
    """admission.method: paired_test reads task outcomes, not the score: a stage stops only once the
    test's verdict against the parent cannot change. Without that check some verdicts change."""
    rng = random.Random(3)
    differ = 0
    for trial in range(40):
        outcomes = _random_outcomes(rng, (10, 20, 30))
        parent = {t: rng.random() < 0.6 for t in outcomes if rng.random() < 0.9}
        alpha = rng.choice([0.05, 0.2, 0.4])
        settled = (lambda child, ungraded: paired_verdict_settled(alpha, child, parent, ungraded)) if settle else None
        verdicts = []
        for adaptive in (False, True):
            ev = Scripted(outcomes, adaptive=adaptive, sizes=(10, 20, 30))
            evaluation = ev.evaluate(Path("/agent"), "n", "1:0", tmp_path / f"{trial}-{adaptive}",
                                     outcomes_settled=settled)
            verdicts.append((len(evaluation.stages),
                             paired_verdict(alpha, resolved_map(evaluation.results), parent).admitted))
        differ += verdicts[0] != verdicts[1]
    assert differ == 0 if settle else differ > 0


def test_parallel_results_do_not_depend_on_which_task_finished_first(tmp_path):
    outcomes = {f"small-{i}": "resolved" for i in (0, 1)}  # 2/10 resolved, the rest fail: out of reach after 9
    seen = set()
    for seed in range(6):
        ev = Scripted(outcomes, adaptive=True, workers=4, jitter=random.Random(seed))
        evaluation = ev.evaluate(Path("/agent"), "n", "1:0", tmp_path / str(seed))
        seen.add((tuple((r.task_id, r.outcome) for r in evaluation.results), evaluation.stages[0].resolved,
                  evaluation.stages[0].graded))
        assert len(ev.started) <= 10 and evaluation.stop["decided_after"] == 9
    assert seen == {(tuple((f"small-{i}", "resolved" if i < 2 else "unresolved") for i in range(9)), 2, 9)}


def test_the_last_stage_and_the_initial_agent_are_always_graded_in_full(tmp_path):
    ev = Scripted({}, adaptive=True, stages=[Stage(tasks="small")])
    assert len(ev.evaluate(Path("/agent"), "n", "1:0", tmp_path / "a").results) == 10
    ev = Scripted({}, adaptive=True)
    evaluation = ev.evaluate(Path("/agent"), "initial", "0:initial", tmp_path / "b", all_stages=True)
    assert len(evaluation.results) == 200 and evaluation.stop is None


def test_a_stopped_stage_round_trips_through_the_store_and_the_report_prices_the_saving(tmp_path):
    from dgm.analysis.report import summary_row
    from dgm.analysis.runview import RunView
    from dgm.analysis.synthetic import build_synthetic_run
    from dgm.llm.base import CallContext, UsageRecord
    from dgm.store import Node, RunStore, StageScore

    run = build_synthetic_run(tmp_path / "run", children=2, seed=1, stage_sizes=(10, 30))
    store = RunStore.open(run)
    store.start_generation(5, ["initial"])
    store.begin_attempt("5:0", 5, 0, "initial")
    # stage 2 stopped after 3 of its 20 runs were counted: 2 more ran uncounted, 15 never started
    stages = [StageScore(1, 4, 10), StageScore(2, 5, 30, graded=13)]
    store.finish_attempt(Node(node_id="g5s0", parent_id="initial", generation=5, attempt_id="5:0", status="evaluated",
                              compiled=True, admitted=True, score=stages[-1].score, tasks_evaluated=13, stages=stages,
                              tasks_skipped=15))
    for _ in range(3):  # $0.30 of task calls over the 15 runs started
        store.record_llm_call(UsageRecord(CallContext("g5s0", "g5s0", "5:0", "task"), "m", 10, 1, 0, 0.1, False, 0.1))
    store.close()
    node = RunView.load(run).node("g5s0")
    assert node.tasks_skipped == 15 and node.stages[-1].graded == 13 and node.stages[0].graded is None
    assert node.score == pytest.approx(5 / 30)
    row = summary_row(RunView.load(run))
    assert row["adaptive_stopped_stages"] == 1 and row["adaptive_tasks_not_started"] == 15
    assert row["adaptive_usd_saved_est"] == pytest.approx(0.3 / 15 * 15)
