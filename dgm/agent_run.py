"""Running agent code: always inside a sandbox, always the same entry point (DESIGN.md §4).

    python -m agent --task /work/task.json --repo /work/repo --out /work/out

with the agent's directory mounted read-only at /agent (on PYTHONPATH), the repository to edit at
/work/repo, and the LLM gateway's socket as the only way out. The patch is computed afterwards by
the framework from a pristine copy of the repository, never taken from the agent.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dgm.patches import diff_trees
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import ExecResult, Limits, Mount, SandboxSpec
from dgm.textutil import read_json

AGENT_COMMAND = ["python", "-m", "agent", "--task", "/work/task.json", "--repo", "/work/repo", "--out", "/work/out"]


@dataclass
class SandboxPolicy:
    """How untrusted code runs in this run: backend, limits, the gateway socket, labels."""

    backend: str
    limits: Limits = field(default_factory=Limits)
    llm_socket: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)

    def open(self, source: Path | None, mounts: list[Mount] = (), env: dict[str, str] | None = None):
        spec = SandboxSpec(source=source, mounts=list(mounts), llm_socket=self.llm_socket, env=dict(env or {}),
                           limits=self.limits, labels=self.labels)
        return open_sandbox(self.backend, spec)


@dataclass
class AgentRun:
    patch: str
    trajectory: dict | None
    result: ExecResult

    @property
    def exit_status(self) -> str:
        """The agent's own account, or what the framework saw when there is none."""
        if self.result.timed_out:
            return "timeout"
        if self.trajectory and self.trajectory.get("exit_status"):
            return str(self.trajectory["exit_status"])
        return "crashed" if self.result.exit_code != 0 else "no_trajectory"

    @property
    def crashed(self) -> bool:
        return self.result.exit_code != 0 and not self.result.timed_out


def run_agent(*, policy: SandboxPolicy, agent_dir: Path, repo_dir: Path, task: dict, out_dir: Path,
              llm_env: dict[str, str], timeout: float) -> AgentRun:
    """Run `agent_dir`'s agent on a copy of `repo_dir`; artifacts go to out_dir (agent_output.txt, out/)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="dgm-stage-") as tmp:
        stage = Path(tmp) / "stage"
        shutil.copytree(repo_dir, stage / "repo", symlinks=True)
        (stage / "out").mkdir()
        (stage / "task.json").write_text(json.dumps(task, indent=2))
        env = {**llm_env, "PYTHONPATH": "/agent", "PYTHONDONTWRITEBYTECODE": "1"}
        with policy.open(stage, [Mount(agent_dir, "/agent")], env) as sandbox:
            result = sandbox.exec(AGENT_COMMAND, timeout=timeout, cwd="/work")
            result_dir = Path(tmp) / "result"
            sandbox.copy_out("/work/repo", result_dir / "repo")
            sandbox.copy_out("/work/out", result_dir / "out")
        (out_dir / "agent_output.txt").write_text(result.output)
        trajectory = read_json(result_dir / "out" / "trajectory.json")
        if trajectory is not None:
            (out_dir / "trajectory.json").write_text(json.dumps(trajectory, indent=1))
        patch = diff_trees(repo_dir, result_dir / "repo")
    return AgentRun(patch=patch, trajectory=trajectory, result=result)


def run_own_tests(*, policy: SandboxPolicy, agent_dir: Path, command: str, timeout: float) -> ExecResult:
    """The child's own unit tests, in a fresh sandbox over a copy of its code (the "compiles" check)."""
    with policy.open(agent_dir, env={"PYTHONDONTWRITEBYTECODE": "1"}) as sandbox:
        return sandbox.exec(["sh", "-c", command], timeout=timeout, cwd="/work")
