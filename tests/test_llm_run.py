"""The LLM layer as a run wires it (`dgm.run.runtime`): one model per role, a cache scoped by run, and
budgets that stop work instead of scoring it.

Real parts: the gateway over its Unix socket, the `openai` client, SQLite stores, `python -m dgm.run` with
bwrap sandboxes and the seed agent for the budget run. The paid API is a fake OpenAI-compatible server on
loopback (tests/fake_upstream.py); the self-modification and diagnosis of the budget run use the scripted
test double.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import fake_upstream as fu
from dgm.bench import load_benchmark
from dgm.cli.run import status_data
from dgm.config import Config
from dgm.replay import replay_config
from dgm.run import new_run, runtime
from dgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "DGM_TEST_UPSTREAM_KEY"
KEY = "sk-fake-roles-0123"
MSG = [{"role": "user", "content": "diagnose this"}]


def route(upstream: fu.FakeUpstream) -> dict:
    return {"provider": "openai", "base_url": upstream.base_url, "api_key_env": KEY_ENV, "model": upstream.model}


@pytest.fixture
def upstreams(monkeypatch):
    """Three fake paid models, one per role, each at its shipped list price."""
    monkeypatch.setenv(KEY_ENV, KEY)
    ups = {"task": fu.FakeUpstream("o3-mini", api_key=KEY), "self_modify": fu.FakeUpstream("gpt-4.1", api_key=KEY),
           "diagnosis": fu.FakeUpstream("o1-2024-12-17", api_key=KEY)}
    for up in ups.values():
        up.start()
    yield ups
    for up in ups.values():
        up.stop()


def make_config(tmp_path: Path, seed: int, llm: dict) -> Config:
    return Config.model_validate({"run": {"seed": seed, "archive_dir": str(tmp_path / "archive"), "name": f"s{seed}"},
                                  "evaluation": {"stages": [{"tasks": "small"}]}, "llm": llm})


# -- 3. model roles ------------------------------------------------------------------------------
def test_each_role_is_served_and_metered_by_its_own_model(tmp_path, upstreams):
    config = make_config(tmp_path, 0, {role: route(up) for role, up in upstreams.items()})
    store, run_id = new_run(config)
    with runtime(config, store, run_id) as ctx:
        for role in ("task", "self_modify", "diagnosis"):
            context = ctx.llm.context("g001s0", "1:0", role)
            assert ctx.llm.chat(context)(MSG) == "hello"
            with ctx.llm.agent_env(context) as env:
                assert env["DGM_MODEL"] == role  # what an agent of this role asks for
    for role, up in upstreams.items():  # every role reached its own model, and only it
        assert [r.body["model"] for r in up.chat_requests] == [up.model], role

    by_role = {row["role"]: row for row in status_data(store)["llm"]["by_role"]}
    assert list(by_role) == ["task", "self_modify", "diagnosis"]
    # 10 prompt + 5 completion tokens at each model's list price (USD per 1M tokens).
    expected = {"task": 10 * 1.10 + 5 * 4.40, "self_modify": 10 * 2.00 + 5 * 8.00, "diagnosis": 10 * 15.0 + 5 * 60.0}
    for role, up in upstreams.items():
        row = by_role[role]
        assert (row["configured_model"], row["models"], row["calls"]) == (up.model, [up.model], 1), row
        assert row["cost_usd"] == pytest.approx(expected[role] / 1e6)
    proc = subprocess.run([sys.executable, "-m", "dgm", "status", str(store.run_dir)], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "LLM spend by model role" in proc.stdout
    assert all(f"{role}" in proc.stdout and up.model in proc.stdout for role, up in upstreams.items())


def test_the_old_coding_role_is_a_clear_config_error(tmp_path):
    from dgm.config import ConfigError, load_config

    path = tmp_path / "old.yaml"
    path.write_text("llm:\n  coding: {provider: scripted}\n")
    with pytest.raises(ConfigError, match=r"llm.coding is gone.*llm.task.*llm.self_modify"):
        load_config(path)


# -- 9. independent seeds ------------------------------------------------------------------------
def ask_once(config: Config, store: RunStore, run_id: str) -> tuple[str, int, int]:
    """One diagnosis call of attempt 1:0 through the run's gateway: (answer, upstream calls, cache hits)."""
    with runtime(config, store, run_id) as ctx:
        answer = ctx.llm.chat(ctx.llm.context("g001s0", "1:0", "diagnosis"))(MSG)
        stats = ctx.llm.gateway.stats
    return answer, stats.upstream_calls, stats.cache_hits


