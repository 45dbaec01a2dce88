"""Plain records read from and written to the run store."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TaskResult:
    task_id: str
    stage: int
    outcome: str  # resolved | unresolved | empty_patch | error | timeout
    duration_s: float
    agent_exit: str | None = None
    eval_index: int = 0


@dataclass
class StageScore:
    stage: int
    resolved: int
    total: int

    @property
    def score(self) -> float:
        return self.resolved / self.total if self.total else 0.0


@dataclass
class Node:
    node_id: str
    parent_id: str | None
    generation: int
    attempt_id: str
    status: str  # evaluated | no_patch | not_compiled | failed | budget_exhausted
    compiled: bool  # ours: own tests pass and >= 1 non-empty patch on stage 1
    admitted: bool
    entry: str | None = None
    score: float | None = None
    tasks_evaluated: int = 0
    commit_sha: str | None = None
    modifier_id: str | None = None
    error: str | None = None
    created_at: str = ""
    finished_at: str | None = None
    stages: list[StageScore] = field(default_factory=list)
    paper_compiled: bool | None = None  # the official code's rule; None: not evaluated on tasks
