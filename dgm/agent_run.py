"""Running agent code: always inside a sandbox, always the same entry point (DESIGN.md §4).

    python -m agent --task /work/task.json --repo /work/repo --out /work/out

with the agent's directory mounted read-only at /agent (on PYTHONPATH), the repository to edit at
/work/repo, and the LLM gateway's socket as the only way out. The patch is computed afterwards by
the framework from a pristine copy of the repository, never taken from the agent.

Benchmarks whose repositories live in container images (SWE-bench: /testbed, with the project's
own environment around it) offer an `InImageWorkspace`; `run_agent_in_image` then runs the agent
inside that image instead, with `--repo /testbed`. See its docstring for how.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from dgm.bench.base import InImageWorkspace
from dgm.patches import diff_trees
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import ExecResult, Limits, Mount, SandboxError, SandboxSpec
from dgm.textutil import read_json

AGENT_COMMAND = ["python", "-m", "agent", "--task", "/work/task.json", "--repo", "/work/repo", "--out", "/work/out"]


@dataclass
class SandboxPolicy:
    """How untrusted code runs in this run: backend, limits, the gateway socket, labels. (How many sandboxes
    run at once is the executor's job: dgm/executor/.)"""

    backend: str
    limits: Limits = field(default_factory=Limits)
    llm_socket: Path | None = None
    labels: dict[str, str] = field(default_factory=dict)
    backend_options: dict = field(default_factory=dict)  # passed to the backend (docker: client=, image=)

    def open(self, source: Path | None, mounts: list[Mount] = (), env: dict[str, str] | None = None,
             toolchains: list[Path] = (), **options):
        """A sandbox of this policy; `options` (e.g. docker's image=) override backend_options."""
        spec = SandboxSpec(source=source, mounts=list(mounts), llm_socket=self.llm_socket, env=dict(env or {}),
                           limits=self.limits, labels=self.labels, toolchains=list(toolchains))
        return open_sandbox(self.backend, spec, **{**self.backend_options, **options})


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
              llm_env: dict[str, str], timeout: float, toolchains: list[Path] = ()) -> AgentRun:
    """Run `agent_dir`'s agent on a copy of `repo_dir`; artifacts go to out_dir (agent_output.txt, out/).

    `toolchains`: the benchmark's compilers outside /usr, so the agent can build and test as the grader will.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=out_dir) as tmp:  # inside the attempt: a crash leaves nothing in /tmp
        stage = Path(tmp) / "stage"
        shutil.copytree(repo_dir, stage / "repo", symlinks=True)
        (stage / "out").mkdir()
        (stage / "task.json").write_text(json.dumps(task, indent=2))
        env = {**llm_env, "PYTHONPATH": "/agent", "PYTHONDONTWRITEBYTECODE": "1"}
        with policy.open(stage, [Mount(agent_dir, "/agent")], env, toolchains) as sandbox:
            result = sandbox.exec(AGENT_COMMAND, timeout=timeout, cwd="/work")
            result_dir = Path(tmp) / "result"
            sandbox.copy_out("/work/repo", result_dir / "repo")
            sandbox.copy_out("/work/out", result_dir / "out")
        return _finish(out_dir, result, result_dir / "out", repo_dir, result_dir / "repo")


def _finish(out_dir: Path, result: ExecResult, agent_out: Path, before: Path, after: Path) -> AgentRun:
    """Keep the agent's output and trajectory; the patch is the framework's diff of the two trees."""
    (out_dir / "agent_output.txt").write_text(result.output)
    trajectory = read_json(agent_out / "trajectory.json")
    if trajectory is not None:
        (out_dir / "trajectory.json").write_text(json.dumps(trajectory, indent=1))
    return AgentRun(patch=diff_trees(before, after), trajectory=trajectory, result=result)


# -- agents inside a task's image (SWE-bench) ---------------------------------------------------

# Task images (SWE-bench's) own /testbed, their conda env and /root as root, and the harness runs
# as root; the agent does too, but with every capability dropped, no new privileges, no network.
IN_IMAGE_USER = "0:0"


def host_python_for_images() -> tuple[str, list[str]]:
    """The framework's interpreter and the host dirs it lives in, to be mounted at the same paths.

    The agent must not depend on the image's Python (SWE-bench images carry the *project's* Python,
    e.g. 3.6, without openai). Like the bwrap backend, we bind the host's Python prefix read-only.
    A Python under /usr cannot be used: binding /usr would hide the image's own system.
    """
    from dgm.sandbox.bwrap import python_prefixes

    prefixes = python_prefixes()
    real = os.path.realpath(sys.executable)
    if not any(real == p or real.startswith(p + os.sep) for p in prefixes):
        raise SandboxError(f"the framework's Python {real} lives under /usr and cannot be mounted into a task "
                           "image without hiding the image's own /usr; run dgm from a Python installed "
                           "elsewhere (pyenv, `uv python install`, conda)")
    return sys.executable, prefixes


def _check_python_starts(sandbox, python: str, image: str) -> None:
    """A host Python built against a newer C library than the image's cannot start there: say so."""
    probe = sandbox.exec([python, "-c", "import ssl, sys; print(sys.version)"], timeout=120, cwd="/work")
    if probe.exit_code != 0:
        raise SandboxError(f"the framework's Python {python} cannot start inside image {image}: "
                           f"{probe.output.strip()[-800:]} (a Python built for older systems, e.g. one from "
                           "`uv python install`, starts in any image)")


