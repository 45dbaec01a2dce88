"""`dgm baseline CONFIG --budget-from RUN`: the equal-budget repeated-sampling baseline.

Critiques of self-improvement results ask whether simply re-running the *initial* agent, with the
money the search spent, does as well. This module answers it:

    budget   <- what RUN spent on its LLM calls, in $ (a run of the free scripted model: its
                number of calls that went to the model instead)
    tasks    <- RUN's evaluation tasks (every stage)
    repeat r = 0, 1, ...: evaluate the initial agent on all of them (dgm/evaluate.py), while the
                spend so far plus one more repeat's average spend stays within the budget

The repeats are stored as a run directory of their own (default RUN/baseline): one node per repeat
(`rep000`, `rep001`, ...; no parents), so every run command reads it, plus `baseline.json` naming
the source run and the budget (`--resume` continues a killed baseline from them). From the repeats:
best-of-N (the highest repeat score: chosen on the same tasks, as a search's best node is), pass@k
and pass^k (dgm/analysis/sampling.py), and the variance split into task sampling and run to run.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dgm.analysis.runview import RunView
from dgm.analysis.sampling import k_values, mean_over_tasks, pass_at_k, pass_hat_k, variance_split
from dgm.config import Config, ConfigError, load_config
from dgm.llm.budget import BudgetExceeded
from dgm.store import Node, RunStore, StoreError

BASELINE_FILE = "baseline.json"
DEFAULT_MAX_REPEATS = 100


@dataclass(frozen=True)
class Budget:
    """What a run spent: dollars, or for a run of the $0 scripted model, LLM calls."""

    unit: str  # "usd" | "calls"
    amount: float

    @classmethod
    def of_run(cls, run_dir: Path) -> "Budget":
        store = RunStore.open(run_dir, read_only=True)
        try:
            usd = store.spent_usd()
            return cls("usd", usd) if usd > 0 else cls("calls", _calls_asked(store))
        finally:
            store.close()

    def spent(self, store: RunStore) -> float:
        return store.spent_usd() if self.unit == "usd" else _calls_asked(store)

    def text(self, value: float | None = None) -> str:
        value = self.amount if value is None else value
        return f"${value:.2f}" if self.unit == "usd" else f"{value:.0f} LLM calls"


def _calls_asked(store: RunStore) -> float:
    """LLM calls that went to the model: an answer served from the gateway's record (a resumed
    attempt's) is free, in calls as in $."""
    totals = store.llm_totals()[0]
    return float(totals["calls"] - totals["cache_hits"])


def another_repeat_fits(budget: Budget, spent: float, repeats_done: int) -> bool:
    """The first repeat always runs; then one more while its expected spend (the mean so far) still fits."""
    return repeats_done == 0 or spent + spent / repeats_done <= budget.amount + 1e-9


def baseline_config(config_path: str, overrides: list[str], source: Path) -> Config:
    """CONFIG's models, sandbox and initial agent, on the source run's benchmark and tasks."""
    config = load_config(config_path, overrides)
    run_config = load_config(source / "config.yaml")
    if config.evaluation.benchmark != run_config.evaluation.benchmark:
        raise ConfigError(f"evaluation.benchmark: {config_path} uses {config.evaluation.benchmark!r} but run "
                          f"{source} used {run_config.evaluation.benchmark!r}; the baseline must run on the run's "
                          "tasks")
    config.evaluation.stages = run_config.evaluation.stages
    config.evaluation.benchmark_options = run_config.evaluation.benchmark_options
    config.run.name = f"baseline-{source.name}"
    return config


def run_baseline(config: Config, source: Path, out_dir: Path, *, max_repeats: int = DEFAULT_MAX_REPEATS,
                 report: Callable[[str], None] = print) -> Path:
    """Evaluate config's initial agent on the source run's tasks until the source run's budget is spent."""
    from dgm.run import check_before_running, new_run  # the run's machinery, imported when used

    benchmark = check_before_running(config)
    budget = Budget.of_run(source)
    store, run_id = new_run(config, out_dir, benchmark)
    meta = {"kind": "equal_budget_baseline", "source_run": RunView.load(source).run_id,
            "source_run_dir": str(source.resolve()), "agent": str(config.agent.initial.resolve()),
            "budget": {"unit": budget.unit, "amount": budget.amount}, "max_repeats": max_repeats}
    (store.run_dir / BASELINE_FILE).write_text(json.dumps(meta, indent=2))
    _repeat_until_spent(config, store, run_id, benchmark, meta, report)
    return out_dir


