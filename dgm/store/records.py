"""Plain records read from and written to the run store."""

from __future__ import annotations

from dataclasses import dataclass, field

PENDING_APPROVAL, APPROVED, REJECTED = "pending_approval", "approved", "rejected"


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
    graded: int | None = None  # adaptive evaluation stopped the stage: task runs counted (None: all of total)

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
    tasks_skipped: int = 0  # task runs adaptive evaluation never started (dgm/adaptive.py)
    approval: str | None = None  # human gate: pending_approval | approved | rejected; None: no gate
    approval_reason: str | None = None

    @property
    def in_archive(self) -> bool:
        """Eligible as a parent: admitted, and approved where a human gate holds it."""
        return self.admitted and self.approval not in (PENDING_APPROVAL, REJECTED)
