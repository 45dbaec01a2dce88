"""The quick-start variants of issue 16 end to end and for real (bwrap sandboxes, the real gateway, the
scripted test-double model, real git and SQLite): HGM's decoupled policy and paired admission."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dgm.admission import AdmissionRule, admit
from dgm.bench import load_benchmark
from dgm.hgm import TreeNode, clade_counts
from dgm.loop import resolved_map
from dgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(config, archive, *overrides):
    tasks = load_benchmark("local").subsets()["small"][:4]
    proc = subprocess.run([sys.executable, "-m", "dgm.run", config, "--set", f"run.archive_dir={archive}",
                           "--set", f"evaluation.stages=[{{tasks: {json.dumps(tasks)}}}]", *overrides],
                          cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (run_dir,) = [p for p in archive.iterdir() if (p / "run.db").exists()]
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    return run_dir, RunStore.open(run_dir, read_only=True), events


def test_hgm_quickstart_expands_and_evaluates_one_task_at_a_time(tmp_path):
    run_dir, store, events = _run("experiments/quickstart-hgm.yaml", tmp_path, "--set", "loop.generations=5",
                                  "--set", "selection.hgm.max_task_evals=3")
    steps = [e for e in events if e["event"] == "hgm_step"]
    assert [s["action"] for s in steps][0] == "expand"  # N = 0: 0^0.6 >= 0 children, the root expands
    assert {"expand", "evaluate"} <= {s["action"] for s in steps}
    children = [n for n in store.nodes() if n.parent_id]
    assert children and all(n.generation == s["step"] for n, s in
                            zip(children, [s for s in steps if s["action"] == "expand"]))
    # Every evaluation step added exactly one task result to the node it chose, in order.
    evaluations = [e for e in events if e["event"] == "hgm_evaluation"]
    assert evaluations and len(evaluations) <= 3
    for node in children:
        results = store.task_results(node.node_id)
        chosen = [e["task"] for e in evaluations if e["node"] == node.node_id]
        assert [r.task_id for r in results] == chosen
        assert node.tasks_evaluated == len(chosen)
        if chosen:
            solved = sum(r.outcome == "resolved" for r in results)
            assert node.status == "evaluated" and node.score == solved / len(results)
            assert (run_dir / "nodes" / node.node_id / "tasks" / chosen[0] / "trajectory.json").exists()
    # Each expansion's posterior counts are the clade's pooled outcomes as the store held them.
    last_expand = [s for s in steps if s["action"] == "expand"][-1]
    assert last_expand["counts"]["initial"][0] >= store.node("initial").stages[-1].resolved


def test_hgm_decisions_match_clade_counts_recomputed_from_the_store(tmp_path):
    run_dir, store, events = _run("experiments/quickstart-hgm.yaml", tmp_path, "--set", "loop.generations=4",
                                  "--set", "selection.hgm.max_task_evals=2")
    tree = []
    for n in store.nodes():
        if n.parent_id is None or n.compiled:
            results = store.task_results(n.node_id)
            solved = sum(r.outcome == "resolved" for r in results)
            tree.append(TreeNode(n.node_id, n.parent_id, solved, len(results) - solved))
    counts = clade_counts(tree)
    total = sum(t.successes for t in tree), sum(t.failures for t in tree)
    assert counts["initial"] == total  # the root's clade is the whole tree


TWO_STAGES = ("evaluation.stages=[{tasks: [textkit__textkit-14, textkit__textkit-45, textkit__textkit-70, "
              "unitlib__unitlib-9]}, {threshold: 0.9, tasks: [unitlib__unitlib-34, confparse__confparse-24]}]")


@pytest.mark.parametrize("adaptive", [[], ["--set", "evaluation.adaptive=true", "--set", TWO_STAGES]],
                         ids=["paired", "paired with adaptive stages"])
def test_paired_quickstart_records_the_test_and_follows_it(tmp_path, adaptive):
    run_dir, store, events = _run("experiments/quickstart-paired.yaml", tmp_path, "--set", "loop.generations=1",
                                  *adaptive)
    # a stage stopped early only once the verdict was settled (test_adaptive_evaluation.py checks "settled")
    assert any(e["event"] == "adaptive_stop" for e in events) == bool(adaptive)
    admissions = {e["node"]: e for e in events if e["event"] == "admission"}
    rule = AdmissionRule("paired_test", alpha=0.05)
    evaluated = [n for n in store.nodes() if n.parent_id and n.node_id in admissions]
    assert evaluated
    for node in evaluated:
        event = admissions[node.node_id]
        expected = admit(rule, compiled=node.compiled, score=node.score,
                         child=resolved_map(store.task_results(node.node_id)),
                         parent=resolved_map(store.task_results(node.parent_id)))
        assert node.admitted == expected.admitted == event["admitted"]
        if node.compiled:
            assert event["p_value"] == pytest.approx(expected.p_value)
            assert "McNemar" in event["reason"]


def test_hgm_killed_while_publishing_a_step_resumes_to_the_same_tree(tmp_path):
    """kill -9 at the worst moment of step 2 (its files published, no DB row), then --resume: the same
    decisions and the same nodes and task results as an uninterrupted run, nothing duplicated."""
    import os
    import signal

    overrides = ("--set", "loop.generations=4", "--set", "selection.hgm.max_task_evals=2")
    _, reference, ref_events = _run("experiments/quickstart-hgm.yaml", tmp_path / "reference", *overrides)
    tasks = load_benchmark("local").subsets()["small"][:4]
    archive = tmp_path / "killed"
    args = [sys.executable, "-m", "dgm.run", "experiments/quickstart-hgm.yaml", "--set", f"run.archive_dir={archive}",
            "--set", f"evaluation.stages=[{{tasks: {json.dumps(tasks)}}}]", *overrides]
    killed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "DGM_TEST_KILL_AT": "publish:2:0"})
    assert killed.returncode == -signal.SIGKILL, killed.stdout + killed.stderr
    (run_dir,) = [p for p in archive.iterdir() if (p / "run.db").exists()]
    resumed = subprocess.run([sys.executable, "-m", "dgm.run", "--resume", str(run_dir)], cwd=REPO,
                             capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    store = RunStore.open(run_dir, read_only=True)
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    decisions = lambda evs: [(e["step"], e["action"], e["node"]) for e in evs if e["event"] == "hgm_step"]
    assert sorted(set(decisions(events))) == decisions(ref_events)  # step 2 was decided twice, the same way
    outcomes = lambda s: {n.node_id: [(r.task_id, r.outcome) for r in s.task_results(n.node_id)] for n in s.nodes()}
    assert outcomes(store) == outcomes(reference)