def check_spending(config: Config, budget: Budget, source_name: str, yes: bool,
                   report: Callable[[str], None]) -> None:
    """A paid endpoint needs the user's yes (--yes) before the baseline spends `budget`; the scripted
    model is named as the test double it is."""
    from dgm.estimate import paid_roles
    from dgm.llm.base import SCRIPTED_BANNER

    if paid_roles(config) and not yes:
        raise ConfigError(f"this baseline calls a paid endpoint for up to {budget.text()} (what run "
                          f"{source_name} spent): pass --yes to start it")
    if config.uses_scripted_model:
        report(SCRIPTED_BANNER.upper())


def resume_baseline(out_dir: Path, *, yes: bool = False, report: Callable[[str], None] = print) -> Path:
    """Continue a baseline that was killed: its finished repeats stay, the one in flight runs again
    (the answers it had received come from the gateway's record, so none is paid twice)."""
    from dgm.run import reopen

    meta = read_meta(out_dir)
    if meta is None:
        raise StoreError(f"{out_dir} holds no baseline to resume (no {BASELINE_FILE}; start one with "
                         "dgm baseline CONFIG --budget-from RUN)")
    store = RunStore.open(out_dir)
    if store.run_info()["status"] == "finished":
        store.close()
        report(f"baseline {out_dir} had finished already: nothing to resume")
        return out_dir
    config = load_config(out_dir / "config.yaml")
    check_spending(config, Budget(**meta["budget"]), meta["source_run"], yes, report)
    run_id = reopen(store)
    store.cleanup_orphans()  # a kill while publishing leaves the repeat's files without its node
    _repeat_until_spent(config, store, run_id, None, meta, report)
    return out_dir


def _repeat_until_spent(config: Config, store: RunStore, run_id: str, benchmark, meta: dict,
                        report: Callable[[str], None]) -> None:
    from dgm.run import runtime

    budget, agent = Budget(**meta["budget"]), Path(meta["agent"])
    done = len(store.nodes())  # a repeat is a node once finished; a killed one runs again
    reason = f"max repeats ({meta['max_repeats']}) reached"
    with runtime(config, store, run_id, benchmark) as ctx:
        for repeat in range(done, meta["max_repeats"]):
            spent = budget.spent(store)
            if not _begun(store, repeat) and not another_repeat_fits(budget, spent, repeat):
                reason = f"budget: {budget.text(spent)} spent of {budget.text()}"
                break
            try:
                node = evaluate_repeat(ctx, store, agent, repeat)
            except BudgetExceeded as exc:  # the config's own llm.budgets: the repeat in flight is dropped
                reason = f"budget_exhausted: {exc}"
                break
            report(f"repeat {repeat}: {node.stages[-1].resolved}/{node.stages[-1].total} resolved, "
                   f"{budget.text(budget.spent(store))} of {budget.text()} spent")
    store.events.append("baseline_done", reason=reason, **meta)
    store.set_run_status("finished", reason)
    store.close()


def _begun(store: RunStore, repeat: int) -> bool:
    """Whether the repeat was running when the baseline was killed: its go-ahead was given then (its
    spend so far is in the total now, so deciding again would stop a resumed baseline early)."""
    return any(a["attempt_id"] == _ids(repeat)[1] for a in store.in_flight())


def _ids(repeat: int) -> tuple[str, str]:
    return f"rep{repeat:03d}", f"{repeat}:0"  # node, attempt


def evaluate_repeat(ctx, store: RunStore, agent: Path, repeat: int) -> Node:
    """One evaluation of the agent on every task, published as node rep<NNN> (attempt "<repeat>:0")."""
    node_id, attempt_id = _ids(repeat)
    work = store.begin_attempt(attempt_id, repeat, 0, None)
    evaluation = ctx.evaluator.evaluate(agent, node_id, attempt_id, work, all_stages=True)
    node = Node(node_id=node_id, parent_id=None, generation=repeat, attempt_id=attempt_id, status="evaluated",
                compiled=True, admitted=True, score=evaluation.score, tasks_evaluated=evaluation.tasks_evaluated,
                stages=evaluation.stages, paper_compiled=evaluation.paper_compiled)
    return store.finish_attempt(node, evaluation.results, agent_dir=agent, artifacts_dir=work)


