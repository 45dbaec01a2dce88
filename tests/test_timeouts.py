"""The harness outlasts the agent: an agent that runs out of its own time still hands in its patch, and a
config where the harness would kill it first is refused, naming the keys. Real sandboxes, the real local
benchmark and gateway; the agent is a stand-in that edits the repository, then finishes its last step a
second after its time limit (as a real agent does when a model call or a command ends past the limit)."""

import json
import shutil
from pathlib import Path

import pytest
import yaml

from dgm.agent_run import SandboxPolicy
from dgm.config import Config, ConfigError, Stage, load_config
from dgm.improve import self_modify
from dgm.run import new_run, runtime

REPO = Path(__file__).resolve().parents[1]

LATE_AGENT = """\
import json, sys, time
from pathlib import Path
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
limit = json.loads(Path(args["--task"]).read_text())["limits"]["max_seconds"]
repo, out = Path(args["--repo"]), Path(args["--out"])
target = next(p for p in sorted(repo.rglob("*.py")) if ".git" not in p.parts and "test" not in str(p.relative_to(repo)))
target.write_text(target.read_text() + "\\n# the agent's last edit\\n")
time.sleep(limit + 1)  # the last step ends a second past the limit
out.mkdir(parents=True, exist_ok=True)
(out / "trajectory.json").write_text(json.dumps({"exit_status": "limits_exceeded", "messages": [], "steps": []}))
"""


def _late_agent(tmp_path: Path) -> Path:
    agent = tmp_path / "late"
    shutil.copytree(REPO / "agents" / "initial", agent)
    (agent / "agent" / "__main__.py").write_text(LATE_AGENT)
    return agent


def test_a_harness_timeout_not_above_the_agents_limit_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("agent: {task_limits: {max_seconds: 600}}\nevaluation: {task_timeout_s: 600}\n")
    with pytest.raises(ConfigError, match=r"evaluation\.task_timeout_s \(600\) must exceed "
                                          r"agent\.task_limits\.max_seconds \(600\)"):
        load_config(path)
    path.write_text("agent: {self_modify_limits: {max_seconds: 1800}, self_modify_timeout_s: 1000}\n")
    with pytest.raises(ConfigError, match=r"agent\.self_modify_timeout_s \(1000\) must exceed "
                                          r"agent\.self_modify_limits\.max_seconds \(1800\)"):
        load_config(path)


def test_default_harness_timeouts_are_the_agents_limits_plus_a_margin():
    config = Config()
    agent = config.agent
    assert agent.self_modify_limits.max_seconds == 1800  # the paper's 30 minutes for a self-modification
    assert config.evaluation.task_timeout_s == agent.task_limits.max_seconds + agent.timeout_margin_s
    assert agent.self_modify_timeout_s == agent.self_modify_limits.max_seconds + agent.timeout_margin_s
    assert agent.timeout_margin_s > 0
    custom = Config(agent={"task_limits": {"max_seconds": 100}, "timeout_margin_s": 30})
    assert custom.evaluation.task_timeout_s == 130  # follows the agent's limit, so it is never left below it


def test_an_agent_out_of_time_still_hands_in_its_patch_and_it_is_graded(tmp_path):
    config = Config(run={"seed": 0, "archive_dir": tmp_path / "archive", "name": "late"},
                    agent={"task_limits": {"max_seconds": 2}, "timeout_margin_s": 30},
                    evaluation={"stages": [Stage(tasks="small")]})
    store, run_id = new_run(config)
    with runtime(config, store, run_id) as ctx:
        task = ctx.evaluator.stage_tasks[0][0]
        result = ctx.evaluator.run_task(_late_agent(tmp_path), task, 1, "n1", "1:0", tmp_path / "out")
    assert result.agent_exit == "limits_exceeded"
    assert result.outcome == "unresolved"  # graded, not "timeout"
    task_dir = tmp_path / "out" / "tasks" / task
    assert "the agent's last edit" in (task_dir / "model_patch.diff").read_text()
    assert json.loads((task_dir / "report.json").read_text())


def test_a_self_modification_out_of_time_still_yields_its_patch(tmp_path, backend):
    config = Config(agent={"self_modify_limits": {"max_seconds": 2}, "timeout_margin_s": 30})
    target = tmp_path / "target"
    shutil.copytree(REPO / "agents" / "initial", target, ignore=shutil.ignore_patterns("__pycache__"))
    out = tmp_path / "attempt" / "self_modify"
    out.parent.mkdir()
    change = self_modify(policy=SandboxPolicy(backend), llm_env={}, modifier_dir=_late_agent(tmp_path),
                         target_dir=target, statement="# To Implement\nanything", out_dir=out,
                         limits=config.agent.self_modify_limits, timeout=config.agent.self_modify_timeout_s)
    assert not change.run.result.timed_out and change.run.exit_status == "limits_exceeded"
    assert "the agent's last edit" in change.patch


def test_a_run_saved_with_the_old_equal_timeout_resumes_once_the_timeout_is_raised(tmp_path):
    from dgm.run import resume_run
    from dgm.store import RunStore

    config = Config(run={"seed": 0})
    saved = config.model_dump(mode="json")
    saved["evaluation"]["task_timeout_s"] = saved["agent"]["task_limits"]["max_seconds"]  # as main used to save
    RunStore.create(tmp_path / "run", "old", yaml.safe_dump(saved), scripted=True).close()
    (tmp_path / "run" / "config.yaml").write_text(yaml.safe_dump(saved))
    with pytest.raises(ConfigError, match=r"evaluation\.task_timeout_s \(600\) must exceed"):
        resume_run(tmp_path / "run", [])
    resumed, store, _ = resume_run(tmp_path / "run", ["evaluation.task_timeout_s=900"])
    assert resumed.evaluation.task_timeout_s == 900
    store.close()
