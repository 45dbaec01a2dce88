"""HGM's policy (dgm/hgm.py): clade-metaproductivity counts, Beta posteriors, Thompson sampling, and
the expand-or-evaluate rule, checked against hand-computed values."""

import random

import pytest

from dgm.hgm import (EVALUATE, EXPAND, HGMParams, TreeNode, clade_counts, expansion_candidates, next_action,
                     pick_task, should_expand, temperature, thompson_draws, thompson_pick)

#        root (3/5)
#        /        \
#   a (0/2)      b (4/4)
#      |
#   c (2/3)
TREE = [TreeNode("root", None, 3, 2), TreeNode("a", "root", 0, 2), TreeNode("b", "root", 4, 0),
        TreeNode("c", "a", 2, 1)]


def test_clade_counts_pool_every_descendants_outcomes():
    counts = clade_counts(TREE)
    assert counts["root"] == (3 + 0 + 4 + 2, 2 + 2 + 0 + 1)
    assert counts["a"] == (0 + 2, 2 + 1)  # a's own record is all failures, its clade's is not
    assert counts["b"] == (4, 0) and counts["c"] == (2, 1)


def test_clade_counts_do_not_depend_on_node_order():
    assert clade_counts(list(reversed(TREE))) == clade_counts(TREE)


def test_posterior_update_is_beta_one_plus_successes_one_plus_failures():
    # Thompson draws are Beta(1 + s, 1 + f): with the same RNG state, betavariate gives the same number.
    draws = thompson_draws({"x": (3, 1)}, random.Random(7))
    assert draws["x"] == random.Random(7).betavariate(4, 2)
    hot = thompson_draws({"x": (3, 1)}, random.Random(7), tau=2.0)
    assert hot["x"] == random.Random(7).betavariate(8, 4)
    # Many draws: the mean of Beta(4, 2) is 2/3.
    rng = random.Random(1)
    mean = sum(thompson_draws({"x": (3, 1)}, rng)["x"] for _ in range(4000)) / 4000
    assert mean == pytest.approx(2 / 3, abs=0.02)


def test_thompson_sampling_is_deterministic_under_a_seed():
    nodes = TREE + [TreeNode("d", "b", 1, 1, untried_tasks=3)]
    picks = lambda seed: [next_action(nodes, n, random.Random(seed), HGMParams()).node_id for n in range(1, 40)]
    assert picks(5) == picks(5)
    assert len({tuple(picks(s)) for s in range(6)}) > 1  # and the seed matters


def test_thompson_prefers_the_better_posterior_in_proportion():
    rng = random.Random(3)
    wins = sum(thompson_pick(thompson_draws({"good": (8, 2), "bad": (2, 8)}, rng)) == "good" for _ in range(2000))
    assert wins > 1950


def test_expand_rule_is_n_to_the_alpha_against_tree_children():
    assert should_expand(evaluations=0, tree_size=1, pending_expansions=0, alpha=0.6)  # 0 >= 0: the root expands
    assert not should_expand(evaluations=1, tree_size=3, pending_expansions=0, alpha=0.6)  # 1 < 2 children
    assert should_expand(evaluations=4, tree_size=3, pending_expansions=0, alpha=0.5)  # 2 >= 2
    assert not should_expand(evaluations=4, tree_size=3, pending_expansions=1, alpha=0.5)  # 2 < 2 + 1 under way


def test_only_admitted_nodes_with_a_success_are_expanded():
    nodes = TREE + [TreeNode("new", "b", 0, 0), TreeNode("refused", "b", 5, 0, expandable=False)]
    assert [n.node_id for n in expansion_candidates(nodes)] == ["root", "b", "c"]


def test_expansion_samples_clade_posteriors_evaluation_samples_own_records():
    nodes = [TreeNode("root", None, 3, 2, untried_tasks=5), TreeNode("a", "root", 0, 2, untried_tasks=8),
             TreeNode("c", "a", 2, 1, untried_tasks=7)]
    expand = next_action(nodes, evaluations=100, rng=random.Random(0), params=HGMParams())
    assert expand.kind == EXPAND
    assert expand.counts == {"root": (5, 5), "c": (2, 1)}  # a has no success of its own: not a candidate
    evaluate = next_action(nodes, evaluations=1, rng=random.Random(0), params=HGMParams())
    assert evaluate.kind == EVALUATE
    assert evaluate.counts == {"root": (3, 2), "a": (0, 2), "c": (2, 1)}


def test_falls_back_when_the_rule_has_no_candidate():
    failing = [TreeNode("root", None, 0, 3, untried_tasks=2)]
    assert next_action(failing, 50, random.Random(0), HGMParams()).kind == EVALUATE  # nothing to expand
    exhausted = [TreeNode("root", None, 2, 3, untried_tasks=0), TreeNode("a", "root", 1, 0, untried_tasks=0)]
    assert next_action(exhausted, 0, random.Random(0), HGMParams()).kind == EXPAND  # nothing left to evaluate
    assert next_action([TreeNode("root", None, 0, 3)], 5, random.Random(0), HGMParams()) is None


def test_cooling_raises_the_temperature_as_the_budget_runs_out():
    params = HGMParams(cool_down=True, max_task_evals=100, cooling_beta=1.0)
    assert temperature(0, params) == 1.0
    assert temperature(50, params) == 2.0
    assert temperature(100, params) == 10_000.0
    assert temperature(50, HGMParams()) == 1.0  # off by default, as in the official code


def test_pick_task_is_uniform_over_untried_tasks_and_seeded():
    tasks = ["t1", "t2", "t3"]
    assert pick_task(tasks, random.Random(4)) == pick_task(tasks, random.Random(4))
    seen = {pick_task(tasks, random.Random(s)) for s in range(50)}
    assert seen == set(tasks)
