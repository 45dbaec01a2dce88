"""Crash-proof resume: a real run is killed with SIGKILL at four different points and resumed each time
with `python -m dgm.run --resume RUN_DIR`; it must end exactly like an uninterrupted run with the same seed.

Everything is real: `python -m dgm.run` subprocesses, bwrap sandboxes, the gateway over a Unix socket,
git and SQLite. The model is the scripted test double (no LLM is reachable here).

How the kills land where they should:
  * during diagnosis and between generations: the run kills itself at a named point
    (env DGM_TEST_KILL_AT, see `dgm.store.runstore.crash_point`), because those moments last milliseconds;
  * during self-modification and during evaluation: the test watches events.jsonl / the run directory
    and sends SIGKILL while the sandboxed agent is running (those phases last seconds).
Each kill is then checked to have landed where it claims (from what the store and the events show).

A crash in the worst moment of publishing a node (files and git tag written, no DB row yet) is tested
separately and cheaply, in a small subprocess that uses the RunStore API.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.sandbox import cleanup_leftovers
from dgm.sandbox.hostdir import PREFIX as SANDBOX_PREFIX
from dgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]
SEED = 3
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


# -- running dgm ------------------------------------------------------------------------------------
@dataclass
class Setup:
    """Where one run lives: its archive root, its sandbox temp root and its settings."""

    root: Path
    tasks: list[str]

    @property
    def archive(self) -> Path:
        return self.root / "archive"

    @property
    def sandbox_tmp(self) -> Path:
        return self.root / "sbx"

    def args(self) -> list[str]:
        initial = self.root / "initial_results.json"
        # Cached initial evaluation (like the paper's precomputed root): saves a full evaluation per run,
        # and its failures give the entry choice something to choose from.
        initial.write_text(json.dumps(dict(zip(self.tasks, ["resolved", "unresolved", "empty_patch"]))))
        return ["experiments/quickstart.yaml", "--set", f"run.archive_dir={self.archive}",
                "--set", f"run.seed={SEED}", "--set", "run.workers=2",
                "--set", "loop.generations=2", "--set", "loop.children_per_generation=2",
                "--set", f"evaluation.stages=[{{tasks: {json.dumps(self.tasks)}}}]",
                "--set", f"evaluation.initial_results={initial}"]

    def env(self, kill_at: str | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if k != "DGM_TEST_KILL_AT"}
        env["DGM_SANDBOX_TMP"] = str(self.sandbox_tmp)
        if kill_at:
            env["DGM_TEST_KILL_AT"] = kill_at
        return env

    def start(self, args: list[str], kill_at: str | None = None) -> subprocess.Popen:
        self.sandbox_tmp.mkdir(parents=True, exist_ok=True)
        log = open(self.root / "runs.log", "a")
        log.write(f"\n=== {' '.join(args[:2])} kill_at={kill_at}\n")
        log.flush()
        return subprocess.Popen([sys.executable, "-m", "dgm.run", *args], cwd=REPO, env=self.env(kill_at),
                                stdout=log, stderr=subprocess.STDOUT)

    def log_tail(self) -> str:
        return (self.root / "runs.log").read_text()[-3000:]

    def run_dir(self) -> Path | None:
        found = [p for p in self.archive.glob("*") if (p / "run.db").exists()] if self.archive.exists() else []
        return found[0] if found else None


# Read once: both runs must work on the same tasks even if the suite's subsets change meanwhile.
TASKS = load_benchmark("local").subsets()["small"][:3]


# -- watching a run -----------------------------------------------------------------------------
def events(run_dir: Path) -> list[dict]:
    return list(RunStore(run_dir, read_only=True).events.read()) if (run_dir / "events.jsonl").exists() else []


def since_last_resume(evs: list[dict]) -> list[dict]:
    starts = [i for i, e in enumerate(evs) if e["event"] == "resume"]
    return evs[starts[-1] + 1:] if starts else evs


def has(evs: list[dict], event: str, node: str) -> bool:
    return any(e["event"] == event and e.get("node") == node for e in evs)


def wait_for(condition, proc: subprocess.Popen, setup: Setup, what: str, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"the run ended (exit {proc.returncode}) before {what}:\n{setup.log_tail()}")
        time.sleep(0.05)
    proc.kill()
    raise AssertionError(f"timed out waiting for {what}:\n{setup.log_tail()}")


def processes_mentioning(*needles: str) -> list[str]:
    """Live processes (bwrap and anything else) whose command line names one of the run's directories."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(f"{entry.name}: {cmdline[:300]}")
    return found


