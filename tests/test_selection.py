"""Parent selection follows the paper's formula exactly."""

import math
import random

import pytest

from dgm.selection import SelectionError, parent_weights, sample_parents


def test_score_child_prop_matches_hand_computed_values():
    # sigmoid(10*(0.5-0.5))/(1+1) = 0.25; sigmoid(2)/1 = 0.8807971; sigmoid(-3)/3 = 0.0158086
    w = parent_weights({"a": 0.5, "b": 0.7, "c": 0.2}, {"a": 1, "b": 0, "c": 2})
    total = 0.25 + 0.8807971 + 0.0158086
    assert w["a"] == pytest.approx(0.25 / total, rel=1e-6)
    assert w["b"] == pytest.approx(0.8807971 / total, rel=1e-6)
    assert w["c"] == pytest.approx(0.0158086 / total, rel=1e-5)


@pytest.mark.parametrize("seed", range(20))
def test_probabilities_match_the_formula_on_random_archives(seed):
    rng = random.Random(seed)
    scores = {f"n{i}": rng.random() for i in range(rng.randint(1, 30))}
    children = {n: rng.randint(0, 5) for n in scores}
    lam, a0 = rng.uniform(1, 20), rng.uniform(0, 1)
    expected = {n: 1 / (1 + math.exp(-lam * (s - a0))) / (1 + children[n]) for n, s in scores.items()}
    total = sum(expected.values())
    got = parent_weights(scores, children, "score_child_prop", sharpness=lam, midpoint=a0)
    assert got == pytest.approx({n: v / total for n, v in expected.items()})
    no_children = parent_weights(scores, children, "score_prop", sharpness=lam, midpoint=a0)
    sig = {n: 1 / (1 + math.exp(-lam * (s - a0))) for n, s in scores.items()}
    assert no_children == pytest.approx({n: v / sum(sig.values()) for n, v in sig.items()})


def test_random_is_uniform():
    assert parent_weights({"a": 0.1, "b": 0.9}, {}, "random") == {"a": 0.5, "b": 0.5}


def test_best_picks_the_highest_score_not_the_lowest():
    w = parent_weights({"a": 0.2, "b": 0.9, "c": 0.4}, {}, "best")
    assert w == {"a": 0.0, "b": 1.0, "c": 0.0}


def test_best_breaks_ties_by_archive_order():
    assert parent_weights({"x": 0.6, "y": 0.6, "z": 0.1}, {}, "best")["x"] == 1.0


def test_latest_picks_the_newest_node():
    assert parent_weights({"old": 0.9, "mid": 0.1, "new": 0.3}, {}, "latest")["new"] == 1.0


def test_exclude_perfect_removes_solved_nodes():
    w = parent_weights({"a": 1.0, "b": 0.3}, {}, "score_prop", exclude_perfect=True)
    assert w == {"b": 1.0}
    with pytest.raises(SelectionError, match="no eligible parent"):
        parent_weights({"a": 1.0}, {}, exclude_perfect=True)


def test_unknown_method_is_named():
    with pytest.raises(SelectionError, match="'fittest'"):
        parent_weights({"a": 0.5}, {}, "fittest")


def test_sampling_is_reproducible_and_with_replacement():
    w = parent_weights({"a": 0.5, "b": 0.5}, {}, "random")
    draws = sample_parents(w, 50, random.Random(7))
    assert draws == sample_parents(w, 50, random.Random(7))
    assert {"a", "b"} == set(draws)
