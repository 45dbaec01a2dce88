"""A $0 simulator of archive dynamics: how many task evaluations a search strategy needs, without a model.

Synthetic world (``World``): every agent has a true solve rate p and a drift d (its lineage's
metaproductivity). A child's drift is its parent's plus noise, and its rate moves from its parent's
by its drift plus noise, on the logit scale:

    d_child = d_parent + N(0, drift_sd)        logit p_child = logit p_parent + d_child + N(0, step_sd)

so some clades keep improving and others keep degrading, and a node's own rate says little about its
descendants' (the Metaproductivity-Performance Mismatch). A self-modification compiles with
probability ``compile_rate``; a task evaluation is one Bernoulli(p) draw.

The strategies are driven through the real loop's own decision code, not copies:
parent selection ``dgm.selection.parent_weights`` / ``sample_parents`` (DGM's methods), the staged
evaluation rule ``dgm.evaluate.stage_may_enter``, adaptive evaluation's stop rule
``dgm.adaptive.stage_decision`` (with ``adaptive=True``: a stage stops once its outcome is decided, and its
ungraded tasks count as unresolved, as in the loop), admission ``dgm.admission.admit`` and HGM's policy
``dgm.hgm.next_action`` / ``pick_task``. The budget is counted in task evaluations (the initial agent's
evaluation on every stage is given to all methods and not counted); self-modifications are free here,
so the simulator measures evaluation efficiency only.

Reported per method: evaluations until an admitted, evaluated agent with true rate >= ``target``
exists; the best true rate of such an agent when the budget is spent (an oracle's view: it credits an
agent evaluated on a single task); and the true rate of the agent the run would hand in (the highest
Wilson lower bound of its own record, one rule for every method), with 95% intervals over seeds
(percentile bootstrap of the median and of the means).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dgm.adaptive import STOP, StageRule, entry_bar, stage_decision
from dgm.admission import AdmissionRule, admit, paired_verdict_settled, score_bars
from dgm.analysis.stats import wilson_interval
from dgm.config import Stage
from dgm.evaluate import stage_may_enter
from dgm.hgm import EXPAND, HGMParams, TreeNode, next_action, pick_task
from dgm.selection import parent_weights, sample_parents

METHODS = ("score_child_prop", "hgm", "best", "random")  # the comparison of issue 16
DGM_METHODS = ("score_child_prop", "score_prop", "random", "best", "latest")
# DGM's SWE-bench stages: 10 tasks; +50 if >= 40%; +140 if >= 40% and >= the second-best full score.
PAPER_STAGES = (Stage(tasks=[f"t{i:03d}" for i in range(10)]),
                Stage(tasks=[f"t{i:03d}" for i in range(10, 60)], threshold=0.4),
                Stage(tasks=[f"t{i:03d}" for i in range(60, 200)], threshold=0.4, require_second_best=True))


@dataclass(frozen=True)
class World:
    initial_rate: float = 0.2  # the seed agent's true solve rate (DGM's SWE-bench start: 20%)
    initial_drift: float = -0.15  # on average a self-modification slightly hurts (logit scale)
    drift_sd: float = 0.12  # how much a child's drift differs from its parent's: clades diverge
    step_sd: float = 0.3  # a child's own luck around parent + drift
    compile_rate: float = 0.8  # share of self-modifications that pass their own tests
    children_per_generation: int = 2  # k of the DGM methods
    stages: tuple[Stage, ...] = PAPER_STAGES


@dataclass
class Agent:
    node_id: str
    parent_id: str | None
    rate: float
    drift: float
    compiled: bool = True
    outcomes: dict[str, bool] = field(default_factory=dict)
    admitted: bool = False
    ungraded: int = 0  # tasks of a stage adaptive evaluation stopped: unresolved in the score, as in the loop

    @property
    def score(self) -> float:
        runs = len(self.outcomes) + self.ungraded
        return sum(self.outcomes.values()) / runs if runs else 0.0


@dataclass
class SeedResult:
    method: str
    seed: int
    evals_to_target: int | None  # None: not reached within the budget
    best_rate: float  # best true rate of an admitted, evaluated agent at the end
    handed_in_rate: float  # true rate of the agent the run would hand in (highest Wilson lower bound)
    children: int  # self-modifications made
    curve: list[tuple[int, float]]  # (evaluations, best true rate so far) at each improvement


def logit(p: float) -> float:
    return math.log(p / (1 - p))


def expit(x: float) -> float:
    return 1 / (1 + math.exp(-x))


class Simulation:
    """One seed of one method: the archive, the evaluation counter and the running best."""

    def __init__(self, method: str, seed: int, budget: int, target: float, world: World, rule: AdmissionRule,
                 hgm: HGMParams, adaptive: bool = False):
        self.method, self.seed, self.budget, self.target = method, seed, budget, target
        self.world, self.rule, self.hgm, self.adaptive = world, rule, hgm, adaptive
        self.rng = random.Random(f"simulate/{seed}")  # same world stream for every method
        self.pool = [t for stage in world.stages for t in stage.tasks]
        self.evals = 0
        self.agents: dict[str, Agent] = {}
        self.curve: list[tuple[int, float]] = []
        self.reached: int | None = None
        root = Agent("initial", None, world.initial_rate, world.initial_drift, admitted=True)
        root.outcomes = {t: self.rng.random() < root.rate for t in self.pool}  # given, not counted
        self.agents[root.node_id] = root
        self._observe(root)

    # -- shared mechanics --------------------------------------------------------------------
    def spawn(self, parent: Agent) -> Agent:
        w = self.world
        drift = parent.drift + self.rng.gauss(0, w.drift_sd)
        rate = expit(logit(parent.rate) + drift + self.rng.gauss(0, w.step_sd))
        child = Agent(f"n{len(self.agents)}", parent.node_id, min(max(rate, 1e-4), 1 - 1e-4), drift,
                      compiled=self.rng.random() < w.compile_rate)
        self.agents[child.node_id] = child
        return child

    def evaluate(self, agent: Agent, task: str) -> None:
        agent.outcomes[task] = self.rng.random() < agent.rate
        self.evals += 1

    def judge(self, agent: Agent) -> None:
        parent = self.agents.get(agent.parent_id) if agent.parent_id else None
        verdict = admit(self.rule, compiled=agent.compiled and bool(agent.outcomes), score=agent.score,
                        initial_score=self.agents["initial"].score, child=agent.outcomes,
                        parent=parent.outcomes if parent else None)
        agent.admitted = verdict.admitted
        self._observe(agent)

    def _observe(self, agent: Agent) -> None:
        best = self.curve[-1][1] if self.curve else 0.0
        if agent.admitted and agent.outcomes and agent.rate > best:
            self.curve.append((self.evals, agent.rate))
            if self.reached is None and agent.rate >= self.target:
                self.reached = self.evals

    def result(self) -> SeedResult:
        children = len(self.agents) - 1
        return SeedResult(self.method, self.seed, self.reached, self.curve[-1][1], self.handed_in().rate, children,
                          self.curve)

    def handed_in(self) -> Agent:
        """The final pick, the same rule for every method: the admitted agent whose own record has the highest
        Wilson 95% lower bound (a stand-in for HGM's best-belief ε-percentile; one lucky task does not win)."""
        evaluated = [a for a in self.agents.values() if a.admitted and a.outcomes]
        lower = lambda a: wilson_interval(sum(a.outcomes.values()), len(a.outcomes))[0]
        return max(evaluated, key=lower)

    # -- DGM: select k parents, staged evaluation of each child, admission -------------------
    def run_dgm(self) -> SeedResult:
        generation = 0
        while self.evals < self.budget:
            generation += 1
            archive = [a for a in self.agents.values() if a.admitted]
            scores = {a.node_id: a.score for a in archive}
            children = {a.node_id: 0 for a in archive}
            for a in archive:
                if a.parent_id in children:
                    children[a.parent_id] += 1
            k = 1 if self.method == "latest" else self.world.children_per_generation
            for parent_id in sample_parents(parent_weights(scores, children, self.method), k, self.rng):
                child = self.spawn(self.agents[parent_id])
                if child.compiled:
                    self.staged_evaluation(child)
                self.judge(child)
        return self.result()

    def staged_evaluation(self, child: Agent) -> None:
        stages = self.world.stages
        done = [a.score for a in self.agents.values() if a.admitted and len(a.outcomes) == len(self.pool)]
        second_best = sorted(done, reverse=True)[1] if len(done) >= 2 else None
        for index, stage in enumerate(stages):
            if index > 0 and not stage_may_enter(stage, child.score, second_best):
                return
            adaptive = self.adaptive and index + 1 < len(stages)
            stop_here = self.stop_rule(child, index, second_best) if adaptive else None
            for graded, task in enumerate(stage.tasks, 1):
                if self.evals >= self.budget:
                    return
                self.evaluate(child, task)
                if stop_here and stop_here(stage.tasks[:graded], stage.tasks[graded:]):
                    child.ungraded += len(stage.tasks) - graded
                    return

    def stop_rule(self, child: Agent, index: int, second_best: float | None):
        """Adaptive evaluation (DGM methods): the loop's stop rule for stage `index` (Evaluator._stage_decider),
        as a function of the stage's graded and ungraded tasks: True once the stage can stop."""
        following = self.world.stages[index + 1]
        earlier = [t for stage in self.world.stages[:index] for t in stage.tasks]
        resolved_before = sum(child.outcomes[t] for t in earlier)
        rule = StageRule(entry_bar(following.threshold, following.require_second_best, second_best),
                         score_bars(self.rule, self.agents["initial"].score), needs_patch=index == 0)
        parent = self.agents[child.parent_id].outcomes

        def decided(graded: list[str], ungraded: list[str]) -> bool:
            verdict = stage_decision(resolved_before=resolved_before, total_before=len(earlier),
                                     graded=[child.outcomes[t] for t in graded], stage_size=len(graded) + len(ungraded),
                                     rule=rule)
            if verdict != STOP:
                return False
            return self.rule.method != "paired_test" or paired_verdict_settled(self.rule.alpha, child.outcomes,
                                                                                 parent, ungraded)
        return decided

    # -- HGM: each step expands a node or evaluates one on one task --------------------------
    def run_hgm(self) -> SeedResult:
        steps = 0
        while self.evals < self.budget and steps < 100 * self.budget:
            steps += 1
            tree = [a for a in self.agents.values() if a.compiled]
            action = next_action([self.tree_node(a) for a in tree], self.evals, self.rng, self.hgm)
            if action is None:
                break
            agent = self.agents[action.node_id]
            if action.kind == EXPAND:
                self.spawn(agent)  # enters the tree unevaluated (if it compiled)
                continue
            self.evaluate(agent, pick_task([t for t in self.pool if t not in agent.outcomes], self.rng))
            self.judge(agent)
        return self.result()

    def tree_node(self, agent: Agent) -> TreeNode:
        solved = sum(agent.outcomes.values())
        return TreeNode(agent.node_id, agent.parent_id, solved, len(agent.outcomes) - solved,
                        expandable=agent.admitted, untried_tasks=len(self.pool) - len(agent.outcomes))


def simulate(method: str, seed: int, budget: int, *, target: float = 0.5, world: World = World(),
             rule: AdmissionRule = AdmissionRule(), hgm: HGMParams = HGMParams(), adaptive: bool = False) -> SeedResult:
    if method != "hgm" and method not in DGM_METHODS:
        raise ValueError(f"--method: unknown {method!r}; choose from hgm, {', '.join(DGM_METHODS)}")
    sim = Simulation(method, seed, budget, target, world, rule, hgm, adaptive)
    return sim.run_hgm() if method == "hgm" else sim.run_dgm()


# -- summaries over seeds -------------------------------------------------------------------------
def bootstrap_interval(values: list[float], stat, rng: random.Random, resamples: int = 1000) -> tuple[float, float]:
    """95% percentile-bootstrap interval of stat(values)."""
    draws = sorted(stat(rng.choices(values, k=len(values))) for _ in range(resamples))
    return draws[int(0.025 * resamples)], draws[int(0.975 * resamples) - 1]


def summarize(results: list[SeedResult], budget: int, target: float) -> dict:
    """One method's figures over seeds; evaluations to target of a seed that never reached it count as infinite."""
    rng = random.Random(0)
    to_target = [r.evals_to_target if r.evals_to_target is not None else math.inf for r in results]
    best = [r.best_rate for r in results]
    handed = [r.handed_in_rate for r in results]
    med = statistics.median(to_target)
    low, high = bootstrap_interval(to_target, statistics.median, rng)
    best_low, best_high = bootstrap_interval(best, statistics.fmean, rng)
    handed_low, handed_high = bootstrap_interval(handed, statistics.fmean, rng)
    finite = lambda x: None if math.isinf(x) else x  # JSON has no infinity: None = not reached
    return {"method": results[0].method, "seeds": len(results), "budget": budget, "target": target,
            "reached": sum(r.evals_to_target is not None for r in results),
            "evals_to_target_median": finite(med), "evals_to_target_ci95": [finite(low), finite(high)],
            "best_rate_mean": statistics.fmean(best), "best_rate_ci95": [best_low, best_high],
            "handed_in_rate_mean": statistics.fmean(handed), "handed_in_rate_ci95": [handed_low, handed_high],
            "children_mean": statistics.fmean(r.children for r in results)}


def compare(methods: list[str], seeds: int, budget: int, *, target: float = 0.5, world: World = World(),
            rule: AdmissionRule = AdmissionRule(), hgm: HGMParams = HGMParams(), adaptive: bool = False) -> dict:
    runs = {m: [simulate(m, s, budget, target=target, world=world, rule=rule, hgm=hgm, adaptive=adaptive)
                for s in range(seeds)] for m in methods}
    return {"world": {**asdict(world), "stages": [len(s.tasks) for s in world.stages]},
            "admission": asdict(rule), "hgm": asdict(hgm), "adaptive": adaptive,
            "summary": [summarize(rs, budget, target) for rs in runs.values()],
            "curves": {m: [r.curve for r in rs] for m, rs in runs.items()}}


def best_so_far(curve: list[tuple[int, float]], grid: list[int]) -> list[float]:
    """The step function of a run's best true rate, read at each grid point."""
    values, best, i = [], curve[0][1], 0
    for x in grid:
        while i < len(curve) and curve[i][0] <= x:
            best = curve[i][1]
            i += 1
        values.append(best)
    return values


def plot(report: dict, path: Path) -> Path:
    """Best true rate vs evaluations, per method: the median over seeds and its 25-75% band."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    budget = report["summary"][0]["budget"]
    grid = list(range(0, budget + 1, max(1, budget // 200)))
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for method, curves in report["curves"].items():
        rows = [best_so_far(c, grid) for c in curves]
        columns = list(zip(*rows))
        ax.plot(grid, [statistics.median(c) for c in columns], label=method)
        quartiles = [statistics.quantiles(c, n=4) if len(c) > 1 else [c[0]] * 3 for c in columns]
        ax.fill_between(grid, [q[0] for q in quartiles], [q[2] for q in quartiles], alpha=0.2)
    ax.axhline(report["summary"][0]["target"], color="grey", lw=0.8, ls="--", label="target")
    ax.set_xlabel("task evaluations")
    ax.set_ylabel("best true solve rate (admitted agents)")
    ax.set_title(f"Simulated search, {len(next(iter(report['curves'].values())))} seeds per method "
                 f"(median, 25-75%)")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
