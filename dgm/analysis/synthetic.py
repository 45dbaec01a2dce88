"""Build a small, realistic-looking run through the real store API (for tests, demos and the UI).

It is a fixture generator, not an experiment: runs it builds are marked scripted, so everything
that shows them carries the scripted-model banner.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

from dgm.llm.base import CallContext, UsageRecord
from dgm.store import Node, RunStore, StageScore, TaskResult

_IDEAS = [
    ("Retry flaky edits", "Add a retry when the editor reports a stale file."),
    ("Show test output tail", "Keep the last lines of pytest output instead of the first."),
    ("Smarter file viewer", "Let the viewer show line ranges so large files fit in context."),
    ("Summarise long histories", "Summarise old turns when the context grows too long."),
    ("Run tests before submit", "Always run the test suite before declaring success."),
    ("Patch validation", "Check that the patch applies cleanly before finishing."),
]


def _trajectory(instance_id: str, ok: bool) -> dict:
    steps = [
        {"index": 0, "tool": "bash", "arguments": {"command": "ls"}, "observation": "src tests", "error": None, "duration_s": 0.1},
        {"index": 1, "tool": "editor", "arguments": {"command": "view", "path": "src/app.py"},
         "observation": "def f():\n    return 1\n", "error": None, "duration_s": 0.05},
    ]
    if not ok:
        steps.append({"index": 2, "tool": "bash", "arguments": {"command": "pytest -q"}, "observation": "1 failed",
                      "error": "exit status 1", "duration_s": 1.2})
    return {
        "instance_id": instance_id,
        "exit_status": "submitted" if ok else "limits_exceeded",
        "messages": [
            {"role": "system", "content": "You are a coding agent."},
            {"role": "user", "content": f"Fix the issue in {instance_id}."},
            {"role": "assistant", "content": "Let me look at the repository.",
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "bash", "arguments": "{\"command\": \"ls\"}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": "src tests"},
            {"role": "assistant", "content": "Done." if ok else "I could not make the tests pass."},
        ],
        "steps": steps,
        "usage": {"prompt_tokens": 1200, "completion_tokens": 150, "calls": 3},
        "error": None,
    }


def build_synthetic_run(
    run_dir: Path, *, children: int = 8, k: int = 2, stage_sizes: tuple[int, ...] = (10, 30),
    seed: int = 0, scripted: bool = True, run_id: str = "synthetic",
) -> Path:
    """Write a run with an initial node and `children` attempted children (some not compiled, one without patch)."""
    rng = random.Random(seed)
    run_dir = Path(run_dir)
    tasks = [f"task-{i:03d}" for i in range(stage_sizes[-1])]
    store = RunStore.create(run_dir, run_id, f"run_id: {run_id}\nseed: {seed}\nstages: {list(stage_sizes)}\n", scripted)
    work_root = run_dir.parent / f".{run_dir.name}-agents"
    skill = {"initial": 0.3}
    admitted = ["initial"]
    _publish(store, rng, work_root, "initial", None, 0, "initial", 0.3, tasks, stage_sizes, compiled=True, idea=None)
    made = 0
    generation = 1
    while made < children:
        parents = [rng.choice(admitted) for _ in range(k)]
        store.start_generation(generation, parents)
        for slot, parent in enumerate(parents):
            if made >= children:
                break
            node_id = f"g{generation}n{slot}"
            fate = rng.random()
            compiled = fate > 0.2
            no_patch = 0.1 < fate <= 0.2
            level = max(0.0, min(0.95, skill[parent] + rng.uniform(-0.05, 0.18)))
            idea = rng.choice(_IDEAS)
            store.begin_attempt(f"{generation}:{slot}", generation, slot, parent)
            _publish(store, rng, work_root, node_id, parent, generation, f"{generation}:{slot}", level, tasks,
                     stage_sizes, compiled=compiled, idea=idea, no_patch=no_patch)
            if compiled and not no_patch:
                skill[node_id] = level
                admitted.append(node_id)
            made += 1
        store.finish_generation(generation)
        generation += 1
    store.set_run_status("finished", "max_generations")
    store.close()
    return run_dir


def _agent_dir(work_root: Path, node_id: str, lines: list[str]) -> Path:
    d = work_root / node_id / "src" / "agent"
    d.mkdir(parents=True, exist_ok=True)
    (d / "__init__.py").write_text("")
    (d / "core.py").write_text("\n".join(lines) + "\n")
    return d.parent


def _publish(store, rng, work_root, node_id, parent, generation, attempt_id, level, tasks, stage_sizes, *,
             compiled, idea, no_patch=False) -> None:
    art = work_root / node_id / "artifacts"
    art.mkdir(parents=True, exist_ok=True)
    lines = ["def run(task):", "    return solve(task)"]
    if parent is not None:
        parent_lines = (work_root / parent / "src" / "agent" / "core.py").read_text().splitlines()
        lines = parent_lines + [f"# {idea[0]}", f"def improvement_{node_id}():", f"    return {level:.2f}"]
    agent = None if no_patch else _agent_dir(work_root, node_id, lines)
    if idea is not None:
        diag = {
            "log_summarization": "The agent edited the wrong file and never ran the tests.",
            "potential_improvements": [idea[0], "Better error messages"],
            "improvement_proposal": f"{idea[0]}. {idea[1]}",
            "implementation_suggestion": idea[1],
            "problem_description": f"The agent should: {idea[1].lower()}",
        }
        (art / "diagnosis.json").write_text(json.dumps(diag, indent=2))
        (art / "problem_statement.md").write_text(f"# To Implement\n\n{idea[1]}\n")
        (art / "self_modify").mkdir(exist_ok=True)
        (art / "self_modify" / "trajectory.json").write_text(json.dumps(_trajectory("self_modify", not no_patch)))
        (art / "own_tests.txt").write_text("3 passed\n" if compiled else "1 failed, 2 passed\n")
    results, stages = [], []
    status = "no_patch" if no_patch else ("evaluated" if compiled else "not_compiled")
    if not no_patch:
        done = 0
        for stage, size in enumerate(stage_sizes, 1):
            for task in tasks[done:size]:
                if not compiled:
                    outcome = "empty_patch"
                else:
                    outcome = "resolved" if rng.random() < level else rng.choice(["unresolved", "unresolved", "empty_patch", "error"])
                results.append(TaskResult(task, stage, outcome, round(rng.uniform(5, 60), 1), "submitted"))
            resolved = sum(r.outcome == "resolved" for r in results)
            stages.append(StageScore(stage, resolved, size))
            done = size
            if not compiled or resolved / size < 0.4:
                break
        for r in results[:3]:
            tdir = art / "tasks" / r.task_id
            tdir.mkdir(parents=True, exist_ok=True)
            (tdir / "trajectory.json").write_text(json.dumps(_trajectory(r.task_id, r.outcome == "resolved")))
            (tdir / "model_patch.diff").write_text("--- a/src/app.py\n+++ b/src/app.py\n@@ -1 +1 @@\n-x\n+y\n")
            (tdir / "test_output.txt").write_text("PASSED" if r.outcome == "resolved" else "FAILED")
    node = Node(
        node_id=node_id, parent_id=parent, generation=generation, attempt_id=attempt_id, status=status,
        compiled=compiled and not no_patch, admitted=compiled and not no_patch, entry=None if parent is None else rng.choice(tasks[:5]),
        score=stages[-1].score if stages else None, tasks_evaluated=len(results), stages=stages,
        modifier_id=parent,
    )
    if agent is not None and parent is not None:
        old = (work_root / parent / "src" / "agent" / "core.py").read_text().splitlines()
        diff = ["--- a/agent/core.py", "+++ b/agent/core.py", f"@@ -1,{len(old)} +1,{len(lines)} @@"]
        diff += [f" {line}" for line in old] + [f"+{line}" for line in lines[len(old):]]
        (art / "patch.diff").write_text("\n".join(diff) + "\n")
    store.finish_attempt(node, results, agent_dir=agent, artifacts_dir=art)
    for purpose, n_calls, cost in (("diagnosis", 1, 0.05), ("self_modify", 4, 0.02), ("task", len(results), 0.01)):
        if parent is None and purpose != "task":
            continue
        for _ in range(n_calls):
            store.record_llm_call(UsageRecord(CallContext(store.run_info()["run_id"], node_id, attempt_id, purpose),
                                              "scripted" if store.run_info()["scripted"] else "gpt-4o",
                                              1000, 200, 0, cost, False, 0.1))
