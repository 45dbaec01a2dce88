"""Confirmation: re-evaluate the best agents of a finished search on the sealed held-out split.

The node with the best search score was chosen *because* it scored well on the search tasks, so that
score is biased upwards (the winner's curse). `confirm_run` takes the top-K admitted children by
search score and the initial agent, evaluates each on the held-out tasks R times through the run's
own evaluation machinery (its sandbox, its LLM routes and a gateway), and reports per node:

- the confirmed score with a 95% interval: Wilson for R = 1, a percentile bootstrap over tasks for R > 1;
- the gap = search score - confirmed score;
- a paired test against the initial agent on the same tasks: the exact two-sided McNemar test for
  R = 1, a paired bootstrap over tasks (each task's mean over its repeats) for R > 1.

The held-out tasks are the ones plan.json sealed at run start (if it still matches its hash; else the
split as the config resolves it, and the report says the plan did not match). A split that shares a task
with the search stages is reported as not sealed. Nothing of the run's ledger changes: results,
artifacts and the LLM calls made go to `<run>/confirm/<split>-r<R>/` (the run store is opened read-only). A node already confirmed there
on the same tasks is not evaluated again, so a larger --top only costs the new nodes.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path

from dgm.analysis.stats import bootstrap_interval, compare_outcomes, paired_bootstrap, wilson_interval
from dgm.bench import load_benchmark
from dgm.config import Stage, load_config
from dgm.evaluate import Evaluator, resolve_stages
from dgm.llm.base import UsageRecord
from dgm.llm.budget import BudgetExceeded
from dgm.loop import INITIAL
from dgm.preregistration import PLAN_FILE, check_plan
from dgm.splits import HELDOUT_DEFAULT, split_tasks
from dgm.store import Node, RunStore, TaskResult

RESULTS_FILE = "results.json"
CALLS_FILE = "llm_calls.jsonl"


@dataclass
class ConfirmRow:
    node_id: str
    search_score: float | None  # the node's score in the search (its largest completed stage)
    search_tasks: int
    confirmed_score: float  # resolved / (tasks x repeats) on the confirmation split
    resolved: int
    total: int
    low: float  # 95% interval of the confirmed score
    high: float
    gap: float | None  # search_score - confirmed_score (> 0: the search overstated it)
    test: str | None  # mcnemar | paired_bootstrap (None for the initial agent itself)
    p_value: float | None  # two-sided, vs the initial agent on the same tasks
    better: int = 0  # tasks this node resolved more often than the initial agent
    worse: int = 0  # ... less often


@dataclass
class ConfirmReport:
    run_id: str
    run_dir: str
    split: str
    sealed: bool  # True when the split is the run's held-out split (never seen by the search)
    tasks: list[str]
    repeats: int
    scripted: bool
    rows: list[ConfirmRow] = field(default_factory=list)
    evaluated: list[str] = field(default_factory=list)  # nodes evaluated by this call (others were reused)
    llm_calls: int = 0
    cost_usd: float = 0.0
    out_dir: str = ""
    plan: str = ""  # the run's plan check (matches | MODIFIED | missing | unsealed); held-out ids come from it

    def row(self, node_id: str) -> ConfirmRow:
        return next(r for r in self.rows if r.node_id == node_id)

    def to_json(self) -> dict:
        return asdict(self)


class ConfirmError(ValueError):
    """Bad confirm arguments or a run that cannot be confirmed; the message names the culprit."""


class CallLedger:
    """The gateway's usage sink for a confirmation: one JSON line per call in the confirm dir."""

    def __init__(self, path: Path):
        self.path = path
        self._lock = threading.Lock()

    def record_llm_call(self, usage: UsageRecord) -> None:
        line = {**dataclasses.asdict(usage.context), **{k: v for k, v in dataclasses.asdict(usage).items()
                                                         if k != "context"}}
        with self._lock, self.path.open("a") as out:
            out.write(json.dumps(line) + "\n")

    def totals(self) -> tuple[int, float]:
        if not self.path.exists():
            return 0, 0.0
        calls = [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
        return len(calls), round(sum(c["cost_usd"] for c in calls), 6)


def top_nodes(store: RunStore, top_k: int) -> list[Node]:
    """Admitted children with a search score, best first (ties: more tasks evaluated, then earlier)."""
    children = [n for n in store.nodes() if n.admitted and n.parent_id is not None and n.score is not None]
    order = sorted(enumerate(children), key=lambda pair: (-pair[1].score, -pair[1].tasks_evaluated, pair[0]))
    return [node for _, node in order[:top_k]]


def confirm_run(run_dir: Path, *, top_k: int = 3, split: str = HELDOUT_DEFAULT, repeats: int = 1,
                workers: int | None = None, report=None) -> ConfirmReport:
    """Evaluate the initial agent and the top-K nodes on `split`, `repeats` times each; see the module doc.

    `workers`: tasks evaluated in parallel (default: the run's evaluation.workers); `report`: a callable
    that gets one line per node as it starts (progress). Raises ConfirmError on bad arguments.
    """
    if top_k < 0 or repeats < 1:
        raise ConfirmError(f"--top must be >= 0 and --repeats >= 1 (got {top_k}, {repeats})")
    store = RunStore.open(Path(run_dir), read_only=True)
    config = load_config(store.run_dir / "config.yaml")
    benchmark = load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
    plan = check_plan(store)
    try:
        tasks = confirmation_tasks(store, config, benchmark, split, plan.status)
        searched = {t for stage in resolve_stages(benchmark, config.evaluation) for t in stage}
    except ValueError as exc:
        raise ConfirmError(str(exc)) from None
    if not tasks:
        raise ConfirmError(f"--split {split}: no tasks to confirm on")
    nodes = [store.node(INITIAL)] + top_nodes(store, top_k)
    out_dir = store.run_dir / "confirm" / f"{split}-r{repeats}"
    out_dir.mkdir(parents=True, exist_ok=True)
    ledger = CallLedger(out_dir / CALLS_FILE)
    todo = [n for n in nodes if load_results(out_dir / n.node_id, tasks, repeats) is None]
    if todo:
        try:
            _evaluate(store, config, benchmark, todo, tasks, repeats, out_dir, ledger, workers, report)
        except BudgetExceeded as exc:  # a budget hit is never a score; nodes finished so far are kept
            raise ConfirmError(f"the run's LLM budget stopped the confirmation ({exc}); raise llm.budgets in "
                               f"{store.run_dir / 'config.yaml'} and confirm again (finished nodes are kept)") from None
    results = {n.node_id: load_results(out_dir / n.node_id, tasks, repeats) for n in nodes}
    calls, cost = ledger.totals()
    info = store.run_info()
    confirm = ConfirmReport(
        run_id=info["run_id"], run_dir=str(store.run_dir), split=split,
        sealed=split == HELDOUT_DEFAULT and not searched & set(tasks),
        tasks=tasks, repeats=repeats, scripted=bool(info["scripted"]), evaluated=[n.node_id for n in todo],
        llm_calls=calls, cost_usd=cost, out_dir=str(out_dir), plan=plan.status,
        rows=[confirm_row(n, results[n.node_id], results[INITIAL], repeats) for n in nodes],
    )
    (out_dir / "report.json").write_text(json.dumps(confirm.to_json(), indent=2) + "\n")
    store.close()
    return confirm


def confirmation_tasks(store: RunStore, config, benchmark, split: str, plan_status: str) -> list[str]:
    """The held-out ids the run pre-registered in plan.json (when it still matches its hash), else the
    split as the run's config resolves it today."""
    if split == HELDOUT_DEFAULT and plan_status == "matches":
        heldout = json.loads((store.run_dir / PLAN_FILE).read_text())["splits"]["heldout"]
        if heldout:
            return heldout
    return split_tasks(benchmark, config.evaluation, split)


def _evaluate(store: RunStore, config, benchmark, nodes: list[Node], tasks: list[str], repeats: int,
              out_dir: Path, ledger: CallLedger, workers: int | None, report) -> None:
    from dgm.run import runtime  # the run's parts (gateway, sandbox policy, executor), built the run's way

    cfg = config.evaluation.model_copy(update={"stages": [Stage(tasks=tasks)], "num_evals": repeats,
                                               "heldout": None})
    run_id = store.run_info()["run_id"]
    with runtime(config, store, run_id, benchmark, sink=ledger) as ctx:
        evaluator = Evaluator(benchmark=benchmark, policy=ctx.policy, llm=ctx.llm, cfg=cfg,
                              limits=config.agent.task_limits, executor=ctx.executor)
        for node in nodes:
            if report:
                report(f"confirming {node.node_id} on {len(tasks)} tasks x {repeats}")
            node_dir = out_dir / node.node_id
            shutil.rmtree(node_dir, ignore_errors=True)
            agent_dir = store.lineage.export(node.node_id, node_dir / "agent")
            evaluation = evaluator.evaluate(agent_dir, node.node_id, f"confirm:{node.node_id}", node_dir,
                                            all_stages=True, workers=workers)
            shutil.rmtree(agent_dir, ignore_errors=True)  # the code stays in agents.git
            save_results(node_dir, tasks, repeats, evaluation.results)


def save_results(node_dir: Path, tasks: list[str], repeats: int, results: list[TaskResult]) -> None:
    data = {"tasks": tasks, "repeats": repeats, "results": [asdict(r) for r in results]}
    tmp = node_dir / (RESULTS_FILE + ".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.rename(node_dir / RESULTS_FILE)  # published in one step: a killed confirm re-does the node


def load_results(node_dir: Path, tasks: list[str], repeats: int) -> dict[str, list[bool]] | None:
    """{task: resolved per repeat} of a finished confirmation on exactly these tasks, else None."""
    path = node_dir / RESULTS_FILE
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if data["tasks"] != tasks or data["repeats"] != repeats:
        return None
    outcomes: dict[str, list[bool]] = {t: [False] * repeats for t in tasks}
    for r in data["results"]:
        outcomes[r["task_id"]][r["eval_index"]] = r["outcome"] == "resolved"
    return outcomes


def confirm_row(node: Node, outcomes: dict[str, list[bool]], initial: dict[str, list[bool]],
                repeats: int) -> ConfirmRow:
    """One node's confirmed figures; `outcomes` and `initial`: {task: resolved per repeat}."""
    resolved = sum(sum(runs) for runs in outcomes.values())
    total = len(outcomes) * repeats
    means = {t: sum(runs) / repeats for t, runs in outcomes.items()}
    base = {t: sum(runs) / repeats for t, runs in initial.items()}
    if repeats == 1:
        low, high = wilson_interval(resolved, total)
    else:
        low, high = bootstrap_interval(list(means.values()))
    score = resolved / total
    row = ConfirmRow(node.node_id, node.score, node.tasks_evaluated, score, resolved, total, low, high,
                     None if node.score is None else node.score - score, None, None)
    if node.node_id == INITIAL:
        return row
    row.better = sum(means[t] > base[t] for t in means)
    row.worse = sum(means[t] < base[t] for t in means)
    if repeats == 1:
        row.test = "mcnemar"
        row.p_value = compare_outcomes(_only_run(outcomes), _only_run(initial)).p_value
    else:
        row.test, row.p_value = "paired_bootstrap", paired_bootstrap(means, base)
    return row


def _only_run(outcomes: dict[str, list[bool]]) -> dict[str, bool]:
    return {task: runs[0] for task, runs in outcomes.items()}
