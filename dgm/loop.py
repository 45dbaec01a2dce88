"""The generation loop: Algorithm 1 of the DGM paper, step by step.

    archive <- {initial agent, evaluated}
    for each generation:
        parents <- select k parents from the archive            (selection.py)
        for each parent, in parallel:
            entry     <- what the parent should work on           (entries.py)
            diagnosis <- diagnose(parent code, parent logs, entry) (diagnose.py)
            child     <- parent rewrites a copy of itself          (improve.py)
            compiled  <- child's own tests pass                    (agent_run.py)
            scores    <- staged benchmark evaluation of the child  (evaluate.py, tasks in parallel;
                                                                   adaptive.py may stop a stage early)
            admit child if compiled (keep_all), good enough (keep_better) or
                  not significantly worse than its parent (paired_test)      (admission.py)
            (human gate: an admitted child is a parent once approved; approval.py)

With `selection.method: hgm` the same steps serve the Huxley-Gödel Machine's decoupled policy
instead of generations (dgm/hgm_search.py): each step either expands a node (the steps above up to
"compiled": the child enters the tree unevaluated) or evaluates one node on one more task.

Beside our `compiled`, every evaluated node records the official code's rule (`paper_compiled`:
resolved + unresolved > 0 and as many submitted task runs as stage 1 has) so the paper's counts of
compiled children can be compared with ours.

The steps that run agent code (self-modification, own tests, each task of an evaluation) are jobs of
an executor (dgm/executor/): in this process, or on a Ray cluster; either way this loop alone
records what they return.

Every attempt is one (generation, slot) with the idempotency key "generation:slot". Its random
choices come from an RNG seeded by (run seed, generation, slot), and selection from one seeded by
(run seed, generation), so a resumed run makes exactly the decisions an uninterrupted one would.

Budgets stop work, they never score it. A child that exhausts its node (or attempt) budget is
recorded with status "budget_exhausted": not admitted, no score, no task outcomes. When the run
budget runs out mid-attempt, that attempt is paused (status "budget_exhausted" in the store, not
finished) and the run stops; `--resume RUN --set llm.budgets.run_usd=...` re-runs the paused
attempt under its key, its paid LLM answers replayed from the cache at $0.
"""

from __future__ import annotations

import json
import random
import shutil
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dgm.admission import AdmissionRule, Verdict, admit, paired_verdict_settled, score_bars
from dgm.agent_run import SandboxPolicy
from dgm.approval import WAITING_FOR_APPROVAL, waiting_reason
from dgm.bench.base import OUTCOMES, Benchmark
from dgm.config import Config
from dgm.diagnose import ParentEvidence, diagnose, fitted_prompt
from dgm.entries import TaskRecord, choose_entry, overflow_streak, ran_out_of_context_twice
from dgm.evaluate import Evaluation, Evaluator, made_patch, resolved_map
from dgm.executor import Executor, InProcessExecutor, Workplace
from dgm.executor.jobs import own_tests_job, self_modify_job
from dgm.hgm_search import HGMSearch
from dgm.improve import build_child, problem_statement
from dgm.llm.budget import BudgetExceeded
from dgm.llm_access import LLMAccess
from dgm.patches import patch_stats
from dgm.progress import NoProgress, Progress
from dgm.selection import parent_weights, sample_parents
from dgm.store import Node, RunStore, StageScore, TaskResult
from dgm.store.records import PENDING_APPROVAL
from dgm.store.runstore import crash_point
from dgm.textutil import read_json

INITIAL = "initial"
BUDGET_EXHAUSTED = "budget_exhausted"  # node status, paused-attempt status and stop-reason prefix
UNEVALUATED = "unevaluated"  # node status of an HGM child whose tasks are still to come


def node_id_for(generation: int, slot: int) -> str:
    return f"g{generation:03d}s{slot}"


@dataclass
class RunContext:
    config: Config
    store: RunStore
    benchmark: Benchmark
    evaluator: Evaluator
    policy: SandboxPolicy
    llm: LLMAccess
    initial_agent: Path
    budget_exhausted: Callable[[], bool] = lambda: False
    report: Callable[[str], None] = print
    progress: Progress = field(default_factory=NoProgress)  # phase of each in-flight attempt (dgm/progress.py)
    started: float = field(default_factory=time.monotonic)
    executor: Executor | None = None  # where sandboxed jobs run; None: in this process


