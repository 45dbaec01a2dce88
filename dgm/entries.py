"""What a parent should work on next (DGM paper Appendix A.2): its "entry".

SWE-bench variant, evaluated in this order, each RNG draw made only when its condition holds:

1. ``solve_empty_patches`` with probability 0.25 if ≥ 10% of the parent's evaluated tasks ended in an
   empty patch;
2. else ``solve_stochasticity`` with probability 0.25;
3. else ``solve_contextlength`` with probability 0.25 if the parent ran out of context twice in a row;
4. else one ``unresolved`` task, uniformly at random (as the official code: tasks that ended in an
   empty patch, an error or a timeout are not drawn; the empty patches have their own entry).

If the parent has no unresolved task, the entry falls back to ``solve_stochasticity`` (the official
code would crash on an empty choice). Polyglot variant (the official code's): a random unresolved or
empty-patch task, or any evaluated task if there is none; the diagnosis then picks its prompt
(`polyglot_prompt_kind`): stochasticity with probability 0.25, else empty patch if the task ended in
one, else the task's failure.

"Ran out of context twice in a row" is read from structured trajectories (step errors and exit
statuses), never by grepping text: two consecutive steps of one trajectory with the error
``context_length_exceeded``, or two consecutive evaluated tasks that both ended in ``context_overflow``
— consecutive in evaluation order (the order the tasks were started), which is the order of `records`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Iterable, Sequence

from dgm.bench.base import OUTCOMES
from dgm.config import EntriesSection

SPECIAL_ENTRIES = ("solve_empty_patches", "solve_stochasticity", "solve_contextlength")
CONTEXT_ERROR = "context_length_exceeded"


@dataclass(frozen=True)
class TaskRecord:
    """One evaluated task of the parent, in evaluation order."""

    task_id: str
    outcome: str
    exit_status: str | None = None  # the agent's own exit status from trajectory.json
    overflow_streak: int = 0  # longest run of consecutive context-overflow steps


def overflow_streak(trajectory: dict | None) -> int:
    best = current = 0
    for step in (trajectory or {}).get("steps", []):
        current = current + 1 if step.get("error") == CONTEXT_ERROR else 0
        best = max(best, current)
    return best


def ran_out_of_context_twice(records: Sequence[TaskRecord]) -> bool:
    if any(r.overflow_streak >= 2 for r in records):
        return True
    statuses = [r.exit_status for r in records]
    return any(a == b == "context_overflow" for a, b in zip(statuses, statuses[1:]))


def with_outcome(records: Iterable[TaskRecord], *outcomes: str) -> list[str]:
    """Task ids (once each, sorted, so a draw does not depend on evaluation order) with these outcomes."""
    return sorted({r.task_id for r in records if r.outcome in outcomes})


def choose_entry(records: Sequence[TaskRecord], rng: random.Random, rules: EntriesSection) -> str:
    if not records:
        raise ValueError("cannot choose an entry for a parent with no evaluated tasks")
    if rules.variant == "polyglot":
        candidates = with_outcome(records, "unresolved", "empty_patch") or with_outcome(records, *OUTCOMES)
        return rng.choice(candidates)
    empty = sum(r.outcome == "empty_patch" for r in records)
    if empty >= rules.empty_patch_threshold * len(records) and empty > 0 and rng.random() < rules.empty_patch_probability:
        return "solve_empty_patches"
    if rng.random() < rules.stochasticity_probability:
        return "solve_stochasticity"
    if ran_out_of_context_twice(records) and rng.random() < rules.context_length_probability:
        return "solve_contextlength"
    unresolved = with_outcome(records, "unresolved")
    return rng.choice(unresolved) if unresolved else "solve_stochasticity"


def polyglot_prompt_kind(outcome: str, rng: random.Random, rules: EntriesSection) -> str:
    """Which Polyglot diagnosis prompt a chosen task gets: stochasticity, empty patch or the task's failure."""
    if rng.random() < rules.stochasticity_probability:
        return "solve_stochasticity"
    return "solve_empty_patches" if outcome == "empty_patch" else "task"
