"""The Huxley-Gödel Machine's policy (Wang, Piękos, ... Schmidhuber 2025, arXiv:2510.21614), as pure
functions of the tree's evaluation record and a seeded RNG. The real loop (dgm/hgm_search.py) and the
simulator (dgm/simulate.py) both call these; neither has its own copy.

HGM grows a tree of self-modified agents like DGM, but decides each step separately:

* expand or evaluate?  Expand when N^α ≥ (tree size − 1) + pending expansions, where N is the number
  of task evaluations the search has made so far (α = 0.6 in the official code): the tree grows
  like N^α, as in infinite-armed bandits (UCB-AIR); otherwise evaluate.
* which node to expand?  Thompson sampling on each node's *clade-metaproductivity* (CMP) estimate:
  the successes and failures of every task evaluation in the node's clade (the node and all its
  descendants) are pooled into Beta(τ(1 + s_clade), τ(1 + f_clade)); the node with the highest draw
  is expanded. Only nodes with at least one evaluation and at least one success are expanded.
* which node to evaluate?  Thompson sampling on each node's *own* record, Beta(τ(1 + s), τ(1 + f)),
  among nodes that still have tasks they were not evaluated on; one task, drawn uniformly from those.
* τ (temperature): 1, or, with cooling, (B / (B − N))^β for a budget of B evaluations, which sharpens
  the posteriors as the budget runs out (the official code has it, off by default).

A child enters the tree unevaluated; it is evaluated one task at a time by later evaluation steps.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Mapping, Sequence

EXPAND, EVALUATE = "expand", "evaluate"


@dataclass(frozen=True)
class HGMParams:
    alpha: float = 0.6  # tree size grows like N^alpha
    cool_down: bool = False  # temperature tau rises as the evaluation budget runs out
    cooling_beta: float = 1.0  # tau = (B / (B - N))^beta
    max_task_evals: int | None = None  # B: the search's budget of task evaluations


@dataclass(frozen=True)
class TreeNode:
    """One node of the search tree as HGM sees it: its lineage and its own task outcomes."""

    node_id: str
    parent_id: str | None
    successes: int
    failures: int
    expandable: bool = True  # admitted as a parent (compiled, and not rejected by admission)
    untried_tasks: int = 0  # tasks of the pool it was not evaluated on yet

    @property
    def evaluations(self) -> int:
        return self.successes + self.failures


@dataclass(frozen=True)
class Action:
    kind: str  # EXPAND | EVALUATE
    node_id: str
    tau: float  # the temperature the draw used
    draws: dict[str, float]  # each candidate's Thompson draw (recorded in the events log)
    counts: dict[str, tuple[int, int]]  # each candidate's (successes, failures) behind its posterior


def clade_counts(nodes: Sequence[TreeNode]) -> dict[str, tuple[int, int]]:
    """(successes, failures) summed over each node's clade: the node itself and all its descendants."""
    totals = {n.node_id: [n.successes, n.failures] for n in nodes}
    parent = {n.node_id: n.parent_id for n in nodes}
    for n in nodes:  # add each node's own record to every ancestor's clade
        ancestor = n.parent_id
        while ancestor in totals:
            totals[ancestor][0] += n.successes
            totals[ancestor][1] += n.failures
            ancestor = parent[ancestor]
    return {node_id: (s, f) for node_id, (s, f) in totals.items()}


def temperature(evaluations: int, params: HGMParams) -> float:
    """tau: 1 without cooling; else (B / (B - N))^beta, capped (at N = B the official code uses 10000)."""
    if not params.cool_down or not params.max_task_evals:
        return 1.0
    left = params.max_task_evals - evaluations
    return 10_000.0 if left <= 0 else (params.max_task_evals / left) ** params.cooling_beta


def thompson_draws(counts: Mapping[str, tuple[int, int]], rng: random.Random, tau: float = 1.0) -> dict[str, float]:
    """One draw from Beta(tau(1 + s), tau(1 + f)) per candidate, in the candidates' order."""
    return {node_id: rng.betavariate(tau * (1 + s), tau * (1 + f)) for node_id, (s, f) in counts.items()}


def thompson_pick(draws: Mapping[str, float]) -> str:
    return max(draws, key=lambda n: draws[n])  # max keeps the first of equal draws


def should_expand(evaluations: int, tree_size: int, pending_expansions: int, alpha: float) -> bool:
    """UCB-AIR's rule: grow the tree while N^alpha >= children in the tree (+ expansions under way)."""
    return evaluations ** alpha >= tree_size - 1 + pending_expansions


def expansion_candidates(nodes: Sequence[TreeNode]) -> list[TreeNode]:
    """Nodes that may be expanded: admitted, evaluated at least once, with at least one success."""
    return [n for n in nodes if n.expandable and n.evaluations > 0 and n.successes > 0]


def evaluation_candidates(nodes: Sequence[TreeNode]) -> list[TreeNode]:
    return [n for n in nodes if n.untried_tasks > 0]


def next_action(nodes: Sequence[TreeNode], evaluations: int, rng: random.Random, params: HGMParams,
                pending_expansions: int = 0) -> Action | None:
    """HGM's decision for one step; None when nothing can be expanded or evaluated.

    When the rule says expand but no node qualifies (every evaluated node has only failures), the step
    evaluates instead (the official code would fail on an empty candidate list); when it says evaluate
    but every node has been evaluated on every task, the step expands.
    """
    tau = temperature(evaluations, params)
    expand = should_expand(evaluations, len(nodes), pending_expansions, params.alpha)
    to_expand, to_evaluate = expansion_candidates(nodes), evaluation_candidates(nodes)
    if (expand and to_expand) or (to_expand and not to_evaluate):
        counts = clade_counts(nodes)
        counts = {n.node_id: counts[n.node_id] for n in to_expand}
        kind = EXPAND
    elif to_evaluate:
        counts = {n.node_id: (n.successes, n.failures) for n in to_evaluate}
        kind = EVALUATE
    else:
        return None
    draws = thompson_draws(counts, rng, tau)
    return Action(kind, thompson_pick(draws), tau, draws, counts)


def pick_task(untried: Sequence[str], rng: random.Random) -> str:
    """The task of an evaluation step: uniform over the node's untried tasks (official: eval_random_level 1)."""
    return rng.choice(list(untried))
