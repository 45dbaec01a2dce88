"""Watching a run: attempt phases in the real store, the terminal view's numbers, and quiet output off a terminal."""

import io
import sqlite3

import pytest
from rich.console import Console

from dgm.config import Config
from dgm.llm.base import CallContext, UsageRecord
from dgm.progress import StoreProgress, Tracker, live_view, planned_children, render
from dgm.store import Node, RunStore


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def publish(store, node_id, parent, attempt_id):
    generation = int(attempt_id.split(":")[0])
    store.finish_attempt(Node(node_id=node_id, parent_id=parent, generation=generation, attempt_id=attempt_id,
                              status="evaluated", compiled=True, admitted=True, score=0.5))


def spend(store, attempt_id, usd):
    store.record_llm_call(UsageRecord(CallContext("r", None, attempt_id, "task"), "gpt-4o", 100, 10, 0, usd, False, 0.1))


@pytest.fixture
def store(tmp_path):
    s = RunStore.create(tmp_path / "run", "r", "run: {}\n", False)
    yield s
    s.close()


def test_phases_spend_rate_and_time_left_from_the_store(store):
    cfg = Config.model_validate({"loop": {"generations": 5, "children_per_generation": 2},
                                 "llm": {"budgets": {"run_usd": 50}}})
    clock = Clock()
    tracker = Tracker(cfg, clock=clock)
    reader = RunStore.open(store.run_dir, read_only=True)  # a separate read-only connection, as the live view uses
    progress = StoreProgress(store)

    store.begin_attempt("0:initial", 0, 0, None)
    progress.phase("0:initial", "evaluating", 0, 30)
    first = tracker.snapshot(reader)
    assert [(a.node_id, a.phase, a.total) for a in first.in_flight] == [("initial", "evaluating", 30)]
    assert first.seconds_left is None and "initial agent" in first.basis  # its evaluation is not a child's pace

    publish(store, "initial", None, "0:initial")
    clock.now = 100
    assert tracker.snapshot(reader).seconds_left is None  # no child finished yet: no estimate

    store.start_generation(1, ["initial", "initial"])
    for slot in (0, 1):
        store.begin_attempt(f"1:{slot}", 1, slot, "initial")
    progress.phase("1:0", "diagnosing")
    progress.phase("1:1", "evaluating", 0, 10)
    for _ in range(4):
        progress.step("1:1")
    spend(store, "1:1", 2.0)
    clock.now = 400
    publish(store, "g001s0", "initial", "1:0")

    snap = tracker.snapshot(reader)
    assert [(a.node_id, a.parent_id, a.phase, a.done, a.total) for a in snap.in_flight] == [
        ("g001s1", "initial", "evaluating", 4, 10)]
    assert snap.children == 1 and snap.planned == 10
    assert snap.seconds_left == pytest.approx(9 * 300)  # 9 children to go at 300 s each (one in 300 s)
    assert "9 of 10 children to go" in snap.basis and "sooner" in snap.basis
    assert snap.spent_usd == pytest.approx(2.0) and snap.usd_per_hour == pytest.approx(2.0 / (400 / 3600))

    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(render(snap))
    text = console.file.getvalue()
    assert "children 1/10" in text and "$2.00 spent of $50.00 budget" in text and "$18.00/h" in text
    assert "g001s1" in text and "evaluating 4/10" in text and "~45m00s left" in text
    reader.close()


def test_wall_clock_limit_caps_the_estimate(store):
    cfg = Config.model_validate({"loop": {"generations": 100, "wall_clock_hours": 1}})
    clock = Clock()
    tracker = Tracker(cfg, clock=clock)
    publish(store, "initial", None, "0:initial")
    tracker.snapshot(store)
    clock.now = 600
    publish(store, "g001s0", "initial", "1:0")
    snap = tracker.snapshot(store)
    assert snap.seconds_left == pytest.approx(3000) and "wall_clock_hours" in snap.basis


def test_the_run_budget_caps_the_estimate_at_the_current_rate(store):
    cfg = Config.model_validate({"loop": {"generations": 100}, "llm": {"budgets": {"run_usd": 10}}})
    clock = Clock()
    tracker = Tracker(cfg, clock=clock)
    publish(store, "initial", None, "0:initial")
    tracker.snapshot(store)
    clock.now = 3600
    spend(store, "1:0", 4.0)
    publish(store, "g001s0", "initial", "1:0")
    snap = tracker.snapshot(store)  # $4/h with $6 left: 1.5 h, long before 199 more children
    assert snap.seconds_left == pytest.approx(1.5 * 3600) and "llm.budgets.run_usd" in snap.basis


def test_planned_children_follows_the_stop_rules():
    assert planned_children(Config.model_validate({"loop": {"generations": 80, "children_per_generation": 2}})) == 160
    assert planned_children(Config.model_validate({"loop": {"generations": 80, "max_children": 80}})) == 80
    assert planned_children(Config.model_validate({"loop": {"generations": 80}, "ablation": "no_darwin"})) == 80


