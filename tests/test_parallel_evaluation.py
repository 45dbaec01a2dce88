"""A child's tasks run in parallel (`evaluation.workers`), and every sandbox of the run shares one cap
(`run.max_concurrency`): real sandboxes, the real local benchmark and gateway; the agent is a stand-in that
records when it ran (its trajectory carries its start and end times) and sleeps."""

import json
import shutil
import threading
from pathlib import Path

from dgm.concurrency import SandboxSlots
from dgm.config import Config, Stage
from dgm.run import new_run, runtime

REPO = Path(__file__).resolve().parents[1]

SLEEPING_AGENT = """\
import json, sys, time
from pathlib import Path
started = time.time()
time.sleep(2.0)
out = Path(sys.argv[sys.argv.index("--out") + 1])
out.mkdir(parents=True, exist_ok=True)
(out / "trajectory.json").write_text(json.dumps(
    {"exit_status": "submitted", "messages": [], "steps": [], "window": [started, time.time()]}))
"""


def _agent(tmp_path: Path) -> Path:
    agent = tmp_path / "sleeper"
    shutil.copytree(REPO / "agents" / "initial", agent)
    (agent / "agent" / "__main__.py").write_text(SLEEPING_AGENT)
    return agent


def _windows(out_dirs: list[Path]) -> list[tuple[float, float]]:
    return [tuple(json.loads(p.read_text())["window"]) for out in out_dirs for p in out.glob("tasks/*/trajectory.json")]


def _most_at_once(windows) -> int:
    events = sorted([(start, 1) for start, _ in windows] + [(end, -1) for _, end in windows])
    running = peak = 0
    for _, step in events:
        running += step
        peak = max(peak, running)
    return peak


def _config(tmp_path, tasks, workers, max_concurrency):
    return Config(run={"seed": 0, "archive_dir": tmp_path / "archive", "name": "par", "max_concurrency": max_concurrency},
                  evaluation={"stages": [Stage(tasks=tasks)], "workers": workers})


def _small_tasks(n):
    from dgm.bench import load_benchmark

    return load_benchmark("local").subsets()["small"][:n]


def test_a_childs_tasks_run_in_parallel_by_default_config(tmp_path):
    tasks = _small_tasks(3)
    config = _config(tmp_path, tasks, workers=3, max_concurrency=10)
    store, run_id = new_run(config)
    with runtime(config, store, run_id) as ctx:
        # As the loop calls it for a child: no `workers` argument, so evaluation.workers applies.
        evaluation = ctx.evaluator.evaluate(_agent(tmp_path), "g001s0", "1:0", tmp_path / "out")
    assert [r.task_id for r in evaluation.results] == tasks  # evaluation order, whatever finished first
    assert {r.outcome for r in evaluation.results} == {"empty_patch"}
    assert _most_at_once(_windows([tmp_path / "out"])) == 3


def test_parallel_attempts_share_one_run_wide_cap(tmp_path):
    """Two children evaluated at once, 3 task workers each, under run.max_concurrency = 2."""
    tasks = _small_tasks(3)
    config = _config(tmp_path, tasks, workers=3, max_concurrency=2)
    store, run_id = new_run(config)
    agent = _agent(tmp_path)
    outs = [tmp_path / "out-a", tmp_path / "out-b"]
    with runtime(config, store, run_id) as ctx:
        threads = [threading.Thread(target=ctx.evaluator.evaluate, args=(agent, f"g001s{i}", f"1:{i}", out))
                   for i, out in enumerate(outs)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=300)
        peak = ctx.executor.sandboxes.peak
    windows = _windows(outs)
    assert len(windows) == 6
    assert _most_at_once(windows) <= 2 and peak == 2


def test_slots_cap_concurrent_units_and_never_go_negative():
    slots = SandboxSlots(2)
    inside, most, lock = [0], [0], threading.Lock()
    gate = threading.Event()

    def unit():
        with slots.slot():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            gate.wait(0.2)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=unit) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 2 and slots.peak == 2 and slots.running == 0
