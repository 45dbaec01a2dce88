"""Entry rules: conditions, probabilities (chi-square over 10,000 draws), structured overflow detection."""

import random
from collections import Counter

import pytest

from dgm.config import EntriesSection
from dgm.entries import TaskRecord, choose_entry, overflow_streak, ran_out_of_context_twice

RULES = EntriesSection()
CHI2_DF3_P001 = 16.266  # critical value, 3 degrees of freedom, p = 0.001


def _records(n_resolved=5, n_unresolved=3, n_empty=2, overflow=False):
    recs = [TaskRecord(f"r{i}", "resolved") for i in range(n_resolved)]
    recs += [TaskRecord(f"u{i}", "unresolved") for i in range(n_unresolved)]
    recs += [TaskRecord(f"e{i}", "empty_patch") for i in range(n_empty)]
    if overflow:
        recs += [TaskRecord("o1", "unresolved", "context_overflow"), TaskRecord("o2", "unresolved", "context_overflow")]
    return recs


def _chi_square(counts: Counter, expected: dict[str, float], n: int) -> float:
    return sum((counts.get(k, 0) - p * n) ** 2 / (p * n) for k, p in expected.items())


def test_marginals_match_the_stated_probabilities():
    recs = _records(overflow=True)  # empty >= 10%, overflow twice in a row
    rng, n = random.Random(1), 10_000
    counts = Counter()
    for _ in range(n):
        e = choose_entry(recs, rng, RULES)
        counts[e if e.startswith("solve_") else "task"] += 1
    expected = {
        "solve_empty_patches": 0.25,
        "solve_stochasticity": 0.75 * 0.25,
        "solve_contextlength": 0.75 * 0.75 * 0.25,
        "task": 0.75 ** 3,
    }
    assert _chi_square(counts, expected, n) < CHI2_DF3_P001


def test_conditions_gate_the_special_entries():
    recs = _records(n_empty=0)  # no empty patches, no overflow
    rng = random.Random(3)
    seen = Counter(choose_entry(recs, rng, RULES) for _ in range(2000))
    assert "solve_empty_patches" not in seen and "solve_contextlength" not in seen
    assert set(seen) - {"solve_stochasticity"} <= {"u0", "u1", "u2"}


def test_empty_patch_threshold_edge():
    # exactly 10% empty qualifies; just under does not
    at = [TaskRecord(f"r{i}", "resolved") for i in range(9)] + [TaskRecord("e", "empty_patch")]
    under = [TaskRecord(f"r{i}", "resolved") for i in range(10)] + [TaskRecord("e", "empty_patch")]
    draws = lambda recs: {choose_entry(recs, random.Random(s), RULES) for s in range(300)}
    assert "solve_empty_patches" in draws(at)
    assert "solve_empty_patches" not in draws(under)


def test_no_failed_task_falls_back_to_stochasticity():
    recs = [TaskRecord("r1", "resolved"), TaskRecord("r2", "resolved")]
    assert {choose_entry(recs, random.Random(s), RULES) for s in range(100)} == {"solve_stochasticity"}


def test_polyglot_variant_picks_failed_tasks_only():
    rules = EntriesSection(variant="polyglot")
    picks = {choose_entry(_records(), random.Random(s), rules) for s in range(200)}
    assert picks == {"u0", "u1", "u2", "e0", "e1"}


def test_overflow_is_read_from_structured_steps():
    traj = {"steps": [{"error": None}, {"error": "context_length_exceeded"}, {"error": "context_length_exceeded"}]}
    assert overflow_streak(traj) == 2
    assert overflow_streak({"steps": [{"error": "context_length_exceeded"}, {}, {"error": "context_length_exceeded"}]}) == 1
    assert ran_out_of_context_twice([TaskRecord("a", "unresolved", overflow_streak=2)])
    # non-consecutive overflowing tasks do not count
    spaced = [TaskRecord("a", "unresolved", "context_overflow"), TaskRecord("b", "resolved", "submitted"),
              TaskRecord("c", "unresolved", "context_overflow")]
    assert not ran_out_of_context_twice(spaced)


def test_same_seed_same_entry_sequence():
    recs = _records(overflow=True)
    a = [choose_entry(recs, random.Random(9), RULES) for _ in range(5)]
    b = [choose_entry(recs, random.Random(9), RULES) for _ in range(5)]
    assert a == b


def test_no_records_is_an_error():
    with pytest.raises(ValueError, match="no evaluated tasks"):
        choose_entry([], random.Random(0), RULES)


def test_a_random_task_entry_is_an_unresolved_task_only():
    """As the official code: empty patches have their own entry; errors and timeouts are never drawn."""
    recs = [TaskRecord("r", "resolved"), TaskRecord("u1", "unresolved"), TaskRecord("u2", "unresolved"),
            TaskRecord("e", "empty_patch"), TaskRecord("x", "error"), TaskRecord("t", "timeout")]
    picks = {choose_entry(recs, random.Random(s), RULES) for s in range(400)}
    assert picks - set(SPECIALS) == {"u1", "u2"}
    only_errors = [TaskRecord("r", "resolved"), TaskRecord("x", "error"), TaskRecord("t", "timeout")]
    assert {choose_entry(only_errors, random.Random(s), RULES) for s in range(100)} == {"solve_stochasticity"}


def test_polyglot_draws_unresolved_or_empty_tasks_and_falls_back_to_any():
    rules = EntriesSection(variant="polyglot")
    recs = [TaskRecord("r", "resolved"), TaskRecord("u", "unresolved"), TaskRecord("e", "empty_patch"),
            TaskRecord("x", "error"), TaskRecord("t", "timeout")]
    assert {choose_entry(recs, random.Random(s), rules) for s in range(200)} == {"u", "e"}
    solved = [TaskRecord("r1", "resolved"), TaskRecord("r2", "resolved")]
    assert {choose_entry(solved, random.Random(s), rules) for s in range(100)} == {"r1", "r2"}


SPECIALS = ("solve_empty_patches", "solve_stochasticity", "solve_contextlength")


def test_running_out_of_context_twice_follows_evaluation_order(tmp_path):
    """Two overflowing tasks adjacent by id but not in evaluation order do not count, and the reverse does."""
    from dgm.config import Config
    from dgm.loop import DarwinGodelMachine, RunContext
    from dgm.store import Node, RunStore, TaskResult

    store = RunStore.create(tmp_path / "run", "r", "{}", scripted=True)
    machine = DarwinGodelMachine(RunContext(config=Config(run={"seed": 0}), store=store, benchmark=None,
                                            evaluator=None, policy=None, llm=None, initial_agent=tmp_path))

    def publish(node_id, order):
        node = Node(node_id, None, 0, f"0:{node_id}", "evaluated", True, True)
        results = [TaskResult(task, 1, outcome, 1.0, exit_status) for task, outcome, exit_status in order]
        store.finish_attempt(node, results)
        return machine._evidence(node_id, tmp_path).records

    overflow, fine = ("unresolved", "context_overflow"), ("resolved", "submitted")
    apart = publish("apart", [("t1", *overflow), ("t3", *fine), ("t2", *overflow)])  # t1, t2 adjacent by id only
    assert [r.task_id for r in apart] == ["t1", "t3", "t2"]
    assert not ran_out_of_context_twice(apart)
    together = publish("together", [("t1", *overflow), ("t3", *overflow), ("t2", *fine)])  # t1, t3 in a row
    assert ran_out_of_context_twice(together)