def survivors_after_kill(setup: Setup, run_dir: Path) -> list[str]:
    """Sandboxes die with the killed run (bwrap --die-with-parent); allow the kernel a moment to reap."""
    deadline = time.monotonic() + 10
    while (alive := processes_mentioning(str(run_dir), str(setup.sandbox_tmp))) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def sandbox_running(setup: Setup, run_dir: Path) -> bool:
    return any("bwrap" in p for p in processes_mentioning(str(run_dir), str(setup.sandbox_tmp)))


def leftover_sandbox_dirs(setup: Setup) -> list[Path]:
    return sorted(setup.sandbox_tmp.glob(SANDBOX_PREFIX + "*"))


def db_rows(run_dir: Path, sql: str) -> list[tuple]:
    db = sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True)
    try:
        return [tuple(r) for r in db.execute(sql)]
    finally:
        db.close()


def node_ids(run_dir: Path) -> set[str]:
    return {r[0] for r in db_rows(run_dir, "SELECT node_id FROM nodes")}


# -- the runs ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    """The uninterrupted run with the same seed and settings."""
    setup = Setup(tmp_path_factory.mktemp("reference"), TASKS)
    proc = setup.start(setup.args())
    assert proc.wait(timeout=600) == 0, setup.log_tail()
    return setup.run_dir()


@dataclass
class Kill:
    point: str
    returncode: int
    survivors: list[str]
    nodes: set[str]
    evs: list[dict]  # events of the killed process (since its resume)
    sandbox_dirs_left: int
    detail: dict = field(default_factory=dict)


@dataclass
class CrashedRun:
    setup: Setup
    run_dir: Path
    kills: list[Kill]
    final_returncode: int
    cleanup_counts: dict


@pytest.fixture(scope="module")
def crashed(tmp_path_factory) -> CrashedRun:
    """One run killed four times (diagnosis, self-modification, between generations, evaluation) and resumed."""
    setup = Setup(tmp_path_factory.mktemp("crashed"), TASKS)
    kills: list[Kill] = []

    def record(point: str, proc: subprocess.Popen, run_dir: Path, **detail) -> None:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)  # only the run itself: its sandboxes must die on their own
        proc.wait(timeout=60)
        generations = db_rows(run_dir, "SELECT generation, finished_at IS NOT NULL FROM generations")
        kills.append(Kill(point, proc.returncode, survivors_after_kill(setup, run_dir), node_ids(run_dir),
                          since_last_resume(events(run_dir)), len(leftover_sandbox_dirs(setup)),
                          {"generations": generations, **detail}))

    # 1. during diagnosis of attempt 1:0 (the model has answered; nothing is saved yet)
    proc = setup.start(setup.args(), kill_at="diagnosis:1:0")
    proc.wait(timeout=300)
    run_dir = setup.run_dir()
    assert run_dir is not None, setup.log_tail()
    record("diagnosis", proc, run_dir)

    # 2. during self-modification of g001s0: diagnosed, no self_modify event yet, its sandbox running
    resume = ["--resume", str(run_dir)]
    proc = setup.start(resume)
    wait_for(lambda: (has(evs := since_last_resume(events(run_dir)), "diagnosis", "g001s0")
                      and not has(evs, "self_modify", "g001s0") and sandbox_running(setup, run_dir)),
             proc, setup, "the self-modification of g001s0")
    record("self_modify", proc, run_dir)

    # 3. between generations: generation 1 finished, generation 2 not selected yet
    proc = setup.start(resume, kill_at="generation_done:1")
    proc.wait(timeout=300)
    record("between_generations", proc, run_dir)

    # 4. during evaluation in generation 2: a task of a gen-2 child is being worked on
    proc = setup.start(resume)
    task_dirs = lambda: [p for p in (run_dir / "work").glob("2_*/tasks/*") if p.is_dir()]
    started = wait_for(lambda: task_dirs() and sandbox_running(setup, run_dir) and task_dirs(), proc, setup,
                       "the evaluation of a generation-2 child")
    record("evaluation", proc, run_dir, task_dirs=[str(p.relative_to(run_dir)) for p in started])

    # Killed sandboxes leave their host dirs behind; cleanup_leftovers must remove exactly those.
    os.environ["DGM_SANDBOX_TMP"] = str(setup.sandbox_tmp)
    try:
        counts = cleanup_leftovers(RunStore(run_dir, read_only=True).run_info()["run_id"])
    finally:
        del os.environ["DGM_SANDBOX_TMP"]

    proc = setup.start(resume)
    final = proc.wait(timeout=600)
    return CrashedRun(setup, run_dir, kills, final, counts)