class DarwinGodelMachine:
    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        self.cfg = ctx.config
        self.store = ctx.store
        self.executor = ctx.executor or InProcessExecutor(Workplace(ctx.policy, ctx.benchmark),
                                                          self.cfg.run.max_concurrency)
        self._checkout_lock = threading.Lock()

    # -- Algorithm 1 -------------------------------------------------------------------------
    def run(self) -> str:
        self.store.cleanup_orphans()
        search = HGMSearch(self).run if self.cfg.selection_method == "hgm" else self._generations
        try:
            reason = search()
        except BudgetExceeded as exc:  # an attempt was paused: the generation stays unfinished
            reason = self._budget_stop(exc)
        self.store.events.append("stop", reason=reason)
        return reason

    def _generations(self) -> str:
        self.initialize_archive()
        for generation in range(1, self.cfg.loop.generations + 1):
            if stop := self.stop_reason():
                return stop
            if self._generation_done(generation):
                continue
            if stop := self.await_approvals(generation):
                return stop
            parents = self.select_parents(generation)
            slots = list(enumerate(parents))
            with ThreadPoolExecutor(max_workers=self.cfg.run.workers) as pool:
                list(pool.map(lambda sp: self.create_child(generation, *sp), slots))
            self.store.finish_generation(generation)
            crash_point("generation_done", generation)
            self.ctx.report(self._generation_line(generation))
        return self.stop_reason() or "generations done"

    def initialize_archive(self) -> None:
        """The initial agent is committed and evaluated once per run (or loaded from a cached evaluation)."""
        attempt_id = "0:initial"
        if self.store.attempt_finished(attempt_id):
            return
        work = self.store.begin_attempt(attempt_id, 0, 0, None)
        agent = self.ctx.initial_agent
        self.ctx.progress.phase(attempt_id, "own tests")
        tests = self.executor.run(own_tests_job(INITIAL, agent_dir=agent, command=self.cfg.agent.own_tests_command,
                                                timeout=self.cfg.agent.own_tests_timeout_s))
        (work / "own_tests.txt").write_text(tests.output)
        if tests.exit_code != 0:
            raise RuntimeError(f"the initial agent's own tests fail in the {self.ctx.policy.backend} sandbox "
                               f"(see {work / 'own_tests.txt'}):\n{tests.output[-2000:]}")
        try:
            evaluation = self._initial_evaluation(agent, attempt_id, work)
        except BudgetExceeded as exc:  # the run cannot go on without the initial agent's score
            self._pause(attempt_id, INITIAL, exc)
            raise
        node = Node(node_id=INITIAL, parent_id=None, generation=0, attempt_id=attempt_id, status="evaluated",
                    compiled=True, admitted=True, score=evaluation.score, tasks_evaluated=evaluation.tasks_evaluated,
                    stages=evaluation.stages, paper_compiled=evaluation.paper_compiled)
        self.store.finish_attempt(node, evaluation.results, agent_dir=agent, artifacts_dir=work)
        self.store.events.append("initial_evaluated", stages=[s.__dict__ for s in evaluation.stages])
        self.ctx.report(f"initial agent: {self._score_text(node)}")

    def select_parents(self, generation: int) -> list[str]:
        stored = self.store.generation_parents(generation)
        if stored is not None:  # resumed mid-generation: the choice was already made and recorded
            return stored
        archive = self.store.archive()
        scores = {n.node_id: n.score or 0.0 for n in archive}
        method = self.cfg.selection_method
        weights = parent_weights(scores, self.store.admitted_children(), method,
                                 sharpness=self.cfg.selection.sharpness, midpoint=self.cfg.selection.midpoint,
                                 exclude_perfect=self.cfg.selection.exclude_perfect)
        k = 1 if method == "latest" else self.cfg.loop.children_per_generation
        if self.cfg.loop.max_children is not None:
            k = min(k, self.cfg.loop.max_children - self._children_count())
        parents = sample_parents(weights, k, self._rng("select", generation))
        self.store.start_generation(generation, parents)
        self.store.events.append("select", generation=generation, method=method, scores=scores,
                                 weights=weights, parents=parents)
        return parents

    def await_approvals(self, generation: int) -> str | None:
        """Human gate (dgm/approval.py): wait while it holds the loop; a stop reason if the run must end."""
        if self.cfg.admission.approval != "human" or self.store.generation_parents(generation) is not None:
            return None
        announced = False
        while why := waiting_reason(self.store, self.cfg.admission.max_pending):
            if not announced:
                announced = True
                self.store.set_run_status(WAITING_FOR_APPROVAL)
                self.store.events.append(WAITING_FOR_APPROVAL, generation=generation, reason=why)
                self.ctx.report(f"waiting before generation {generation}: {why} "
                                f"(dgm approve {self.store.run_dir} NODE [--reject])")
            if stop := self.stop_reason():
                return stop
            time.sleep(self.cfg.admission.approval_poll_s)
        if announced:
            self.store.set_run_status("running")
            self.store.events.append("approval_wait_over", generation=generation)
        return None

    def create_child(self, generation: int, slot: int, parent_id: str, evaluate: bool = True) -> None:
        """`evaluate=False` (HGM): the child is built and its own tests run; its tasks come later."""
        attempt_id = f"{generation}:{slot}"
        if self.store.attempt_finished(attempt_id):
            return
        node_id = node_id_for(generation, slot)
        work = self.store.begin_attempt(attempt_id, generation, slot, parent_id)
        node = Node(node_id=node_id, parent_id=parent_id, generation=generation, attempt_id=attempt_id,
                    status="failed", compiled=False, admitted=False, modifier_id=self._modifier_of(parent_id))
        results: list[TaskResult] = []
        child_dir = None
        try:
            child_dir, results = self._attempt(node, work, evaluate)
        except BudgetExceeded as exc:
            if exc.scope == "run":
                self._pause(attempt_id, node_id, exc)
                raise
            node.status, node.error = BUDGET_EXHAUSTED, f"{exc.scope} budget exhausted: {exc}"
        except Exception as exc:  # a bad child never crashes the run
            node.status, node.error = "failed", f"{type(exc).__name__}: {exc}"
            node.paper_compiled = False  # the official code has no evaluation of such a child either
            (work / "error.txt").write_text(traceback.format_exc())
        self.store.finish_attempt(node, results, agent_dir=child_dir, artifacts_dir=work)
        self.store.events.append("node", node=node_id, parent=parent_id, status=node.status, entry=node.entry,
                                 compiled=node.compiled, admitted=node.admitted, score=node.score, error=node.error)
        self.ctx.report(f"  {node_id} <- {parent_id}: {node.status}, {self._score_text(node)}"
                        + (", admitted" if node.admitted else ""))
        shutil.rmtree(self.store.run_dir / "checkouts" / f"child-{node_id}", ignore_errors=True)

    def _attempt(self, node: Node, work: Path, evaluate: bool = True) -> tuple[Path | None, list[TaskResult]]:
        rng = self._rng("attempt", node.generation, int(node.attempt_id.split(":")[1]))
        parent_dir = self.checkout(node.parent_id)
        evidence = self._evidence(node.parent_id, parent_dir)
        node.entry = choose_entry(evidence.records, rng, self.cfg.entries)
        self.store.events.append("entry", node=node.node_id, parent=node.parent_id, entry=node.entry,
                                 outcomes={r.task_id: r.outcome for r in evidence.records},
                                 ran_out_of_context_twice=ran_out_of_context_twice(evidence.records))

        self.ctx.progress.phase(node.attempt_id, "diagnosing")
        diagnosis = self._diagnose(node, evidence, work, rng)
        window = self.ctx.llm.prompt_chars("self_modify")  # the statement may take half: the agent's work needs the rest
        statement = problem_statement(parent_dir, diagnosis, window and window // 2)
        (work / "problem_statement.md").write_text(statement)

        modifier_dir = self.checkout(node.modifier_id)
        self.ctx.progress.phase(node.attempt_id, "self-modifying")
        with self.ctx.llm.agent_env(self.ctx.llm.context(node.node_id, node.attempt_id, "self_modify")) as env:
            change = self.executor.run(self_modify_job(
                node.node_id, llm_env=env, modifier_dir=modifier_dir, target_dir=parent_dir, statement=statement,
                limits=self.cfg.agent.self_modify_limits, timeout=self.cfg.agent.self_modify_timeout_s,
                out_dir=work / "self_modify"))
        (work / "patch.diff").write_text(change.patch)
        self.store.events.append("self_modify", node=node.node_id, exit_status=change.run.exit_status,
                                 **patch_stats(change.patch))
        if not change.patch.strip():
            node.status, node.error = "no_patch", f"self-modification produced no change ({change.run.exit_status})"
            node.paper_compiled = False
            return None, []

        child_dest = self.store.run_dir / "checkouts" / f"child-{node.node_id}"
        shutil.rmtree(child_dest, ignore_errors=True)  # left by a run killed while it evaluated this child
        child_dir = build_child(parent_dir, change.patch, child_dest)
        self.ctx.progress.phase(node.attempt_id, "own tests")
        tests = self.executor.run(own_tests_job(node.node_id, agent_dir=child_dir,
                                                command=self.cfg.agent.own_tests_command,
                                                timeout=self.cfg.agent.own_tests_timeout_s))
        (work / "own_tests.txt").write_text(tests.output)
        if tests.exit_code != 0:
            node.status = "not_compiled"
            node.error = "own tests timed out" if tests.timed_out else f"own tests failed (exit {tests.exit_code})"
            return child_dir, []  # not evaluated, so the paper's rule cannot be applied: paper_compiled stays None
        if not evaluate:
            self._admit_unevaluated(node)
            return child_dir, []

        evaluation = self.ctx.evaluator.evaluate(child_dir, node.node_id, node.attempt_id, work,
                                                 second_best=self._second_best_full_score(),
                                                 score_bars=self._admission_bars(),
                                                 outcomes_settled=self._paired_settled(node))
        if evaluation.stop:  # adaptive evaluation: the stage's decisions were settled before its last task
            node.tasks_skipped = evaluation.skipped
            self.store.events.append("adaptive_stop", node=node.node_id, **evaluation.stop)
        self._admit(node, evaluation, work)
        return child_dir, evaluation.results

    # -- admission -----------------------------------------------------------------------------
    def _admit(self, node: Node, evaluation: Evaluation, work: Path) -> None:
        node.stages, node.score, node.tasks_evaluated = evaluation.stages, evaluation.score, evaluation.tasks_evaluated
        stage_one = [r for r in evaluation.results if r.stage == 1]
        node.compiled = any(made_patch(work, r) for r in stage_one)
        node.paper_compiled = evaluation.paper_compiled
        node.status = "evaluated" if node.compiled else "not_compiled"
        if not node.compiled:
            node.error = "no non-empty patch on the first evaluation stage"
        verdict = self.judge(node, evaluation.results)
        self._hold_for_approval(node)
        self.store.events.append("admission", node=node.node_id, method=self.cfg.admission.method,
                                 compiled=node.compiled, paper_compiled=node.paper_compiled, score=node.score,
                                 admitted=node.admitted, approval=node.approval, reason=verdict.reason,
                                 p_value=verdict.p_value)

    def _admit_unevaluated(self, node: Node) -> None:
        """HGM's child: its own tests pass; admission is judged now and again after each of its evaluations."""
        node.status, node.compiled = UNEVALUATED, True
        verdict = self.judge(node, [])
        self._hold_for_approval(node)
        self.store.events.append("admission", node=node.node_id, method=self.cfg.admission.method,
                                 compiled=True, score=None, admitted=node.admitted, approval=node.approval,
                                 reason=verdict.reason)

    def judge(self, node: Node, results: list[TaskResult]) -> Verdict:
        """Sets node.admitted by the configured rule (dgm/admission.py) and returns the verdict."""
        rule = self._admission_rule()
        initial = self.store.node(INITIAL).score if rule.method == "keep_better" else None  # read what the rule needs
        parent = None
        if rule.method == "paired_test" and node.parent_id:
            parent = resolved_map(self.store.task_results(node.parent_id))
        verdict = admit(rule, compiled=node.compiled, score=node.score, initial_score=initial,
                        child=resolved_map(results), parent=parent)
        node.admitted = verdict.admitted
        return verdict

    def _hold_for_approval(self, node: Node) -> None:
        if node.admitted and self.cfg.admission.approval == "human":
            node.approval = PENDING_APPROVAL  # a parent only once approved: dgm approve RUN NODE (dgm/approval.py)

    def _paired_settled(self, node: Node):
        """paired_test: adaptive evaluation stops a stage only once the test's verdict cannot change."""
        if self.cfg.admission.method != "paired_test" or not node.parent_id:
            return None
        parent = resolved_map(self.store.task_results(node.parent_id))
        return lambda child, ungraded: paired_verdict_settled(self.cfg.admission.alpha, child, parent, ungraded)

    def _admission_rule(self) -> AdmissionRule:
        return AdmissionRule(self.cfg.admission.method, self.cfg.admission.leeway, self.cfg.admission.alpha)

    def _admission_bars(self) -> tuple[float, ...]:
        rule = self._admission_rule()
        return score_bars(rule, self.store.node(INITIAL).score if rule.method == "keep_better" else None)

    # -- budgets -------------------------------------------------------------------------------
    def _pause(self, attempt_id: str, node_id: str, exc: BudgetExceeded) -> None:
        """Leave an attempt unfinished, marked as stopped by a budget; `--resume` re-runs it."""
        self.store.pause_attempt(attempt_id, BUDGET_EXHAUSTED)
        self.store.events.append(BUDGET_EXHAUSTED, node=node_id, attempt=attempt_id, scope=exc.scope,
                                 message=str(exc))
        self.ctx.report(f"  {node_id}: paused, {exc}")

    def _budget_stop(self, exc: BudgetExceeded) -> str:
        key = {"run": "run_usd", "node": "node_usd", "attempt": "attempt_usd"}[exc.scope]
        return (f"{BUDGET_EXHAUSTED}: {exc}; continue with: python -m dgm.run --resume {self.store.run_dir} "
                f"--set llm.budgets.{key}=<more>")

    # -- helpers -------------------------------------------------------------------------------
    def _initial_evaluation(self, agent: Path, attempt_id: str, work: Path) -> Evaluation:
        cached = self.cfg.evaluation.initial_results
        if cached is not None:
            return load_cached_evaluation(cached, self.ctx.evaluator.stage_tasks)
        return self.ctx.evaluator.evaluate(agent, INITIAL, attempt_id, work, all_stages=True)

    def _diagnose(self, node: Node, evidence: ParentEvidence, work: Path, rng: random.Random) -> dict:
        template, prompt = fitted_prompt(node.entry, evidence, self._problem_statement, self._test_patch,
                                         self.cfg.diagnosis, entries=self.cfg.entries, rng=rng,
                                         max_chars=self.ctx.llm.prompt_chars("diagnosis", answers=2))
        (work / "diagnosis_prompt.md").write_text(prompt)
        chat = self.ctx.llm.chat(self.ctx.llm.context(node.node_id, node.attempt_id, "diagnosis"))
        diagnosis, answers = diagnose(prompt, chat, self.cfg.diagnosis.max_attempts)
        crash_point("diagnosis", node.attempt_id)  # the model has answered (and was metered), nothing saved
        (work / "diagnosis.json").write_text(json.dumps(diagnosis, indent=2))
        (work / "diagnosis_answers.json").write_text(json.dumps(answers, indent=1))
        self.store.events.append("diagnosis", node=node.node_id, entry=node.entry, prompt=template,
                                 answers=len(answers),
                                 proposal=diagnosis["improvement_proposal"][:300])
        return diagnosis

    def _problem_statement(self, task_id: str) -> str:
        return self.ctx.benchmark.task_info(task_id).problem_statement

    def _test_patch(self, task_id: str) -> str | None:
        getter = getattr(self.ctx.benchmark, "test_patch", None)
        return getter(task_id) if getter else None

    def _evidence(self, parent_id: str, parent_dir: Path) -> ParentEvidence:
        """The parent's evaluated tasks, in evaluation order, with their trajectories' overflow streaks."""
        node_dir = self.store.node_dir(parent_id)
        records = []
        for r in self.store.task_results(parent_id):
            trajectory = read_json(node_dir / "tasks" / r.task_id / "trajectory.json")
            records.append(TaskRecord(r.task_id, r.outcome, r.agent_exit, overflow_streak(trajectory)))
        return ParentEvidence(parent_id, parent_dir, node_dir, records)

    def _modifier_of(self, parent_id: str) -> str:
        """Whose code performs the modification: the parent itself, or the initial agent (ablation)."""
        return INITIAL if self.cfg.ablation == "no_selfimprove" else parent_id

    def checkout(self, node_id: str) -> Path:
        """A read-only working copy of a node's agent code, exported from agents.git once."""
        dest = self.store.run_dir / "checkouts" / node_id
        with self._checkout_lock:
            if not dest.exists():
                tmp = dest.with_name(dest.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                self.store.lineage.export(node_id, tmp)
                tmp.rename(dest)
        return dest

    def _rng(self, purpose: str, *parts: int) -> random.Random:
        return random.Random("/".join(map(str, (self.cfg.run.seed, purpose, *parts))))

    def _second_best_full_score(self) -> float | None:
        full = len(self.ctx.evaluator.stage_tasks)
        scores = sorted((n.score or 0.0 for n in self.store.archive() if len(n.stages) == full), reverse=True)
        return scores[1] if len(scores) >= 2 else None

    def _children_count(self) -> int:
        return sum(1 for n in self.store.nodes() if n.node_id != INITIAL)

    def _generation_done(self, generation: int) -> bool:
        return any(g["generation"] == generation and g["finished_at"] for g in self.store.generations())

    def stop_reason(self) -> str | None:
        loop = self.cfg.loop
        if loop.max_children is not None and self._children_count() >= loop.max_children:
            return f"max_children ({loop.max_children}) reached"
        if loop.wall_clock_hours is not None and time.monotonic() - self.ctx.started > loop.wall_clock_hours * 3600:
            return f"wall-clock limit ({loop.wall_clock_hours} h) reached"
        if self.ctx.budget_exhausted():
            return (f"{BUDGET_EXHAUSTED}: the run budget is spent; continue with: python -m dgm.run --resume "
                    f"{self.store.run_dir} --set llm.budgets.run_usd=<more>")
        best = max((n.score or 0.0 for n in self.store.archive()), default=0.0)
        if loop.target_score is not None and best >= loop.target_score:
            return f"target score {loop.target_score} reached"
        return None

    def _generation_line(self, generation: int) -> str:
        archive = self.store.archive()
        best = max(archive, key=lambda n: n.score or 0.0)
        return f"generation {generation}: archive {len(archive)} agents, best {best.node_id} ({self._score_text(best)})"

    @staticmethod
    def _score_text(node: Node) -> str:
        if not node.stages:
            return "not evaluated"
        s = node.stages[-1]
        return f"{s.resolved}/{s.total} resolved ({s.score:.0%})"


def load_cached_evaluation(path: Path, stage_tasks: list[list[str]]) -> Evaluation:
    """A precomputed evaluation of the initial agent: JSON {task_id: outcome} (like the paper's root)."""
    data = json.loads(Path(path).read_text())
    outcomes = data.get("outcomes", data) if isinstance(data, dict) else None
    if not isinstance(outcomes, dict):
        raise ValueError(f"{path}: expected a JSON object mapping task ids to outcomes")
    results, stages = [], []
    for index, task_ids in enumerate(stage_tasks, 1):
        missing = [t for t in task_ids if t not in outcomes]
        if missing:
            raise ValueError(f"{path}: no cached outcome for tasks {missing[:5]} (stage {index})")
        bad = {t: outcomes[t] for t in task_ids if outcomes[t] not in OUTCOMES}
        if bad:
            raise ValueError(f"{path}: unknown outcomes {bad} (expected one of {', '.join(OUTCOMES)})")
        results += [TaskResult(t, index, outcomes[t], 0.0, "cached") for t in task_ids]
        stages.append(StageScore(index, sum(r.outcome == "resolved" for r in results), len(results)))
    return Evaluation(stages, results)