def agent_command_in_image(python: str, repo_path: str) -> list[str]:
    return [python, "-m", "agent", "--task", "/work/task.json", "--repo", repo_path, "--out", "/work/out"]


def run_agent_in_image(*, policy: SandboxPolicy, agent_dir: Path, workspace: InImageWorkspace, task: dict,
                       out_dir: Path, llm_env: dict[str, str], timeout: float,
                       benchmark: str = "this benchmark") -> AgentRun:
    """Run the agent inside `workspace.image` on the repository at `workspace.repo_path` (/testbed).

    A docker sandbox from the task's image (network none, gateway socket bound, agent at /agent
    read-only, the host's Python prefix read-only at its own path, the framework hidden). We first
    check that this Python starts in the image; the repo is copied out before and after the run,
    and the patch is the framework's diff of the two copies.
    """
    if policy.backend != "docker":
        raise SandboxError(f"benchmark {benchmark!r} runs agents inside the task's image ({workspace.image}); "
                           f"sandbox backend {policy.backend!r} cannot do that: set `sandbox: {{backend: docker}}`")
    from dgm.sandbox.bwrap import framework_dirs_to_mask

    python, prefixes = host_python_for_images()
    out_dir.mkdir(parents=True, exist_ok=True)
    mounts = [Mount(agent_dir, "/agent")] + [Mount(Path(p), p) for p in prefixes]
    env = {**llm_env, "PYTHONPATH": "/agent", "PYTHONDONTWRITEBYTECODE": "1", **workspace.env}
    with tempfile.TemporaryDirectory(prefix=".stage-", dir=out_dir) as tmp:  # inside the attempt: a crash leaves nothing in /tmp
        stage = Path(tmp) / "stage"
        (stage / "out").mkdir(parents=True)
        (stage / "task.json").write_text(json.dumps(task, indent=2))
        copies = Path(tmp) / "copies"
        with policy.open(stage, mounts, env, image=workspace.image, user=IN_IMAGE_USER, writable_root=True,
                         hidden_dirs=framework_dirs_to_mask(prefixes)) as sandbox:
            _check_python_starts(sandbox, python, workspace.image)
            sandbox.copy_out(workspace.repo_path, copies / "before")
            result = sandbox.exec(agent_command_in_image(python, workspace.repo_path), timeout=timeout, cwd="/work")
            sandbox.copy_out(workspace.repo_path, copies / "after")
            sandbox.copy_out("/work/out", copies / "out")
        return _finish(out_dir, result, copies / "out", copies / "before", copies / "after")


def run_own_tests(*, policy: SandboxPolicy, agent_dir: Path, command: str, timeout: float) -> ExecResult:
    """The child's own unit tests, in a fresh sandbox over a copy of its code (the "compiles" check)."""
    with policy.open(agent_dir, env={"PYTHONDONTWRITEBYTECODE": "1"}) as sandbox:
        return sandbox.exec(["sh", "-c", command], timeout=timeout, cwd="/work")