# -- the kills landed where they claim, and took their sandboxes with them ---------------------------
def test_each_kill_landed_at_its_point(crashed: CrashedRun):
    k = {kill.point: kill for kill in crashed.kills}
    assert list(k) == ["diagnosis", "self_modify", "between_generations", "evaluation"]
    assert all(kill.returncode == -signal.SIGKILL for kill in crashed.kills), [kill.returncode for kill in crashed.kills]

    d = k["diagnosis"]
    assert d.nodes == {"initial"}
    assert has(d.evs, "entry", "g001s0") and not has(d.evs, "diagnosis", "g001s0")

    s = k["self_modify"]
    assert s.nodes == {"initial"}
    assert has(s.evs, "diagnosis", "g001s0") and not has(s.evs, "self_modify", "g001s0")

    b = k["between_generations"]
    assert b.nodes == {"initial", "g001s0", "g001s1"}
    assert b.detail["generations"] == [(1, 1)]  # generation 1 finished, generation 2 not started
    assert not any(e["event"] == "select" and e["generation"] == 2 for e in b.evs)

    e = k["evaluation"]
    assert e.nodes == {"initial", "g001s0", "g001s1"} and e.detail["task_dirs"]
    assert has(e.evs, "self_modify", "g002s0") or has(e.evs, "self_modify", "g002s1")


def test_no_sandbox_process_survives_a_kill(crashed: CrashedRun):
    for kill in crashed.kills:
        assert kill.survivors == [], f"after the kill at {kill.point}: {kill.survivors}"


def test_leftover_sandbox_dirs_are_removed_on_resume_and_by_cleanup_leftovers(crashed: CrashedRun):
    k = {kill.point: kill for kill in crashed.kills}
    # The self-modification and evaluation kills hit running sandboxes, whose host dirs stayed behind ...
    assert k["self_modify"].sandbox_dirs_left >= 1 and k["evaluation"].sandbox_dirs_left >= 1
    # ... the next resume removed them (it ran after the self-modification kill) ...
    removed = [e["removed_sandbox_dirs"] for e in events(crashed.run_dir) if e["event"] == "resume"]
    assert removed[1] == k["self_modify"].sandbox_dirs_left, removed
    # ... and so does dgm.sandbox.cleanup_leftovers (called by the test after the evaluation kill).
    assert crashed.cleanup_counts["dirs"] == k["evaluation"].sandbox_dirs_left
    assert removed[3] == 0
    assert leftover_sandbox_dirs(crashed.setup) == []  # and the finished run left none of its own


# -- the resumed run ends exactly like the uninterrupted one -------------------------------------
def test_resumed_run_finishes(crashed: CrashedRun):
    assert crashed.final_returncode == 0, crashed.setup.log_tail()
    info = RunStore.open(crashed.run_dir, read_only=True).run_info()
    assert (info["status"], info["stop_reason"]) == ("finished", "generations done")
    assert sum(e["event"] == "resume" for e in events(crashed.run_dir)) == 4


NODE_SQL = ("SELECT node_id, parent_id, entry, status, score, compiled, admitted, tasks_evaluated, modifier_id,"
            " commit_sha FROM nodes ORDER BY node_id")


def test_same_nodes_as_the_uninterrupted_run(crashed: CrashedRun, reference: Path):
    ours, theirs = db_rows(crashed.run_dir, NODE_SQL), db_rows(reference, NODE_SQL)
    assert len(ours) == len(theirs) == 5
    assert ours == theirs
    stages = "SELECT node_id, stage, resolved, total FROM stage_scores ORDER BY node_id, stage"
    assert db_rows(crashed.run_dir, stages) == db_rows(reference, stages)
    results = "SELECT node_id, task_id, eval_index, stage, outcome FROM task_results ORDER BY 1, 2, 3"
    assert db_rows(crashed.run_dir, results) == db_rows(reference, results)


