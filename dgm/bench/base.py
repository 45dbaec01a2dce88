"""The Benchmark protocol: tasks in SWE-bench's shape, graded the way SWE-bench grades them.

The agent's workspace holds only the repository at its base commit and the problem statement;
hidden tests and the gold patch never leave the benchmark until grading, which happens in a
fresh sandbox.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

OUTCOMES = ("resolved", "unresolved", "empty_patch", "error", "timeout")


@dataclass(frozen=True)
class TaskInfo:
    """Everything about a task that an agent is allowed to see."""

    instance_id: str
    problem_statement: str
    test_description: str  # how to run the repository's tests (no hidden test names)


@dataclass(frozen=True)
class InImageWorkspace:
    """A task whose repository lives inside a container image (SWE-bench: /testbed).

    A benchmark that returns one from `agent_workspace(instance_id)` has its agents run inside
    that image (docker backend) instead of on a host copy of the repository.
    """

    image: str
    repo_path: str = "/testbed"
    env: dict[str, str] = field(default_factory=dict)  # e.g. a PATH that puts the image's test env first


def agent_workspace(benchmark, instance_id: str) -> InImageWorkspace | None:
    """The optional capability: where the agent must run for this task (None = on a host copy)."""
    offer = getattr(benchmark, "agent_workspace", None)
    return offer(instance_id) if callable(offer) else None


@dataclass
class GradeResult:
    instance_id: str
    outcome: str  # one of OUTCOMES
    report: dict  # SWE-bench per-instance report: {instance_id: {resolved, tests_status, ...}}
    test_log: str = ""
    stripped_files: list[str] = field(default_factory=list)  # test files the model patch touched
    duration_s: float = 0.0
    reason: str = ""  # why the outcome is error/timeout/empty_patch (or a cross-check note); "" otherwise


@runtime_checkable
class Benchmark(Protocol):
    name: str

    def subsets(self) -> dict[str, list[str]]:
        """Named subsets (e.g. small, medium, heldout) -> instance ids, in a fixed order."""

    def task_ids(self, subset: str | None = None) -> list[str]: ...

    def task_info(self, instance_id: str) -> TaskInfo: ...

    def prepare_workspace(self, instance_id: str, dest: Path) -> TaskInfo:
        """Make `dest` a git repository at the task's base commit (HEAD), with no hidden files."""

    def grade(
        self,
        instance_id: str,
        model_patch: str,
        *,
        backend: str,
        timeout: float,
        log_dir: Path | None = None,
    ) -> GradeResult:
        """Grade a patch against the base commit in a fresh sandbox of the given backend."""

    # Optional (not part of the protocol check): benchmarks whose repositories live in images add
    #     def agent_workspace(self, instance_id: str) -> InImageWorkspace | None
    # and benchmarks that need compilers outside /usr (polyglot) have
    #     toolchains: list[Path]   # given to the agent's sandbox as SandboxSpec.toolchains
