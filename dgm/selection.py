"""Parent selection (DGM paper §3, Appendix A.2): pure functions of the archive state and a seeded RNG.

``parent_weights`` turns the archive into selection probabilities:

* ``score_child_prop`` (default): w_i = sigmoid(λ·(α_i − α0)) · 1 / (1 + n_i), where α_i is the node's
  score and n_i the number of its children admitted to the archive.
* ``score_prop``: w_i = sigmoid(λ·(α_i − α0)).
* ``random``: uniform over the archive.
* ``best`` (the "greedy" ablation): all mass on the highest score. Ties go to the node that entered the
  archive first. (The official code sorts ascending and so picks the *worst* node; we do not.)
* ``latest`` (the "w/o open-ended exploration" ablation): all mass on the newest admitted node.

Archive order is the insertion order of ``scores`` (oldest first); ``best`` and ``latest`` rely on it.
"""

from __future__ import annotations

import math
import random
from typing import Mapping

METHODS = ("score_child_prop", "score_prop", "random", "best", "latest")


class SelectionError(ValueError):
    pass


def sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def parent_weights(
    scores: Mapping[str, float],
    children: Mapping[str, int],
    method: str = "score_child_prop",
    *,
    sharpness: float = 10.0,
    midpoint: float = 0.5,
    exclude_perfect: bool = False,
) -> dict[str, float]:
    """Normalised selection probabilities over the eligible archive nodes."""
    if method not in METHODS:
        raise SelectionError(f"unknown selection method {method!r}; choose one of {', '.join(METHODS)}")
    eligible = {n: s for n, s in scores.items() if not (exclude_perfect and s >= 1.0)}
    if not eligible:
        raise SelectionError("no eligible parent in the archive")
    if method == "best":
        winner = max(eligible, key=lambda n: eligible[n])  # max keeps the first of equals: oldest wins ties
        raw = {n: float(n == winner) for n in eligible}
    elif method == "latest":
        newest = list(eligible)[-1]
        raw = {n: float(n == newest) for n in eligible}
    elif method == "random":
        raw = {n: 1.0 for n in eligible}
    else:
        raw = {n: sigmoid(sharpness * (s - midpoint)) for n, s in eligible.items()}
        if method == "score_child_prop":
            raw = {n: w / (1 + children.get(n, 0)) for n, w in raw.items()}
    total = sum(raw.values())
    return {n: w / total for n, w in raw.items()}


def sample_parents(weights: Mapping[str, float], k: int, rng: random.Random) -> list[str]:
    """Draw k parents with replacement (paper: the same node may be chosen several times)."""
    nodes = list(weights)
    return rng.choices(nodes, weights=[weights[n] for n in nodes], k=k)