def test_same_decisions_as_the_uninterrupted_run(crashed: CrashedRun, reference: Path):
    def decisions(run_dir: Path) -> tuple[dict, dict]:
        selects, entries = {}, {}
        for e in events(run_dir):
            if e["event"] == "select":
                assert e["generation"] not in selects, "a generation's parents were chosen twice"
                selects[e["generation"]] = (e["parents"], e["weights"])
            elif e["event"] == "entry":  # a re-run attempt logs its entry again: it must be the same one
                assert entries.setdefault(e["node"], (e["parent"], e["entry"])) == (e["parent"], e["entry"])
        return selects, entries

    assert decisions(crashed.run_dir) == decisions(reference)


def test_no_duplicate_node_no_orphan_and_no_lost_task_result(crashed: CrashedRun):
    run_dir = crashed.run_dir
    store = RunStore.open(run_dir, read_only=True)
    nodes = store.nodes()
    ids = [n.node_id for n in nodes]
    assert len(ids) == len(set(ids)) == 5
    attempts = db_rows(run_dir, "SELECT attempt_id, status, tries FROM attempts ORDER BY attempt_id")
    assert [a[0] for a in attempts] == sorted(n.attempt_id for n in nodes)
    assert all(a[1] == "finished" for a in attempts)
    assert any(a[2] > 1 for a in attempts), "no attempt was re-run under its key"
    # No orphan: node dirs are exactly the node rows, no scratch dirs, no half-exported checkouts.
    assert sorted(p.name for p in (run_dir / "nodes").iterdir()) == sorted(ids)
    assert not (run_dir / "work").exists() or not any((run_dir / "work").iterdir())
    assert not list((run_dir / "checkouts").glob("*.tmp"))
    # Every agent with code is one git tag, and every evaluated node has all its task results and logs.
    tags = {t.name for t in store.lineage.repo.tags}
    assert tags == {f"node/{n.node_id}" for n in nodes if n.commit_sha}
    for n in nodes:
        if n.status == "evaluated" and n.parent_id:
            results = store.task_results(n.node_id)
            assert sorted(r.task_id for r in results) == sorted(crashed.setup.tasks), n.node_id
            for r in results:
                assert (run_dir / "nodes" / n.node_id / "tasks" / r.task_id / "model_patch.diff").is_file()


# -- the worst moment of publishing a node ---------------------------------------------------------
PUBLISH_SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    from dgm.store import Node, RunStore, TaskResult
    run_dir, agent = Path(sys.argv[1]), Path(sys.argv[2])
    store = RunStore.open(run_dir) if (run_dir / "run.db").exists() else RunStore.create(run_dir, "r", "{}", False)
    store.cleanup_orphans()
    work = store.begin_attempt("1:0", 1, 0, None)
    (work / "diagnosis.json").write_text("{}")
    node = Node("g001s0", None, 1, "1:0", "evaluated", True, True, score=1.0, tasks_evaluated=1)
    store.finish_attempt(node, [TaskResult("t1", 1, "resolved", 0.1)], agent_dir=agent, artifacts_dir=work)
    print("published")
""")


def test_kill_while_publishing_a_node_leaves_no_trace_and_the_retry_publishes_once(tmp_path):
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "main.py").write_text("print('hi')\n")
    run_dir = tmp_path / "run"
    env = {**os.environ, "DGM_TEST_KILL_AT": "publish:1:0"}
    cmd = [sys.executable, "-c", PUBLISH_SCRIPT, str(run_dir), str(agent)]
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    # Files and git tag were published, the DB row was not: the node does not exist yet.
    assert (run_dir / "nodes" / "g001s0").is_dir()
    store = RunStore.open(run_dir)
    assert [n.node_id for n in store.nodes()] == [] and not store.attempt_finished("1:0")
    assert store.cleanup_orphans() == ["g001s0"]
    store.close()

    env.pop("DGM_TEST_KILL_AT")
    retried = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60)
    assert retried.returncode == 0 and "published" in retried.stdout, retried.stderr
    store = RunStore.open(run_dir, read_only=True)
    assert [n.node_id for n in store.nodes()] == ["g001s0"]
    assert [r.task_id for r in store.task_results("g001s0")] == ["t1"]
    assert store.attempt_finished("1:0") and store.lineage.files("g001s0") == ["main.py"]
    assert sorted(p.name for p in (run_dir / "nodes" / "g001s0").iterdir()) == ["diagnosis.json"]
