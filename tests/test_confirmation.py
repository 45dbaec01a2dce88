"""`dgm confirm` (issue 15, item 2): the top nodes and the initial agent on the sealed held-out split.

The statistics are checked against values worked by hand; the end-to-end part makes a real run (bwrap
sandboxes, the real gateway, the scripted test-double model through the seed agent's tools), then
confirms it, and checks that nothing of the run's ledger changed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from dgm.analysis.report import render
from dgm.analysis.runview import RunView
from dgm.analysis.stats import BOOTSTRAP_RESAMPLES, paired_bootstrap, wilson_interval
from dgm.bench import load_benchmark
from dgm.cli import main
from dgm.confirm import ConfirmError, confirm_row, confirm_run, top_nodes
from dgm.store import Node, RunStore

REPO = Path(__file__).resolve().parents[1]
SUBSETS = load_benchmark("local").subsets()
SEARCH = SUBSETS["small"][:2]
HELDOUT = [SUBSETS["heldout"][0], SUBSETS["heldout"][3]]
TASKS = [f"t{i}" for i in range(10)]


def node(node_id, score=None, parent="initial", admitted=True, tasks=10) -> Node:
    return Node(node_id, None if node_id == "initial" else parent, 1, f"1:{node_id}", "evaluated", True, admitted,
                score=score, tasks_evaluated=tasks)


def test_mcnemar_row_matches_the_hand_computed_values():
    initial = {t: [t == "t0"] for t in TASKS}  # 1/10
    child = {t: [t in ("t0", "t1", "t2", "t3", "t4", "t5")] for t in TASKS}  # 6/10: five tasks only it solves
    row = confirm_row(node("c", score=0.9), child, initial, repeats=1)
    assert (row.resolved, row.total, row.confirmed_score) == (6, 10, 0.6)
    assert row.gap == pytest.approx(0.3)  # 0.9 in the search, 0.6 confirmed
    assert (row.test, row.better, row.worse) == ("mcnemar", 5, 0)
    assert row.p_value == pytest.approx(2 / 2**5)  # exact: 2 * P(Binomial(5, 1/2) <= 0) = 0.0625
    assert (row.low, row.high) == pytest.approx(wilson_interval(6, 10))
    assert (row.low, row.high) == pytest.approx((0.3127, 0.8318), abs=1e-4)  # Wilson 6/10 from a table
    base = confirm_row(node("initial", score=0.5), initial, initial, repeats=1)
    assert base.test is None and base.p_value is None and base.gap == pytest.approx(0.4)


def test_repeats_use_the_paired_bootstrap_over_tasks():
    initial = {t: [False, False] for t in TASKS}
    child = {t: [True, i < 5] for i, t in enumerate(TASKS)}  # every task better: resolved 1.5 of 2 on average
    row = confirm_row(node("c", score=1.0), child, initial, repeats=2)
    assert (row.resolved, row.total, row.test, row.better) == (15, 20, "paired_bootstrap", 10)
    # Every per-task difference is positive: no resample centred on 0 reaches the observed mean, p = 1/(B+1).
    assert row.p_value == pytest.approx(1 / (BOOTSTRAP_RESAMPLES + 1))
    assert row.low <= 0.75 <= row.high and row.low >= 0.5  # per-task means are 1.0 or 0.5
    assert paired_bootstrap({"a": 0.5, "b": 1.0}, {"a": 0.5, "b": 1.0}) == 1.0  # identical agents


def test_top_nodes_are_admitted_children_by_search_score():
    class Store:
        def nodes(self):
            return [node("initial", 1.0), node("a", 0.5), node("b", 0.8, tasks=10), node("c", 0.8, tasks=60),
                    node("d", 0.9, admitted=False), node("e", None)]

    assert [n.node_id for n in top_nodes(Store(), 3)] == ["c", "b", "a"]  # ties: more tasks first


# -- end to end --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    archive = tmp_path_factory.mktemp("archive")
    proc = subprocess.run([sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml",
                           "--set", f"run.archive_dir={archive}", "--set", "loop.generations=1",
                           "--set", f"evaluation.stages=[{{tasks: {json.dumps(SEARCH)}}}]",
                           "--set", f"evaluation.heldout={json.dumps(HELDOUT)}"],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run,) = [p for p in archive.iterdir() if (p / "run.db").exists()]
    return run


def ledger(run: Path) -> dict:
    """What the run recorded: its rows, its events, its agents."""
    db = sqlite3.connect(f"file:{run / 'run.db'}?mode=ro", uri=True)
    rows = {table: db.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("runs", "nodes", "task_results", "stage_scores", "llm_calls", "attempts")}
    db.close()
    events = hashlib.sha256((run / "events.jsonl").read_bytes()).hexdigest()
    return {"rows": rows, "events": events, "nodes": sorted(p.name for p in (run / "nodes").iterdir())}


@pytest.mark.slow
def test_confirm_evaluates_on_heldout_and_leaves_the_run_untouched(run_dir, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "160")  # the table unwrapped, as on a wide terminal
    before = ledger(run_dir)
    report = confirm_run(run_dir, top_k=1)
    assert ledger(run_dir) == before
    assert report.sealed and report.tasks == HELDOUT and report.repeats == 1 and report.scripted
    assert report.plan == "matches"  # the held-out ids are the ones plan.json sealed
    store = RunStore.open(run_dir, read_only=True)
    best = top_nodes(store, 1)[0]
    assert [r.node_id for r in report.rows] == ["initial", best.node_id]
    assert report.evaluated == ["initial", best.node_id]
    for row in report.rows:
        results = json.loads((run_dir / "confirm" / "heldout-r1" / row.node_id / "results.json").read_text())
        assert {r["task_id"] for r in results["results"]} == set(HELDOUT)
        assert row.resolved == sum(r["outcome"] == "resolved" for r in results["results"]) and row.total == 2
        assert row.gap == pytest.approx(store.node(row.node_id).score - row.confirmed_score)
    assert report.row(best.node_id).test == "mcnemar" and 0 < report.llm_calls
    calls = (run_dir / "confirm" / "heldout-r1" / "llm_calls.jsonl").read_text().splitlines()
    assert {json.loads(c)["task_id"] for c in calls if json.loads(c)["purpose"] == "task"} == set(HELDOUT)

    # Again, as JSON from the CLI: the same figures, nothing evaluated twice.
    assert main(["confirm", str(run_dir), "--top", "1", "--json"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["evaluated"] == [] and again["rows"] == [r.__dict__ for r in report.rows]
    assert main(["confirm", str(run_dir), "--top", "1"]) == 0
    table = capsys.readouterr().out
    assert "sealed held-out split" in table and best.node_id in table and "mcnemar" in table
    assert f"{report.rows[1].confirmed_score:.3f} ({report.rows[1].resolved}/2)" in table
    summary = render([RunView.load(run_dir)])  # `dgm report` shows the confirmation beside the search
    assert f"| confirmed@heldout-r1 | {best.node_id} {report.rows[1].confirmed_score:.3f}" in summary


@pytest.mark.slow
def test_confirm_with_repeats_uses_the_paired_bootstrap(run_dir):
    report = confirm_run(run_dir, top_k=1, repeats=2)
    assert report.out_dir.endswith("heldout-r2") and report.evaluated == [r.node_id for r in report.rows]
    assert all(r.total == len(HELDOUT) * 2 for r in report.rows)
    assert report.rows[1].test == "paired_bootstrap" and 0 < report.rows[1].p_value <= 1


def test_a_named_split_is_marked_as_not_held_out():
    from dgm.config import Config
    from dgm.splits import split_tasks

    cfg = Config.model_validate({"evaluation": {"heldout": HELDOUT}}).evaluation
    bench = load_benchmark("local")
    assert split_tasks(bench, cfg, "heldout") == HELDOUT
    assert split_tasks(bench, cfg, "small") == SUBSETS["small"]
    with pytest.raises(ValueError, match="the run has no held-out split"):
        split_tasks(bench, Config.model_validate({"evaluation": {"heldout": None}}).evaluation, "heldout")


@pytest.mark.slow
def test_bad_confirm_arguments_are_named(run_dir, capsys):
    with pytest.raises(ConfirmError, match="--split: benchmark 'local' has no subset 'huge'"):
        confirm_run(run_dir, split="huge")
    assert main(["confirm", str(run_dir), "--repeats", "0"]) == 2
    assert "--repeats >= 1" in capsys.readouterr().err
