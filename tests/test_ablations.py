"""The paper's ablations and the loop's admission and stopping rules, decided by `DarwinGodelMachine`.

Mostly unit-level: a real run store (SQLite + agents.git) built through the RunStore API and the machine's
own methods. The w/o-self-improve test runs one real attempt (scripted model behind the real gateway,
bwrap sandboxes); the run-budget test runs `python -m dgm.run` for real. The scripted model is a test double.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

from types import SimpleNamespace

import pytest

import dgm.executor.jobs
import dgm.loop
from dgm.agent_run import SandboxPolicy
from dgm.bench import load_benchmark
from dgm.config import Config
from dgm.evaluate import Evaluation, Evaluator
from dgm.hgm import next_action
from dgm.hgm_search import HGMSearch
from dgm.loop import DarwinGodelMachine, RunContext, load_cached_evaluation
from dgm.run import runtime
from dgm.store import Node, RunStore, StageScore, TaskResult

REPO = Path(__file__).resolve().parents[1]
INITIAL_AGENT = REPO / "agents" / "initial"
BENCH = load_benchmark("local")
TASKS = BENCH.subsets()["small"][:4]


def make_config(**sections) -> Config:
    tree = {"run": {"seed": 1, "workers": 1}, "loop": {"children_per_generation": 2},
            "evaluation": {"stages": [{"tasks": TASKS}]}, "agent": {"initial": str(INITIAL_AGENT)}}
    for key, value in sections.items():
        tree[key] = {**tree.get(key, {}), **value} if isinstance(value, dict) else value
    return Config.model_validate(tree)


def add_node(store: RunStore, node_id: str, parent: str | None, score: float, admitted: bool = True,
             agent_dir: Path = INITIAL_AGENT) -> Node:
    generation = 0 if parent is None else int(node_id[1:4])
    attempt = "0:initial" if parent is None else f"{generation}:{node_id[-1]}"
    resolved = round(score * len(TASKS))
    node = Node(node_id=node_id, parent_id=parent, generation=generation, attempt_id=attempt, status="evaluated",
                compiled=admitted, admitted=admitted, score=score, tasks_evaluated=len(TASKS),
                stages=[StageScore(1, resolved, len(TASKS))])
    outcomes = ["resolved"] * resolved + ["unresolved"] * (len(TASKS) - resolved)
    results = [TaskResult(t, 1, o, 1.0, "submitted") for t, o in zip(TASKS, outcomes)]
    store.begin_attempt(attempt, generation, int(attempt.split(":")[1]) if parent else 0, parent)
    return store.finish_attempt(node, results, agent_dir=agent_dir)


def machine(tmp_path: Path, nodes=(), *, budget_exhausted=lambda: False, **sections) -> DarwinGodelMachine:
    """A machine over a store holding `nodes` = (node_id, parent, score[, admitted]) in archive order."""
    config = make_config(**sections)
    store = RunStore.create(tmp_path / "run", "run", config.to_yaml(), scripted=True)
    for spec in nodes:
        add_node(store, *spec)
    ctx = RunContext(config=config, store=store, benchmark=BENCH, evaluator=None, policy=SandboxPolicy("bwrap"),
                     llm=None, initial_agent=INITIAL_AGENT, budget_exhausted=budget_exhausted,
                     report=lambda line: None)
    return DarwinGodelMachine(ctx)


ARCHIVE = [("initial", None, 0.25), ("g001s0", "initial", 0.75), ("g001s1", "initial", 0.5),
           ("g002s0", "g001s1", 0.25), ("g002s1", "g001s0", 1.0, False)]  # newest node: not admitted


# -- parent choice of the ablations ---------------------------------------------------------------
def test_no_darwin_always_picks_the_newest_admitted_node_one_child_per_generation(tmp_path):
    dgm_ = machine(tmp_path, ARCHIVE, ablation="no_darwin")
    assert dgm_.select_parents(3) == ["g002s0"]  # k=2 in config, but w/o open-ended exploration makes one
    add_node(dgm_.store, "g003s0", "g002s0", 0.0)
    assert dgm_.select_parents(4) == ["g003s0"]  # even when it is the worst agent
    select = [e for e in dgm_.store.events.read() if e["event"] == "select"]
    assert [e["method"] for e in select] == ["latest", "latest"]


def test_greedy_always_picks_the_best_admitted_node(tmp_path):
    dgm_ = machine(tmp_path, ARCHIVE, ablation="greedy")
    assert dgm_.select_parents(3) == ["g001s0", "g001s0"]  # g002s1 scores 1.0 but is not in the archive
    add_node(dgm_.store, "g003s0", "g001s0", 0.75)  # a tie goes to the older node
    add_node(dgm_.store, "g003s1", "g001s0", 0.5)
    assert dgm_.select_parents(4) == ["g001s0", "g001s0"]


def test_no_selfimprove_modifier_is_the_initial_agent_everywhere_else_the_parent(tmp_path):
    assert machine(tmp_path / "a", ablation="no_selfimprove")._modifier_of("g001s0") == "initial"
    for ablation in ("none", "no_darwin", "greedy"):
        assert machine(tmp_path / ablation, ablation=ablation)._modifier_of("g001s0") == "g001s0"


@pytest.mark.slow
def test_no_selfimprove_initial_code_modifies_a_checkout_of_the_parent(tmp_path, monkeypatch):
    """One real attempt: the initial agent's code edits the parent's code; child = parent + patch."""
    parent_code = tmp_path / "parent_code"
    shutil.copytree(INITIAL_AGENT, parent_code, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    (parent_code / "PARENT_MARKER.md").write_text("written by the parent's own evolution\n")
    config = make_config(ablation="no_selfimprove", evaluation={"stages": [{"tasks": TASKS[:1]}]})
    store = RunStore.create(tmp_path / "run", "run", config.to_yaml(), scripted=True)
    add_node(store, "initial", None, 0.25)
    add_node(store, "g001s0", "initial", 0.5, agent_dir=parent_code)

    seen = {}

    def spy(**kwargs):  # the real self-modification, watched
        seen.update(modifier=kwargs["modifier_dir"], target=kwargs["target_dir"])
        return real(**kwargs)

    real = dgm.executor.jobs.self_modify
    monkeypatch.setattr(dgm.executor.jobs, "self_modify", spy)
    with runtime(config, store, "run") as ctx:
        dgm_ = DarwinGodelMachine(ctx)
        dgm_.create_child(2, 0, "g001s0")

    child = store.node("g002s0")
    assert child.modifier_id == "initial" and child.parent_id == "g001s0"
    assert seen["modifier"] == store.run_dir / "checkouts" / "initial"
    assert seen["target"] == store.run_dir / "checkouts" / "g001s0"
    assert child.commit_sha, (child.status, child.error)
    # The child's code is exactly the parent's code plus the patch (which the initial code wrote).
    patch = (store.node_dir("g002s0") / "patch.diff").read_text()
    assert patch.strip()
    expected = tmp_path / "expected"
    store.lineage.export("g001s0", expected)
    subprocess.run(["git", "apply", "--whitespace=nowarn", "-"], input=patch, text=True, cwd=expected, check=True)
    store.lineage.commit("rebuilt", expected, "g001s0", "parent + patch")
    assert store.lineage.diff("rebuilt", "g002s0") == ""
    assert "PARENT_MARKER.md" in store.lineage.files("g002s0")
    assert store.lineage.repo.commit(child.commit_sha).parents[0].hexsha == store.lineage.sha("g001s0")


# -- admission -------------------------------------------------------------------------------------
def _evaluation(work: Path, resolved: int, total: int) -> Evaluation:
    tasks = [f"t{i}" for i in range(total)]
    for t in tasks:  # every task produced a non-empty patch: the child compiles
        (work / "tasks" / t).mkdir(parents=True)
        (work / "tasks" / t / "model_patch.diff").write_text("diff --git a/x b/x\n")
    results = [TaskResult(t, 1, "resolved" if i < resolved else "unresolved", 1.0) for i, t in enumerate(tasks)]
    return Evaluation([StageScore(1, resolved, total)], results)


@pytest.mark.parametrize(("initial", "child", "admitted"), [
    ((5, 10), (4, 10), True),     # exactly initial - leeway
    ((4, 10), (3, 10), True),     # exactly initial - leeway (0.4 - 0.1 is 0.30000000000000004 in floats)
    ((7, 10), (6, 10), True),
    ((9, 10), (8, 10), True),
    ((40, 100), (29, 100), False),  # just below
    ((4, 10), (4, 10), True),
    ((4, 10), (2, 10), False),
])
def test_keep_better_admits_down_to_initial_minus_leeway(tmp_path, initial, child, admitted):
    dgm_ = machine(tmp_path, admission={"method": "keep_better", "leeway": 0.1})
    add_node(dgm_.store, "initial", None, 0.0)
    with dgm_.store.db:  # the initial node's exact score
        dgm_.store.db.execute("UPDATE nodes SET score=? WHERE node_id='initial'", (initial[0] / initial[1],))
    node = Node("g001s0", "initial", 1, "1:0", "failed", False, False)
    work = tmp_path / "work"
    dgm_._admit(node, _evaluation(work, *child), work)
    assert (node.compiled, node.admitted) == (True, admitted)


def test_keep_all_admits_every_compiling_child_and_no_other(tmp_path):
    dgm_ = machine(tmp_path, [("initial", None, 1.0)])
    compiles, silent = Node("g001s0", "initial", 1, "1:0", "failed", False, False), Node("g001s1", "initial", 1, "1:1", "failed", False, False)
    dgm_._admit(compiles, _evaluation(tmp_path / "a", 0, 4), tmp_path / "a")
    evaluation = _evaluation(tmp_path / "b", 0, 4)
    for patch in (tmp_path / "b" / "tasks").glob("*/model_patch.diff"):
        patch.write_text("")  # no task produced a patch: does not compile
    dgm_._admit(silent, evaluation, tmp_path / "b")
    assert (compiles.status, compiles.admitted) == ("evaluated", True)
    assert (silent.status, silent.admitted) == ("not_compiled", False)


@pytest.mark.parametrize(("alpha", "admitted"), [(0.05, True), (0.1, False)])
def test_paired_test_refuses_a_child_significantly_worse_than_its_parent(tmp_path, alpha, admitted):
    # The parent solved all 4 shared tasks, the child none: one-sided McNemar p = 1/16.
    dgm_ = machine(tmp_path, [("initial", None, 1.0)], admission={"method": "paired_test", "alpha": alpha})
    work = tmp_path / "work"
    for t in TASKS:
        (work / "tasks" / t).mkdir(parents=True)
        (work / "tasks" / t / "model_patch.diff").write_text("diff --git a/x b/x\n")
    evaluation = Evaluation([StageScore(1, 0, len(TASKS))], [TaskResult(t, 1, "unresolved", 1.0) for t in TASKS])
    node = Node("g001s0", "initial", 1, "1:0", "failed", False, False)
    dgm_._admit(node, evaluation, work)
    assert (node.compiled, node.admitted) == (True, admitted)
    event = [json.loads(line) for line in (dgm_.store.run_dir / "events.jsonl").read_text().splitlines()][-1]
    assert event["event"] == "admission" and event["p_value"] == pytest.approx(1 / 16)


def test_hgm_reads_its_tree_from_the_store_and_decides_under_the_step_seed(tmp_path):
    dgm_ = machine(tmp_path, ARCHIVE, selection={"method": "hgm"})
    dgm_.ctx.evaluator = SimpleNamespace(stage_tasks=[TASKS])  # HGMSearch reads only the task pool from it
    search = HGMSearch(dgm_)
    tree = {t.node_id: t for t in search.tree()}
    assert set(tree) == {"initial", "g001s0", "g001s1", "g002s0"}  # g002s1 did not compile: not in the tree
    assert (tree["g001s0"].successes, tree["g001s0"].failures, tree["g001s0"].untried_tasks) == (3, 1, 0)
    assert search.evaluations() == 12  # the children's results; the initial agent's own evaluation not counted
    decide = lambda step: next_action(search.tree(), search.evaluations(), dgm_._rng("hgm", step), search.params)
    first = decide(1)
    assert first == decide(1) and first.kind == "expand"  # 12^0.6 = 4.4 >= 3 children
    assert first.counts["initial"] == (1 + 3 + 2 + 1, 3 + 1 + 2 + 3)  # the root's clade: the whole tree
    assert first.counts["g001s1"] == (2 + 1, 2 + 3)


# -- stopping rules --------------------------------------------------------------------------------
def test_max_children_caps_the_last_generation_and_stops(tmp_path):
    dgm_ = machine(tmp_path, ARCHIVE[:4], loop={"max_children": 4})  # 3 children so far
    assert dgm_.stop_reason() is None
    assert len(dgm_.select_parents(3)) == 1  # k=2, but only one child may still be made
    add_node(dgm_.store, "g003s0", "g002s0", 0.0, False)  # a child counts even when not admitted
    assert dgm_.stop_reason() == "max_children (4) reached"


def test_target_score_counts_only_archived_agents(tmp_path):
    assert machine(tmp_path / "a", ARCHIVE, loop={"target_score": 0.75}).stop_reason() == "target score 0.75 reached"
    assert machine(tmp_path / "b", ARCHIVE, loop={"target_score": 0.9}).stop_reason() is None  # 1.0 not admitted


def test_exhausted_run_budget_stops_the_loop_before_the_next_generation(tmp_path):
    store_box = []
    spent_after_first_generation = lambda: any(g["finished_at"] for g in store_box[0].generations())
    dgm_ = machine(tmp_path, ARCHIVE[:1], budget_exhausted=spent_after_first_generation, loop={"generations": 5})
    store_box.append(dgm_.store)
    reason = dgm_.run()  # (generation 1's attempts fail: this machine has no model)
    assert reason.startswith("budget_exhausted: the run budget is spent; continue with: python -m dgm.run --resume")
    assert [g["generation"] for g in dgm_.store.generations()] == [1]
    assert [e["reason"] for e in dgm_.store.events.read() if e["event"] == "stop"] == [reason]


def test_run_with_a_spent_budget_stops_cleanly(tmp_path):
    """A real run whose gateway budget is already spent ($0 of $0) stops before any child, exit 0.
    (The scripted model costs $0 by design, so an offline run cannot spend a budget mid-way.)"""
    initial = tmp_path / "initial.json"
    initial.write_text(json.dumps({"outcomes": {t: "unresolved" for t in TASKS[:2]}}))
    proc = subprocess.run(
        [sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml", "--set", f"run.archive_dir={tmp_path}",
         "--set", f"evaluation.stages=[{{tasks: {json.dumps(TASKS[:2])}}}]",
         "--set", f"evaluation.initial_results={initial}", "--set", "llm.budgets.run_usd=0"],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "stopped: budget_exhausted: the run budget is spent" in " ".join(proc.stdout.split())
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "run.db").exists()]
    store = RunStore.open(run_dir, read_only=True)
    # Stopped (resumable with --set llm.budgets.run_usd=...), not finished.
    assert store.run_info()["status"] == "stopped"
    assert store.run_info()["stop_reason"].startswith("budget_exhausted: the run budget is spent")
    assert store.generations() == [] and [n.node_id for n in store.nodes()] == ["initial"]


# -- the initial agent's cached evaluation ---------------------------------------------------------
def test_initial_node_from_a_cached_evaluation(tmp_path):
    cache = tmp_path / "initial.json"
    cache.write_text(json.dumps({TASKS[0]: "resolved", TASKS[1]: "empty_patch", TASKS[2]: "unresolved",
                                 TASKS[3]: "resolved", "not-in-the-stages": "resolved"}))
    dgm_ = machine(tmp_path, evaluation={"initial_results": str(cache)})
    dgm_.ctx.evaluator = Evaluator(benchmark=BENCH, policy=dgm_.ctx.policy, llm=None, cfg=dgm_.cfg.evaluation,
                                   limits=dgm_.cfg.agent.task_limits)
    dgm_.initialize_archive()  # runs the initial agent's own tests in bwrap, takes the scores from the file
    node = dgm_.store.node("initial")
    assert (node.score, node.tasks_evaluated, node.admitted) == (0.5, 4, True)
    results = {r.task_id: (r.outcome, r.agent_exit) for r in dgm_.store.task_results("initial")}
    assert results == {TASKS[0]: ("resolved", "cached"), TASKS[1]: ("empty_patch", "cached"),
                       TASKS[2]: ("unresolved", "cached"), TASKS[3]: ("resolved", "cached")}
    dgm_.initialize_archive()  # once per run
    assert len(dgm_.store.nodes()) == 1


def test_cached_evaluation_errors_name_the_file_and_the_culprit(tmp_path):
    path = tmp_path / "initial.json"
    path.write_text(json.dumps({"t1": "resolved"}))
    with pytest.raises(ValueError, match=r"initial\.json.*\['t2'\].*stage 1"):
        load_cached_evaluation(path, [["t1", "t2"]])
    path.write_text(json.dumps(["t1"]))
    with pytest.raises(ValueError, match=r"initial\.json.*JSON object"):
        load_cached_evaluation(path, [["t1"]])
    path.write_text(json.dumps({"t1": "resolve"}))
    with pytest.raises(ValueError, match=r"initial\.json.*'t1'.*'resolve'"):
        load_cached_evaluation(path, [["t1"]])


def test_cached_evaluation_scores_stages_cumulatively(tmp_path):
    path = tmp_path / "initial.json"
    path.write_text(json.dumps({"outcomes": {"a": "resolved", "b": "timeout", "c": "resolved", "d": "error"}}))
    evaluation = load_cached_evaluation(path, [["a", "b"], ["c", "d"]])
    assert [(s.stage, s.resolved, s.total) for s in evaluation.stages] == [(1, 1, 2), (2, 2, 4)]
    assert evaluation.score == 0.5
