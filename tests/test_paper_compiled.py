"""`paper_compiled`: the official code's rule for a compiled child (resolved + unresolved > 0, and at least as
many submitted task runs as stage 1 has), recorded per node beside our own-tests `compiled`, shown by
`dgm status` and `dgm report`; run directories written before the column existed stay readable."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dgm.analysis.report import summary_row
from dgm.analysis.runview import RunView
from dgm.config import Config
from dgm.evaluate import Evaluation
from dgm.loop import DarwinGodelMachine, RunContext
from dgm.store import Node, RunStore, StageScore, TaskResult

REPO = Path(__file__).resolve().parents[1]


def _evaluation(*stages: list[str]) -> Evaluation:
    results, scores = [], []
    for index, outcomes in enumerate(stages, 1):
        results += [TaskResult(f"s{index}t{i}", index, o, 1.0) for i, o in enumerate(outcomes)]
        scores.append(StageScore(index, sum(r.outcome == "resolved" for r in results), len(results)))
    return Evaluation(scores, results)


@pytest.mark.parametrize("stages, expected", [
    ((["unresolved"] * 9 + ["empty_patch"],), True),                  # every stage-1 task submitted
    ((["resolved"] + ["unresolved"] * 8 + ["timeout"],), False),      # one stage-1 run never submitted
    ((["unresolved"] * 9 + ["error"],), False),                       # a crash is not a submission
    ((["empty_patch"] * 10,), False),                                 # nothing graded: resolved + unresolved = 0
    ((["resolved"] * 4 + ["unresolved"] * 5 + ["timeout"], ["unresolved"] * 50), True),  # counted over all stages
])
def test_the_official_rule(stages, expected):
    assert _evaluation(*stages).paper_compiled is expected


def _machine(tmp_path) -> DarwinGodelMachine:
    store = RunStore.create(tmp_path / "run", "r", "{}", scripted=True)
    return DarwinGodelMachine(RunContext(config=Config(run={"seed": 0}), store=store, benchmark=None,
                                         evaluator=None, policy=None, llm=None, initial_agent=tmp_path))


def _publish(machine, node_id, evaluation, work):
    node = Node(node_id, "initial", 1, f"1:{node_id}", "failed", False, False)
    machine._admit(node, evaluation, work)
    machine.store.finish_attempt(node, evaluation.results)
    return machine.store.node(node_id)


def test_both_rules_are_recorded_per_node_and_can_disagree(tmp_path):
    machine = _machine(tmp_path)
    work = tmp_path / "work"
    for i in range(10):  # every stage-1 run left a non-empty patch, so ours counts it as compiled
        patch = work / "tasks" / f"s1t{i}" / "model_patch.diff"
        patch.parent.mkdir(parents=True)
        patch.write_text("diff --git a/x b/x\n")
    timed_out = _publish(machine, "g001s0", _evaluation(["unresolved"] * 9 + ["timeout"]), work)
    assert timed_out.compiled is True and timed_out.paper_compiled is False
    fine = _publish(machine, "g001s1", _evaluation(["resolved"] + ["unresolved"] * 9), work)
    assert fine.compiled is True and fine.paper_compiled is True
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert [e["paper_compiled"] for e in events if e["event"] == "admission"] == [False, True]


def _run_with_children(tmp_path) -> Path:
    store = RunStore.create(tmp_path / "run", "r", "{}", scripted=True)
    evaluated = _evaluation(["resolved"] + ["unresolved"] * 9)
    store.finish_attempt(Node("initial", None, 0, "0:initial", "evaluated", True, True, score=0.1,
                              stages=evaluated.stages, paper_compiled=True), evaluated.results)
    store.finish_attempt(Node("g001s0", "initial", 1, "1:0", "evaluated", True, True, score=0.1,
                              stages=evaluated.stages, paper_compiled=True), evaluated.results)
    store.finish_attempt(Node("g001s1", "initial", 1, "1:1", "evaluated", True, True, score=0.0,
                              stages=evaluated.stages, paper_compiled=False), evaluated.results)
    store.finish_attempt(Node("g001s2", "initial", 1, "1:2", "not_compiled", False, False))  # own tests failed
    store.close()
    return tmp_path / "run"


def test_status_and_report_show_the_papers_rule_beside_ours(tmp_path):
    run_dir = _run_with_children(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "dgm", "status", str(run_dir), "--json"], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    nodes = {n["id"]: n for n in json.loads(proc.stdout)["nodes"]}
    assert [nodes[i]["paper_compiled"] for i in ("g001s0", "g001s1", "g001s2")] == [True, False, None]
    table = subprocess.run([sys.executable, "-m", "dgm", "status", str(run_dir)], cwd=REPO,
                           capture_output=True, text=True, timeout=120).stdout
    assert "paper" in table and "compiled" in table
    row = summary_row(RunView.load(run_dir))
    assert row["compiled_rate"] == pytest.approx(2 / 3) and row["paper_compiled_rate"] == pytest.approx(1 / 3)
    assert row["paper_compiled_unknown"] == 1


def _make_old(run_dir: Path) -> None:
    """The run directory as the release before `paper_compiled` and `seq` wrote it."""
    db = sqlite3.connect(run_dir / "run.db")
    db.execute("ALTER TABLE nodes DROP COLUMN paper_compiled")
    db.execute("ALTER TABLE task_results DROP COLUMN seq")
    db.commit()
    db.close()


def test_an_old_run_directory_stays_readable_and_is_upgraded_on_resume(tmp_path):
    run_dir = _run_with_children(tmp_path)
    _make_old(run_dir)
    old = RunStore.open(run_dir, read_only=True)
    assert {n.node_id: n.paper_compiled for n in old.nodes()}["g001s0"] is None  # unknown, not an error
    assert [r.task_id for r in old.task_results("g001s0")] == [f"s1t{i}" for i in range(10)]
    assert summary_row(RunView.load(run_dir))["paper_compiled_unknown"] == 3
    old.close()
    proc = subprocess.run([sys.executable, "-m", "dgm", "status", str(run_dir)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr

    resumed = RunStore.open(run_dir)  # opened for writing, as --resume does
    evaluated = _evaluation(["unresolved"] * 10)
    resumed.finish_attempt(Node("g002s0", "g001s0", 2, "2:0", "evaluated", True, True, score=0.0,
                                stages=evaluated.stages, paper_compiled=True), evaluated.results)
    assert resumed.node("g002s0").paper_compiled is True and resumed.node("g001s0").paper_compiled is None
