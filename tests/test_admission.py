"""Admission rules (dgm/admission.py), paired_test's one-sided exact McNemar in particular."""

import pytest

from dgm.admission import AdmissionRule, admit, paired_verdict, paired_verdict_settled
from dgm.analysis.stats import mcnemar_exact, mcnemar_exact_one_sided

PAIRED = AdmissionRule("paired_test", alpha=0.05)


def outcomes(solved: str) -> dict[str, bool]:
    return {f"t{i}": c == "1" for i, c in enumerate(solved)}


def test_one_sided_p_is_the_upper_binomial_tail():
    assert mcnemar_exact_one_sided(5, 0) == pytest.approx(1 / 32)
    assert mcnemar_exact_one_sided(4, 0) == pytest.approx(1 / 16)
    assert mcnemar_exact_one_sided(6, 1) == pytest.approx(8 / 128)
    assert mcnemar_exact_one_sided(0, 5) == 1.0
    assert mcnemar_exact_one_sided(0, 0) == 1.0
    # Half the two-sided p in the direction of the effect.
    assert mcnemar_exact_one_sided(7, 1) == pytest.approx(mcnemar_exact(7, 1) / 2)


def test_a_clearly_worse_child_is_refused():
    parent, child = outcomes("1111100000"), outcomes("0000000000")  # parent alone solved 5: p = 1/32
    verdict = admit(PAIRED, compiled=True, score=0.0, child=child, parent=parent)
    assert not verdict.admitted
    assert verdict.p_value == pytest.approx(1 / 32)
    assert (verdict.shared, verdict.parent_only, verdict.child_only) == (10, 5, 0)
    assert "significantly worse" in verdict.reason


def test_a_child_not_significantly_worse_is_admitted():
    parent, child = outcomes("1111000000"), outcomes("0000000000")  # 4 to 0: p = 1/16 >= 0.05
    assert admit(PAIRED, compiled=True, score=0.0, child=child, parent=parent).admitted
    better = outcomes("1111111111")
    assert admit(PAIRED, compiled=True, score=1.0, child=better, parent=parent).admitted


def test_only_shared_tasks_are_compared():
    parent = {**outcomes("1111100000"), "extra1": True, "extra2": True}  # the parent's later stage
    child = outcomes("1111100000")
    verdict = admit(PAIRED, compiled=True, score=0.5, child=child, parent=parent)
    assert verdict.admitted and verdict.shared == 10 and verdict.parent_only == 0


def test_alpha_is_the_threshold():
    parent, child = outcomes("1111000000"), outcomes("0000000000")
    assert not admit(AdmissionRule("paired_test", alpha=0.1), compiled=True, score=0.0, child=child,
                     parent=parent).admitted


def test_not_compiled_is_never_admitted_and_the_initial_agent_has_no_parent():
    assert not admit(PAIRED, compiled=False, score=1.0, child=outcomes("1"), parent=outcomes("0")).admitted
    assert admit(PAIRED, compiled=True, score=0.0, child=outcomes("0"), parent=None).admitted


def test_keep_all_and_keep_better_unchanged():
    assert admit(AdmissionRule("keep_all"), compiled=True, score=0.0).admitted
    keep_better = AdmissionRule("keep_better", leeway=0.1)
    assert admit(keep_better, compiled=True, score=0.3, initial_score=0.4).admitted  # 3/10 passes 0.4 - 0.1
    assert not admit(keep_better, compiled=True, score=0.2, initial_score=0.4).admitted


def test_unknown_method_is_named():
    with pytest.raises(ValueError, match="admission.method: unknown 'vote'"):
        admit(AdmissionRule("vote"), compiled=True, score=0.5)


def test_settled_means_every_outcome_of_the_ungraded_runs_gives_the_same_verdict():
    """Checked against all 2^n completions, on random parents, children and alphas."""
    import itertools
    import random

    rng = random.Random(7)
    settled_seen = {True: 0, False: 0}
    for _ in range(300):
        tasks = [f"t{i}" for i in range(rng.randint(4, 14))]
        parent = {t: rng.random() < 0.7 for t in tasks if rng.random() < 0.9}  # the parent may miss some
        ungraded = rng.sample(tasks, rng.randint(0, min(6, len(tasks))))
        child = {t: rng.random() < 0.4 for t in tasks if t not in ungraded}
        alpha = rng.choice([0.05, 0.2, 0.5])
        verdicts = {paired_verdict(alpha, {**child, **dict(zip(ungraded, outcomes))}, parent).admitted
                    for outcomes in itertools.product([False, True], repeat=len(ungraded))}
        settled = paired_verdict_settled(alpha, child, parent, ungraded)
        assert settled == (len(verdicts) == 1), (parent, child, ungraded, alpha)
        settled_seen[settled] += 1
    assert min(settled_seen.values()) > 30  # both answers were exercised

