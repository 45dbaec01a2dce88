"""A crashing agent, a hanging agent and an agent that produces nothing are recorded as such, with real
sandboxes, the real local benchmark and the real gateway (scripted upstream)."""

import shutil
from pathlib import Path

import pytest

from dgm.config import Config, Stage
from dgm.run import new_run, runtime

REPO = Path(__file__).resolve().parents[1]


def _agent(tmp_path: Path, main_body: str) -> Path:
    agent = tmp_path / "bad_agent"
    shutil.copytree(REPO / "agents" / "initial", agent)
    (agent / "agent" / "__main__.py").write_text(main_body)
    return agent


@pytest.fixture
def evaluate_with(tmp_path):
    def run(agent_dir: Path, timeout: float = 60):
        config = Config(run={"seed": 0, "archive_dir": tmp_path / "archive", "name": "bad"},
                        evaluation={"stages": [Stage(tasks="small")], "task_timeout_s": timeout},
                        agent={"task_limits": {"max_seconds": timeout / 2}})  # the harness outlasts the agent
        store, run_id = new_run(config)
        with runtime(config, store, run_id) as ctx:
            task = ctx.evaluator.stage_tasks[0][0]
            return ctx.evaluator.run_task(agent_dir, task, 1, "n1", "1:0", tmp_path / "out"), tmp_path / "out" / "tasks" / task

    return run


def test_crashing_agent_is_an_error(tmp_path, evaluate_with):
    result, task_dir = evaluate_with(_agent(tmp_path, "raise SystemExit('agent exploded')\n"))
    assert result.outcome == "error"
    assert result.agent_exit == "crashed"
    assert "agent exploded" in (task_dir / "agent_output.txt").read_text()


def test_hanging_agent_times_out(tmp_path, evaluate_with):
    result, _ = evaluate_with(_agent(tmp_path, "import time\ntime.sleep(600)\n"), timeout=3)
    assert result.outcome == "timeout"
    assert result.duration_s < 30


def test_agent_that_changes_nothing_has_an_empty_patch(tmp_path, evaluate_with):
    result, task_dir = evaluate_with(_agent(tmp_path, "print('nothing to do')\n"))
    assert result.outcome == "empty_patch"
    assert (task_dir / "model_patch.diff").read_text() == ""