def test_a_failed_phase_write_never_stops_the_run(tmp_path):
    store = RunStore.create(tmp_path / "run", "r", "run: {}\n", False)
    store.close()
    StoreProgress(store).phase("1:0", "diagnosing")  # closed connection: logged, not raised
    StoreProgress(store).step("1:0")


def test_old_run_dirs_open_and_get_the_phase_columns_on_resume(store):
    store.begin_attempt("1:0", 1, 0, "initial")
    for column in ("phase", "phase_done", "phase_total", "phase_at"):  # a run dir from before phases
        store.db.execute(f"ALTER TABLE attempts DROP COLUMN {column}")
    store.db.commit()
    reader = RunStore.open(store.run_dir, read_only=True)
    assert reader.in_flight()[0]["phase"] is None and reader.in_flight()[0]["attempt_id"] == "1:0"
    reader.close()
    with pytest.raises(sqlite3.OperationalError):
        store.set_phase("1:0", "diagnosing")
    resumed = RunStore.open(store.run_dir)  # the writable open of --resume adds the columns
    resumed.set_phase("1:0", "diagnosing")
    assert resumed.in_flight()[0]["phase"] == "diagnosing"
    resumed.close()


def test_live_view_draws_on_a_terminal_and_stays_quiet_otherwise(store):
    cfg = Config.model_validate({"loop": {"generations": 2}})
    store.begin_attempt("0:initial", 0, 0, None)
    StoreProgress(store).phase("0:initial", "own tests")

    piped = Console(file=io.StringIO(), force_terminal=False, width=100)
    with live_view(piped, store.run_dir, cfg, refresh_seconds=0.05):
        piped.print("  g001s0 <- initial: evaluated")
    assert piped.file.getvalue() == "  g001s0 <- initial: evaluated\n"  # only the plain per-node lines

    tty = Console(file=io.StringIO(), force_terminal=True, width=100, color_system=None)
    with live_view(tty, store.run_dir, cfg, refresh_seconds=0.05):
        tty.print("  g001s0 <- initial: evaluated")
    out = tty.file.getvalue()
    assert "g001s0 <- initial: evaluated" in out and "own tests" in out and "children 0/4" in out


@pytest.mark.slow
def test_a_real_run_on_a_terminal_shows_its_attempts_phases(tmp_path):
    """The quick-start loop (scripted model, bwrap sandboxes) under a pseudo-terminal: the live view shows the
    child's phases as the loop reports them, and the store keeps the last one (evaluation counted to the end)."""
    import json
    import os
    import pty
    import select
    import subprocess
    import sys
    import time
    from pathlib import Path

    from dgm.bench import load_benchmark

    root = Path(__file__).resolve().parents[1]
    tasks = load_benchmark("local").subsets()["small"][:4]
    initial = tmp_path / "initial_results.json"
    initial.write_text(json.dumps(dict(zip(tasks, ["resolved", "unresolved", "empty_patch", "unresolved"]))))
    args = [sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml", "--set", f"run.archive_dir={tmp_path}",
            "--set", "loop.generations=1", "--set", "loop.children_per_generation=1",
            "--set", f"evaluation.stages=[{{tasks: {json.dumps(tasks)}}}]", "--set", f"evaluation.initial_results={initial}"]
    controller, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "160", "LINES": "40", "TERM": "xterm"}
    proc = subprocess.Popen(args, cwd=root, env=env, stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    out = b""
    deadline = time.time() + 600
    try:
        while proc.poll() is None and time.time() < deadline:
            if select.select([controller], [], [], 1)[0]:
                try:
                    out += os.read(controller, 65536)
                except OSError:
                    break
        assert proc.wait(timeout=30) == 0, out.decode(errors="replace")[-3000:]
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)
    text = out.decode(errors="replace")
    assert "children 0/1" in text and "g001s0" in text and "evaluating" in text  # the live view, while it ran
    assert "g001s0 <- initial:" in text  # and the plain per-node line above it
    (run_dir,) = [p for p in tmp_path.iterdir() if (p / "run.db").exists()]
    store = RunStore.open(run_dir, read_only=True)
    row = store.db.execute("SELECT * FROM attempts WHERE attempt_id='1:0'").fetchone()
    store.close()
    assert row["status"] == "finished"
    if row["phase"] == "evaluating":  # the child compiled and was evaluated: every task was counted
        assert row["phase_done"] == row["phase_total"] == 4
    else:
        assert row["phase"] in ("self-modifying", "own tests")


def test_readers_never_write_to_a_running_runs_files(store):
    store.events.append("select", generation=1)
    with store.events.path.open("a") as f:
        f.write('{"event": "node", "half a li')  # the run is in the middle of writing an event
    before = store.events.path.read_bytes()
    RunStore.open(store.run_dir, read_only=True).close()  # as the live view and the dashboard open it
    assert store.events.path.read_bytes() == before