def test_seeds_sharing_a_cache_dir_do_not_replay_each_other(tmp_path, upstreams):
    diagnosis = upstreams["diagnosis"]
    diagnosis.script(fu.ok("answer for seed 1"), fu.ok("answer for seed 2"))
    llm = {role: route(up) for role, up in upstreams.items()} | {"cache_dir": str(tmp_path / "shared_cache")}
    runs = {}
    for seed in (1, 2):
        config = make_config(tmp_path, seed, llm)
        store, run_id = new_run(config)
        runs[seed] = (config, store, run_id)
        # Same attempt, same purpose, same request: only the run differs.
        assert ask_once(config, store, run_id) == (f"answer for seed {seed}", 1, 0)
    assert len(diagnosis.chat_requests) == 2

    # A resumed run keeps its run id and finds the answer it paid for ...
    assert ask_once(*runs[1]) == ("answer for seed 1", 0, 1)
    # ... and `dgm replay` reads the replayed run's answers, at $0.
    first_dir = runs[1][1].run_dir
    config = replay_config(first_dir)
    store, run_id = new_run(config, tmp_path / "replay")
    assert ask_once(config, store, run_id) == ("answer for seed 1", 0, 1)
    assert store.spent_usd() == 0 and len(diagnosis.chat_requests) == 2


# -- 2. budgets stop work, they never become scores ----------------------------------------------
TASKS = load_benchmark("local").subsets()["small"][:3]
# Each answer of the fake task model (gpt-4o) costs 10 x $2.50 + 5 x $10 per 1M tokens = $0.000075, so a
# budget of $0.0001 pays for two answers: the third call is refused. One call per task (the model answers
# plain text, the seed agent ends its run).
TWO_ANSWERS = 0.0001


@pytest.fixture
def task_model():
    with fu.FakeUpstream("gpt-4o", api_key=KEY) as up:
        yield up