# -- figures of a finished baseline ------------------------------------------------------------
def read_meta(run_dir: Path) -> dict | None:
    path = Path(run_dir) / BASELINE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}") from None


def outcome_matrix(view: RunView) -> tuple[list[str], list[list[bool]]]:
    """(task ids, repeats x tasks resolved flags) of a baseline's repeats, tasks in the first repeat's order."""
    repeats = [n for n in view.nodes if n.status == "evaluated"]
    if not repeats:
        raise StoreError(f"baseline {view.run_id} has no finished repeat")
    tasks = [r.task_id for r in view.results.get(repeats[0].node_id, [])]
    rows = []
    for node in repeats:
        resolved = {r.task_id: r.outcome == "resolved" for r in view.results.get(node.node_id, [])}
        rows.append([resolved.get(t, False) for t in tasks])  # a task a repeat lacks counts as a failure
    return tasks, rows


def summarize(run_dir: Path) -> dict:
    """Every figure `dgm baseline`, `dgm report` and `dgm plot compare` show of a baseline."""
    view = RunView.load(run_dir)
    meta = read_meta(view.run_dir)
    if meta is None:
        raise StoreError(f"{run_dir} is not a baseline (no {BASELINE_FILE})")
    budget = Budget(meta["budget"]["unit"], meta["budget"]["amount"])
    tasks, rows = outcome_matrix(view)
    n = len(rows)
    counts = {t: (n, sum(row[i] for row in rows)) for i, t in enumerate(tasks)}
    scores = [sum(row) / len(tasks) for row in rows]
    store = RunStore.open(view.run_dir, read_only=True)
    try:
        spent = budget.spent(store)
    finally:
        store.close()
    return {
        "baseline_run": view.run_id, "source_run": meta["source_run"], "scripted_model": view.scripted,
        "budget": {"unit": budget.unit, "amount": budget.amount, "spent": spent},
        "repeats": n, "tasks": len(tasks),
        "repeat_scores": scores,
        "mean_pass_at_1": mean_over_tasks(counts, 1, pass_at_k),
        "best_of_n": max(scores),
        "pass_at_k": {k: mean_over_tasks(counts, k, pass_at_k) for k in k_values(n)},
        "pass_hat_k": {k: mean_over_tasks(counts, k, pass_hat_k) for k in k_values(n)},
        "variance": variance_split(rows).as_dict(),
        "source": source_scores(meta),
    }


def source_scores(meta: dict) -> dict | None:
    """The source run's initial and best (search) scores, to set beside the baseline (None: run not found)."""
    try:
        view = RunView.load(meta["source_run_dir"])
    except StoreError:
        return None
    initial = next((n for n in view.nodes if n.parent_id is None), None)
    best = view.best()
    children = sum(1 for n in view.nodes if n.parent_id is not None)
    return {"run": view.run_id, "children": children,
            "initial_score": initial.score if initial else None,
            "best_node": best.node_id if best else None, "best_search_score": best.score if best else None,
            "confirmed": confirmed_scores(view.run_dir)}


def confirmed_scores(run_dir: Path) -> dict | None:
    """The run's best node and initial agent as `dgm confirm` scored them on held-out tasks (None: not confirmed).

    The baseline's best-of-N is the initial agent's code, so its held-out score is the initial agent's."""
    reports = sorted(Path(run_dir).glob("confirm/heldout-r*/report.json"))
    if not reports:
        return None
    report = json.loads(reports[-1].read_text())
    rows = report["rows"]
    top = rows[1] if len(rows) > 1 else rows[0]  # confirm lists the initial agent, then nodes best first
    return {"split": report["split"], "tasks": len(report["tasks"]), "repeats": report["repeats"],
            "best_node": top["node_id"], "best_score": top["confirmed_score"],
            "initial_score": rows[0]["confirmed_score"]}
