"""Step 6: may a child become a parent?  Pure functions of its evaluation and its parent's.

* ``keep_all`` (the paper's default): every compiling child.
* ``keep_better``: compiling and score >= the initial agent's score − ``admission.leeway``.
* ``paired_test``: compiling and *not significantly worse than its parent* on the tasks both were
  graded on: exact McNemar test on the discordant tasks (only the parent solved it: b; only the
  child: c), **one-sided**, p = P(X >= b), X ~ Binomial(b + c, 1/2), rejected when p < ``admission.alpha``.
  One-sided because the question is directional: a child better than its parent is welcome anyway, so
  a two-sided test would spend half of alpha on a rejection nobody wants and lose power to catch a
  worse child. Few shared tasks mean little power: on 10 shared tasks a child is rejected when, e.g.,
  the parent alone solved 5 and the child alone none (p = 1/32 < 0.05), not at 4 to 0 (p = 1/16); so on
  stage 1 this rule rejects only clear regressions, by design (a wrongly rejected child is a lost
  stepping stone).

The loop (dgm/loop.py), the HGM search (dgm/hgm_search.py) and the simulator (dgm/simulate.py) all call
``admit``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from dgm.analysis.stats import compare_outcomes, mcnemar_exact_one_sided

METHODS = ("keep_all", "keep_better", "paired_test")
SCORE_TOLERANCE = 1e-9  # 0.4 - 0.1 is 0.30000000000000004 in floats: 3/10 must pass keep_better


@dataclass(frozen=True)
class AdmissionRule:
    method: str = "keep_all"
    leeway: float = 0.1  # keep_better
    alpha: float = 0.05  # paired_test: significance level of "worse than its parent"


@dataclass(frozen=True)
class Verdict:
    admitted: bool
    reason: str
    p_value: float | None = None  # paired_test: one-sided McNemar p of "child worse than parent"
    shared: int | None = None  # paired_test: tasks both were graded on
    parent_only: int | None = None  # ... solved by the parent only
    child_only: int | None = None  # ... solved by the child only


def admit(rule: AdmissionRule, *, compiled: bool, score: float | None, initial_score: float | None = None,
          child: Mapping[str, bool] | None = None, parent: Mapping[str, bool] | None = None) -> Verdict:
    """The admission decision; `child`/`parent` map task id -> resolved (paired_test only)."""
    if rule.method not in METHODS:
        raise ValueError(f"admission.method: unknown {rule.method!r}; choose one of {', '.join(METHODS)}")
    if not compiled:
        return Verdict(False, "did not compile")
    if rule.method == "keep_all":
        return Verdict(True, "compiled")
    if rule.method == "keep_better":
        floor = _keep_better_floor(rule, initial_score)
        ok = (score or 0.0) >= floor - SCORE_TOLERANCE
        return Verdict(ok, f"score {score or 0.0:.3f} {'>=' if ok else '<'} initial - leeway ({floor:.3f})")
    return paired_verdict(rule.alpha, child or {}, parent)


def score_bars(rule: AdmissionRule, initial_score: float | None) -> tuple[float, ...]:
    """Scores the rule compares a child's score against (keep_better: initial - leeway); adaptive
    evaluation stops a stage only once the score is known to be on one side of each."""
    if rule.method != "keep_better":
        return ()
    return (_keep_better_floor(rule, initial_score) - SCORE_TOLERANCE,)


def _keep_better_floor(rule: AdmissionRule, initial_score: float | None) -> float:
    return (initial_score or 0.0) - rule.leeway


def paired_verdict_settled(alpha: float, child: Mapping[str, bool], parent: Mapping[str, bool] | None,
                           ungraded: Iterable[str]) -> bool:
    """Whether the paired verdict is the same however the `ungraded` task runs turn out (adaptive
    evaluation stops a stage only then). The one-sided McNemar p only falls as the child fails more of
    its parent's solved tasks and only rises as it solves more of its parent's failures, so the two
    extremes, every ungraded run failed and every one resolved, bound every outcome."""
    ungraded = list(ungraded)
    worst = paired_verdict(alpha, {**child, **dict.fromkeys(ungraded, False)}, parent)
    best = paired_verdict(alpha, {**child, **dict.fromkeys(ungraded, True)}, parent)
    return worst.admitted == best.admitted


def paired_verdict(alpha: float, child: Mapping[str, bool], parent: Mapping[str, bool] | None) -> Verdict:
    if parent is None:  # the initial agent has no parent to be worse than
        return Verdict(True, "no parent")
    cmp = compare_outcomes(dict(parent), dict(child))  # a = parent, b = child
    p = mcnemar_exact_one_sided(cmp.only_a, cmp.only_b)
    worse = p < alpha
    reason = (f"{'significantly' if worse else 'not significantly'} worse than its parent on {cmp.shared} shared "
              f"tasks (parent only {cmp.only_a}, child only {cmp.only_b}; one-sided McNemar p = {p:.3g}, "
              f"alpha {alpha})")
    return Verdict(not worse, reason, p, cmp.shared, cmp.only_a, cmp.only_b)
