"""Statistics against known values (Wilson 95% for 12/60; exact McNemar p from discordant counts)."""

import pytest

from dgm.analysis.stats import compare_outcomes, mcnemar_exact, wilson_interval


def test_wilson_12_of_60_matches_published_value():
    lo, hi = wilson_interval(12, 60)
    assert lo == pytest.approx(0.1183, abs=1e-4)
    assert hi == pytest.approx(0.3178, abs=1e-4)


def test_wilson_edges_are_exact_and_bad_counts_named():
    assert wilson_interval(0, 10)[0] == 0.0
    assert wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(100, 200) == pytest.approx((0.4314, 0.5686), abs=1e-4)
    with pytest.raises(ValueError, match="11/10"):
        wilson_interval(11, 10)


@pytest.mark.parametrize("b,c,p", [(5, 1, 0.21875), (10, 2, 0.03857421875), (3, 3, 1.0), (0, 7, 0.015625), (0, 0, 1.0)])
def test_mcnemar_exact_known_p(b, c, p):
    assert mcnemar_exact(b, c) == pytest.approx(p)
    assert mcnemar_exact(c, b) == pytest.approx(p)


def test_compare_outcomes_uses_only_shared_tasks():
    a = {"t1": True, "t2": True, "t3": False, "t4": True, "only_a": True}
    b = {"t1": True, "t2": False, "t3": True, "t4": False, "only_b": False}
    r = compare_outcomes(a, b)
    assert (r.shared, r.both, r.only_a, r.only_b, r.neither) == (4, 1, 2, 1, 0)
    assert r.p_value == pytest.approx(1.0)