class BudgetRun:
    """`python -m dgm.run` on quickstart: the task model is the fake paid one, the rest the scripted double."""

    def __init__(self, tmp_path: Path, task_model: fu.FakeUpstream):
        self.tmp_path = tmp_path
        self.env = {**os.environ, KEY_ENV: KEY, "DGM_SANDBOX_TMP": str(tmp_path / "sbx")}
        (tmp_path / "sbx").mkdir()
        self.args = ["experiments/quickstart.yaml", "--set", f"run.archive_dir={tmp_path / 'archive'}",
                     # one task at a time, so the refusal is always the third task's first call
                     "--set", "run.seed=3", "--set", "run.workers=1", "--set", "evaluation.workers=1",
                     "--set", "loop.generations=1", "--set", "loop.children_per_generation=1",
                     "--set", f"evaluation.stages=[{{tasks: {json.dumps(TASKS)}}}]",
                     "--set", f"llm.task={json.dumps(route(task_model))}"]

    def cached_initial_evaluation(self) -> list[str]:
        initial = self.tmp_path / "initial_results.json"
        initial.write_text(json.dumps(dict(zip(TASKS, ["resolved", "unresolved", "empty_patch"]))))
        return ["--set", f"evaluation.initial_results={initial}"]

    def run(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run([sys.executable, "-m", "dgm.run", *args], cwd=REPO, env=self.env, capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode in (0, 2), proc.stdout + proc.stderr
        return proc

    @property
    def run_dir(self) -> Path:
        (run_dir,) = [p for p in (self.tmp_path / "archive").iterdir() if (p / "run.db").exists()]
        return run_dir

    def store(self) -> RunStore:
        return RunStore.open(self.run_dir, read_only=True)


def refused_calls(store: RunStore) -> list[tuple]:
    rows = store.db.execute("SELECT node_id, purpose, task_id FROM llm_calls WHERE error LIKE 'budget_exceeded%'")
    return [tuple(r) for r in rows]


def assert_paused(store: RunStore, attempt: str, run_dir: Path) -> None:
    info = store.run_info()
    assert info["status"] == "stopped", info
    assert info["stop_reason"].startswith(f"budget_exhausted: run budget of ${TWO_ANSWERS:.4f} exhausted")
    assert f"--resume {run_dir} --set llm.budgets.run_usd=" in info["stop_reason"]
    assert [(a["attempt_id"], a["status"]) for a in store.paused_attempts()] == [(attempt, "budget_exhausted")]
    events = [(e["attempt"], e["scope"]) for e in store.events.read() if e["event"] == "budget_exhausted"]
    assert events == [(attempt, "run")]


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_budget_hit_in_a_childs_evaluation_pauses_it_and_resume_finishes_it(tmp_path, task_model):
    """No task of the child gets an outcome from the refusal; `--resume --set llm.budgets.run_usd=...` re-runs
    the paused attempt, its paid answers replayed from the cache (nothing is paid twice)."""
    run = BudgetRun(tmp_path, task_model)
    first = run.run(*run.args, *run.cached_initial_evaluation(), "--set", f"llm.budgets.run_usd={TWO_ANSWERS}")
    assert first.returncode == 0
    store = run.store()
    assert store.task_results("g001s0") == [] and [n.node_id for n in store.nodes()] == ["initial"]
    assert refused_calls(store) == [("g001s0", "task", TASKS[2])]
    assert_paused(store, "1:0", run.run_dir)
    assert len(task_model.chat_requests) == 2
    status = json.loads(subprocess.run([sys.executable, "-m", "dgm", "status", str(run.run_dir), "--json"], cwd=REPO,
                                       capture_output=True, text=True, timeout=120).stdout)
    assert status["status"] == "stopped" and status["paused_attempts"][0]["attempt_id"] == "1:0"
    assert {r["role"]: r["budget_refusals"] for r in status["llm"]["by_role"]}["task"] == 1
    store.close()

    # Only stopping rules and budgets may change on resume.
    refused = run.run("--resume", str(run.run_dir), "--set", "llm.task.model=gpt-4.1")
    assert refused.returncode == 2 and "llm.budgets." in refused.stdout

    assert run.run("--resume", str(run.run_dir), "--set", "llm.budgets.run_usd=1").returncode == 0
    store = run.store()
    assert (store.run_info()["status"], store.run_info()["stop_reason"]) == ("finished", "generations done")
    child = store.node("g001s0")
    assert child.tasks_evaluated == 3 and child.status != "budget_exhausted"
    assert sorted(r.task_id for r in store.task_results("g001s0")) == sorted(TASKS)
    assert store.paused_attempts() == []
    # The two answers paid before the pause came from the cache; only the third task was asked upstream.
    assert len(task_model.chat_requests) == 3
    after_pause = store.db.execute(
        "SELECT SUM(cache_hit), SUM(error IS NULL AND cache_hit = 0) FROM llm_calls WHERE purpose = 'task'"
        " AND id > (SELECT MAX(id) FROM llm_calls WHERE error LIKE 'budget_exceeded%')").fetchone()
    assert tuple(after_pause) == (2, 1)
    # The raised budget is kept for later resumes.
    assert yaml.safe_load((run.run_dir / "config.yaml").read_text())["llm"]["budgets"]["run_usd"] == 1


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_run_budget_hit_in_the_initial_evaluation_pauses_the_run(tmp_path, task_model):
    """On the old code the refused task became `empty_patch` in the initial agent's score, and the run went on."""
    run = BudgetRun(tmp_path, task_model)
    assert run.run(*run.args, "--set", f"llm.budgets.run_usd={TWO_ANSWERS}").returncode == 0
    store = run.store()
    assert store.task_results("initial") == [] and store.nodes() == []
    assert refused_calls(store) == [("initial", "task", TASKS[2])]
    assert_paused(store, "0:initial", run.run_dir)
    store.close()
    assert run.run("--resume", str(run.run_dir), "--set", "llm.budgets.run_usd=1").returncode == 0
    store = run.store()
    assert store.run_info()["status"] == "finished" and store.node("initial").tasks_evaluated == 3
    # The initial agent's two paid answers came from the cache on resume; its third task was asked upstream.
    initial_calls = store.db.execute(
        "SELECT task_id, cache_hit FROM llm_calls WHERE node_id = 'initial' AND error IS NULL ORDER BY id").fetchall()
    assert sorted(t for t, hit in initial_calls if hit) == sorted(TASKS[:2])
    assert sorted(t for t, hit in initial_calls if not hit) == sorted(TASKS)  # each task paid once


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_node_budget_hit_ends_that_child_without_a_score_and_the_run_goes_on(tmp_path, task_model):
    run = BudgetRun(tmp_path, task_model)
    proc = run.run(*run.args, *run.cached_initial_evaluation(), "--set", "loop.children_per_generation=2",
                   "--set", f"llm.budgets.node_usd={TWO_ANSWERS}")
    assert proc.returncode == 0
    store = run.store()
    assert (store.run_info()["status"], store.run_info()["stop_reason"]) == ("finished", "generations done")
    children = [n for n in store.nodes() if n.parent_id]
    assert len(children) == 2
    for child in children:  # each child's third task was refused: no score, no outcomes, not a parent
        assert (child.status, child.admitted, child.score, child.stages) == ("budget_exhausted", False, None, [])
        assert child.error.startswith("node budget exhausted: node " + child.node_id)
        assert store.task_results(child.node_id) == []
    assert sorted(refused_calls(store)) == sorted((c.node_id, "task", TASKS[2]) for c in children)
    store.close()
    paid = len(task_model.chat_requests)

    # A replay pays $0 but counts what the recorded run paid per answer: it meets the same refusals.
    replay = subprocess.run([sys.executable, "-m", "dgm", "replay", str(run.run_dir), "--out", str(tmp_path / "replay")],
                            cwd=REPO, env=run.env, capture_output=True, text=True, timeout=600)
    assert replay.returncode == 0 and "identical: every node" in replay.stdout, replay.stdout + replay.stderr
    assert len(task_model.chat_requests) == paid  # the replay asked the paid model nothing
