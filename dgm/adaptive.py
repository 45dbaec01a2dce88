"""Adaptive stage evaluation (`evaluation.adaptive: true`): stop a stage once its outcome is decided.

A stage that has a next stage decides one thing: whether the node enters that stage (its cumulative
score >= the next stage's threshold, and >= the second-best score where `require_second_best`).
Tasks are graded in the stage's fixed order. After each graded task the evaluator asks
`stage_decision` about the longest completed prefix (so the answer depends only on the outcomes in
that order, never on which parallel task finished first):

- STOP: the entry is out of reach even if every remaining task were resolved, *and* nothing else
  the stage's full score decides can still change: the other score bars (`keep_better`'s
  "initial − leeway") are on a known side, on stage 1 a non-empty patch was already made
  (admission's "compiled"), and `paired_test`'s verdict is the same whatever the remaining tasks give
  (the evaluator asks `admission.paired_verdict_settled`, which needs task ids this rule does not
  see). The stage stops; its remaining tasks are never started.
- ENTRY_GUARANTEED: the entry is reached whatever the rest does. The stage still grades every task,
  because a node's score is over all tasks of the stages it entered (the paper's denominators): these
  tasks would run in the next stage anyway, so stopping here saves nothing.
- CONTINUE: otherwise.

So every decision the full evaluation makes (next-stage entry, compiled, admission) comes out the
same; what differs is the score of a stopped stage, recorded as resolved / *all* tasks of the
stage (`StageScore.total` unchanged, `StageScore.graded` the tasks counted): ungraded tasks count as
unresolved, like crashed ones. It is a lower bound of the full-stage score, which is itself known to
be below the next stage's threshold. Selection uses this bound (see docs/algorithm.md).

The function is pure (plain numbers in, a verdict out), so a simulator can schedule evaluations
with exactly the rule the loop uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

CONTINUE = "continue"
STOP = "stop"
ENTRY_GUARANTEED = "entry_guaranteed"


@dataclass(frozen=True)
class StageRule:
    """What a stage's full score decides."""

    entry_bar: float  # the next stage's threshold (max with the second-best score where required)
    other_bars: tuple[float, ...] = ()  # scores other decisions compare against (keep_better's bar)
    needs_patch: bool = False  # stage 1: admission needs one non-empty patch, so stop only once one is seen


def entry_bar(threshold: float, require_second_best: bool, second_best: float | None) -> float:
    """The score a node needs to enter a stage (the rule of `Evaluator.may_enter`)."""
    if require_second_best and second_best is not None:
        return max(threshold, second_best)
    return threshold


def stage_decision(*, resolved_before: int, total_before: int, graded: Sequence[bool], stage_size: int,
                   rule: StageRule, patch_seen: bool = True) -> str:
    """CONTINUE, STOP or ENTRY_GUARANTEED for a stage whose first len(graded) tasks (in order) are graded.

    resolved_before/total_before: the cumulative counts of the earlier stages; graded: resolved or not,
    per graded task of this stage; stage_size: the stage's task runs; patch_seen: a graded task of this
    stage made a non-empty patch."""
    resolved = resolved_before + sum(graded)
    total = total_before + stage_size
    remaining = stage_size - len(graded)
    low, high = resolved / total, (resolved + remaining) / total
    if low >= rule.entry_bar:
        return ENTRY_GUARANTEED
    decided = all(low >= bar or high < bar for bar in rule.other_bars)
    if high < rule.entry_bar and decided and (patch_seen or not rule.needs_patch):
        return STOP
    return CONTINUE
