"""A seeded run's decisions — which parents each generation selects, and what each attempt works on (its
entry) — are a function of the seed and the archive alone: not of thread order, not of a restart.

Tested at the level of `DarwinGodelMachine.select_parents` / `create_child` on real run stores (SQLite,
agents.git) built through the RunStore API. The diagnosis model is a stub that refuses to answer: these
tests are about the decisions taken *before* any model is asked, and an attempt whose diagnosis fails is
recorded (with its entry) as a failed node. Whole-run reproducibility (same seed -> same select/entry
events and same node records, commit SHAs included) is checked by tests/test_resume.py, whose crashed and
resumed run is compared with an uninterrupted run of the same seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from dgm.agent_run import SandboxPolicy
from dgm.bench import load_benchmark
from dgm.config import Config
from dgm.loop import DarwinGodelMachine, RunContext
from dgm.store import Node, RunStore, StageScore, TaskResult

REPO = Path(__file__).resolve().parents[1]
INITIAL_AGENT = REPO / "agents" / "initial"
BENCH = load_benchmark("local")
TASKS = BENCH.subsets()["small"][:6]


class NoModel:
    """Stands in for the LLM gateway: diagnosis calls fail, so an attempt stops right after its entry."""

    def context(self, *args):
        return args

    def prompt_chars(self, alias, answers=1):
        return None  # no known context window: prompts are not trimmed

    def chat(self, context):
        def refuse(messages):
            raise RuntimeError("no model in this test")

        return refuse


def make_config(seed: int, **sections) -> Config:
    tree = {"run": {"seed": seed, "workers": 1}, "loop": {"children_per_generation": 3, "generations": 5},
            "evaluation": {"stages": [{"tasks": TASKS}]}, **sections}
    return Config.model_validate(tree)


def node(node_id, parent, generation, score, admitted=True, **kw) -> Node:
    attempt = "0:initial" if parent is None else f"{generation}:{node_id[-1]}"
    return Node(node_id=node_id, parent_id=parent, generation=generation, attempt_id=attempt, status="evaluated",
                compiled=admitted, admitted=admitted, score=score, tasks_evaluated=len(TASKS),
                stages=[StageScore(1, round(score * len(TASKS)), len(TASKS))], **kw)


def results(outcomes: str) -> list[TaskResult]:
    """One letter per task: r resolved, u unresolved, e empty patch."""
    names = {"r": "resolved", "u": "unresolved", "e": "empty_patch"}
    return [TaskResult(t, 1, names[o], 1.0, "submitted") for t, o in zip(TASKS, outcomes)]


def build_machine(run_dir: Path, seed: int, **sections) -> DarwinGodelMachine:
    """An archive of four agents with different scores and failures, through the RunStore API."""
    config = make_config(seed, **sections)
    store = RunStore.create(run_dir, run_dir.name, config.to_yaml(), scripted=True)
    archive = [(node("initial", None, 0, 2 / 6), "rruuee"), (node("g001s0", "initial", 1, 4 / 6), "rrrrue"),
               (node("g001s1", "initial", 1, 3 / 6), "rrreeu"), (node("g001s2", "initial", 1, 0.0, False), "eeeeee"),
               (node("g002s0", "g001s0", 2, 5 / 6), "rrrrru")]
    for n, outcomes in archive:
        store.begin_attempt(n.attempt_id, n.generation, 0, n.parent_id)
        store.finish_attempt(n, results(outcomes), agent_dir=INITIAL_AGENT)
    store.start_generation(1, ["initial"] * 3)
    store.finish_generation(1)
    store.start_generation(2, ["g001s0"])
    store.finish_generation(2)
    ctx = RunContext(config=config, store=store, benchmark=BENCH, evaluator=None, policy=SandboxPolicy("bwrap"),
                     llm=NoModel(), initial_agent=INITIAL_AGENT, report=lambda line: None)
    return DarwinGodelMachine(ctx)


def decide(machine: DarwinGodelMachine, generations=range(3, 7), reverse_slots=False) -> list[dict]:
    """Select parents and start every attempt of a few generations; returns the decision events."""
    for generation in generations:
        slots = list(enumerate(machine.select_parents(generation)))
        for slot, parent in reversed(slots) if reverse_slots else slots:
            machine.create_child(generation, slot, parent)
        machine.store.finish_generation(generation)
    return decision_events(machine.store)


def decision_events(store: RunStore) -> list[dict]:
    kept = [{k: v for k, v in e.items() if k != "ts"} for e in store.events.read() if e["event"] in ("select", "entry")]
    return sorted(kept, key=lambda e: json.dumps(e, sort_keys=True))


def test_same_seed_same_parents_and_entries(tmp_path):
    first = decide(build_machine(tmp_path / "a", seed=11))
    second = decide(build_machine(tmp_path / "b", seed=11), reverse_slots=True)  # thread order must not matter
    assert first == second
    assert sum(e["event"] == "select" for e in first) == 4 and sum(e["event"] == "entry" for e in first) == 12
    # The decisions are real choices: several parents, and entries of more than one kind.
    parents = {p for e in first if e["event"] == "select" for p in e["parents"]}
    entries = {e["entry"] for e in first if e["event"] == "entry"}
    assert len(parents) >= 2 and len(entries) >= 2, (parents, entries)
    assert "g001s2" not in parents  # not admitted: never a parent


def test_same_seed_same_node_records(tmp_path):
    a, b = build_machine(tmp_path / "a", seed=5), build_machine(tmp_path / "b", seed=5)
    decide(a)
    decide(b)
    fields = lambda m: [(n.node_id, n.parent_id, n.entry, n.status, n.score, n.modifier_id, n.commit_sha)
                        for n in m.store.nodes()]
    assert fields(a) == fields(b)
    assert all(n.error == "RuntimeError: no model in this test" for n in a.store.nodes() if n.generation >= 3)


def test_a_different_seed_may_decide_differently(tmp_path):
    runs = {seed: decide(build_machine(tmp_path / f"s{seed}", seed=seed)) for seed in (1, 2, 3)}
    assert len({json.dumps(r) for r in runs.values()}) > 1, "the seed has no influence on the decisions"


def test_resumed_generation_keeps_its_recorded_parents(tmp_path):
    """A restart mid-generation must not re-draw parents, even though the archive has changed since."""
    machine = build_machine(tmp_path / "run", seed=7)
    parents = machine.select_parents(3)
    machine.store.finish_attempt(node("g003s9", "initial", 3, 1.0), results("rrrrrr"), agent_dir=INITIAL_AGENT)
    restarted = DarwinGodelMachine(machine.ctx)  # what `--resume` builds
    assert restarted.select_parents(3) == parents
    assert sum(e["event"] == "select" for e in machine.store.events.read()) == 1


def test_entry_depends_on_the_attempt_key_not_on_retries(tmp_path):
    """Re-running an unfinished attempt (same key "generation:slot") repeats its entry."""
    machine = build_machine(tmp_path / "run", seed=9)
    parents = machine.select_parents(3)
    machine.create_child(3, 1, parents[1])
    first = machine.store.node("g003s1").entry
    # Pretend the attempt never finished (a crash after the node was written is impossible; this is the
    # state `begin_attempt` re-registers): delete its row and run it again.
    with machine.store.db:
        machine.store.db.execute("DELETE FROM nodes WHERE node_id='g003s1'")
        machine.store.db.execute("UPDATE attempts SET status='started' WHERE attempt_id='3:1'")
    machine.create_child(3, 1, parents[1])
    assert machine.store.node("g003s1").entry == first
    tries = machine.store.db.execute("SELECT tries FROM attempts WHERE attempt_id='3:1'").fetchone()[0]
    assert tries == 2


@pytest.mark.parametrize("method", ["score_child_prop", "score_prop", "random"])
def test_every_stochastic_selection_method_is_seeded(tmp_path, method):
    a = build_machine(tmp_path / "a", seed=4, selection={"method": method})
    b = build_machine(tmp_path / "b", seed=4, selection={"method": method})
    assert [a.select_parents(g) for g in range(3, 9)] == [b.select_parents(g) for g in range(3, 9)]
