"""Step 5: staged evaluation of an agent on benchmark tasks (DGM paper §4).

Stages come from config. Defaults follow the paper: 10 tasks; if ≥ 40% resolved, 50 more (score
over 60); on SWE-bench, if the 60-task score is ≥ 40% and ≥ the second-best fully evaluated score in
the archive, 140 more (score over 200). Stage scores are cumulative. The official code computes the
stage-3 threshold but never applies it; we apply it. With fewer than two fully evaluated archive
nodes there is no second-best score and only the 40% rule applies.

Crashes and timeouts count as failures, so every denominator is the number of tasks attempted.
A budget hit is not a failure: a task whose agent the gateway refused a call for budget raises
`BudgetExceeded` (from `LLMAccess.agent_env`), which ends the evaluation without a score.

A stage's tasks run in parallel (`evaluation.workers`, as the official code's 5 to 50 task workers);
each task holds one of the run's sandbox slots (`run.max_concurrency`) while its agent runs and its
patch is graded. Results are returned in evaluation order: stage by stage, in the stage's task order
(the order the tasks were started, not the order they finished).

Each task evaluation is a job of the run's executor (dgm/executor/): `attempt_task` runs wherever
the executor puts it, and the evaluator records what comes back.

Where the agent runs: on a host copy of the task's repository (`run_agent`), unless the benchmark
offers an in-image workspace for the task (SWE-bench: its image, /testbed), then inside that
image (`run_agent_in_image`, docker backend only; checked when the evaluator is built).
"""

from __future__ import annotations

import shutil
import time
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dgm.adaptive import STOP, StageRule, entry_bar, stage_decision
from dgm.agent_run import SandboxPolicy, run_agent, run_agent_in_image
from dgm.bench.base import Benchmark, agent_workspace
from dgm.config import AgentLimits, EvaluationSection, Stage, harness_timeout
from dgm.executor import Executor, InProcessExecutor, Job, Workplace
from dgm.executor.jobs import JOB_GRACE_S
from dgm.llm.budget import BudgetExceeded
from dgm.llm_access import LLMAccess
from dgm.progress import NoProgress, Progress
from dgm.splits import excluded_tasks
from dgm.store.records import StageScore, TaskResult

# (resolved so far by task run, the stage's ungraded task runs) -> whether a decision is already settled
OutcomesSettled = Callable[[dict[str, bool], list[str]], bool]

MAX_LOCAL_SLOTS = 64
TEST_DESCRIPTION_FALLBACK = "Run the repository's test suite with `python -m pytest -q`."


@dataclass
class Evaluation:
    stages: list[StageScore]
    results: list[TaskResult]
    skipped: int = 0  # task runs adaptive evaluation never started
    stop: dict | None = None  # where adaptive evaluation stopped a stage (for the events log)

    @property
    def score(self) -> float | None:
        return self.stages[-1].score if self.stages else None

    @property
    def tasks_evaluated(self) -> int:
        return len({r.task_id for r in self.results})

    @property
    def paper_compiled(self) -> bool:
        """The official code's "compiled" (its is_compiled_self_improve), counted over every evaluated stage
        as it does: at least one graded non-empty patch (resolved + unresolved > 0), and at least as many
        submitted task runs as stage 1 has. A run is submitted when the agent handed in a patch attempt
        (resolved, unresolved, empty_patch), not when it crashed or timed out. When only stage 1 ran, this
        is "every stage-1 task submitted"."""
        outcomes = [r.outcome for r in self.results]
        graded = outcomes.count("resolved") + outcomes.count("unresolved")
        submitted = graded + outcomes.count("empty_patch")
        # A stage stopped by adaptive evaluation counts the task runs it graded (dgm/adaptive.py).
        first = self.stages[0].graded if self.stages and self.stages[0].graded is not None else \
            (self.stages[0].total if self.stages else 0)
        return bool(self.stages) and graded > 0 and submitted >= first


def task_artifacts_dir(out_dir: Path, task_id: str, eval_index: int = 0) -> Path:
    """Where one evaluation of a task keeps its artifacts (repeated evaluations get a suffix)."""
    return out_dir / "tasks" / (task_id if eval_index == 0 else f"{task_id}.{eval_index}")


def made_patch(out_dir: Path, result: TaskResult) -> bool:
    """The agent left a non-empty patch on this task run (admission's "compiled" needs one on stage 1)."""
    patch = task_artifacts_dir(out_dir, result.task_id, result.eval_index) / "model_patch.diff"
    return patch.is_file() and patch.stat().st_size > 0


def resolve_stages(benchmark: Benchmark, cfg: EvaluationSection) -> list[list[str]]:
    """Task ids of each stage (a subset name or an explicit list); ValueError names the bad entry.

    A task already in an earlier stage is not run again (DGM's polyglot small and medium subsets share
    one), so a cumulative score counts every task once. Tasks `evaluation.exclude_unhealthy` flags are
    left out.
    """
    known, subsets = set(benchmark.task_ids()), benchmark.subsets()
    stages, seen = [], set(excluded_tasks(cfg))
    for index, stage in enumerate(cfg.stages):
        where = f"evaluation.stages.{index}.tasks"
        if isinstance(stage.tasks, list):
            tasks = stage.tasks
        elif stage.tasks in subsets:
            tasks = subsets[stage.tasks]
        else:
            raise ValueError(f"{where}: benchmark {benchmark.name!r} has no subset {stage.tasks!r} "
                             f"(subsets: {', '.join(subsets)})")
        unknown = [t for t in tasks if t not in known]
        if unknown:
            raise ValueError(f"{where}: {len(unknown)} task ids not in benchmark {benchmark.name!r} (first: "
                             f"{unknown[0]}); a stage's score is over all its tasks, so none may be missing")
        stages.append([t for t in dict.fromkeys(tasks) if t not in seen])
        seen.update(tasks)
    return stages


def stage_may_enter(stage: Stage, score_so_far: float, second_best: float | None) -> bool:
    """The staged-evaluation rule (also driven by dgm/simulate.py): the score over the previous stages
    must reach the stage's threshold and, if it asks, the second-best fully evaluated archive score."""
    if score_so_far < stage.threshold:
        return False
    return not (stage.require_second_best and second_best is not None and score_so_far < second_best)


class Evaluator:
    def __init__(self, *, benchmark: Benchmark, policy: SandboxPolicy, llm: LLMAccess, cfg: EvaluationSection,
                 limits: AgentLimits, progress: Progress | None = None, executor: Executor | None = None):
        self.benchmark = benchmark
        # Without a run's executor, tasks run here, as many at once as evaluate(workers=) asks.
        self.executor = executor or InProcessExecutor(Workplace(policy, benchmark), slots=MAX_LOCAL_SLOTS)
        self.policy = policy
        self.llm = llm
        self.cfg = cfg
        self.limits = limits
        # Longer than the agent's own time limit, so an agent that runs out of time still hands in its patch.
        self.task_timeout_s = harness_timeout(cfg.task_timeout_s, limits) if limits else cfg.task_timeout_s
        self.progress = progress or NoProgress()
        self.stage_tasks = resolve_stages(benchmark, cfg)
        self._check_backend()


    def _check_backend(self) -> None:
        """Fail before any work if tasks must run inside images and the backend cannot run images."""
        if not callable(getattr(self.benchmark, "agent_workspace", None)) or self.policy.backend == "docker":
            return
        in_image = [t for tasks in self.stage_tasks for t in tasks if agent_workspace(self.benchmark, t)]
        if in_image:
            raise ValueError(f"benchmark {self.benchmark.name!r} runs its agents inside task images "
                             f"(e.g. {in_image[0]}); sandbox.backend {self.policy.backend!r} cannot: use docker")

    @property
    def full_size(self) -> int:
        return sum(len(t) for t in self.stage_tasks) * self.cfg.num_evals

    # -- the staged procedure ---------------------------------------------------------------
    def may_enter(self, stage_index: int, so_far: StageScore, second_best: float | None) -> bool:
        return stage_may_enter(self.cfg.stages[stage_index], so_far.score, second_best)

    def evaluate(self, agent_dir: Path, node_id: str, attempt_id: str, out_dir: Path, *,
                 second_best: float | None = None, all_stages: bool = False, workers: int | None = None,
                 score_bars: tuple[float, ...] = (), outcomes_settled: OutcomesSettled | None = None) -> Evaluation:
        """`workers`: tasks in parallel (default `evaluation.workers`). What other decisions read, so an
        adaptive stage stops only once they are decided: `score_bars`, scores they compare the node's
        score against (keep_better); `outcomes_settled`, for one that reads task outcomes (paired_test)."""
        workers = workers or self.cfg.workers
        evaluation = Evaluation([], [])
        for index, task_ids in enumerate(self.stage_tasks):
            stages, results = evaluation.stages, evaluation.results
            if index > 0 and not all_stages and not self.may_enter(index, stages[-1], second_best):
                break
            jobs = [(t, k) for t in task_ids for k in range(self.cfg.num_evals)]
            self.progress.phase(attempt_id, "evaluating", len(results), len(results) + len(jobs))
            run = lambda job, stage=index + 1: self.run_task(agent_dir, job[0], stage, node_id, attempt_id,
                                                              out_dir, job[1])
            decide = None
            if self.cfg.adaptive and not all_stages and index + 1 < len(self.stage_tasks):
                decide = self._stage_decider(index, evaluation, jobs, second_best, score_bars, outcomes_settled,
                                             out_dir)
            counted, launched, stop = run_in_order(jobs, run, workers, decide)
            results += counted
            resolved = sum(r.outcome == "resolved" for r in results)
            total = len(results) + len(jobs) - len(counted)
            stopped = stop is not None
            stages.append(StageScore(index + 1, resolved, total, len(results) if stopped else None))
            if stopped:
                evaluation.skipped = len(jobs) - launched
                evaluation.stop = {"stage": index + 1, "decided_after": len(counted), "stage_runs": len(jobs),
                                   "started": launched, "not_started": evaluation.skipped,
                                   "ran_uncounted": launched - len(counted), "entry_bar": stop}
                break
        return evaluation

    def _stage_decider(self, index: int, so_far: Evaluation, jobs: list[tuple[str, int]], second_best: float | None,
                       score_bars: tuple[float, ...], outcomes_settled: OutcomesSettled | None, out_dir: Path):
        """The stop rule of one stage (dgm/adaptive.py) as a function of its graded prefix: the entry bar if
        the stage can stop there, else None."""
        following = self.cfg.stages[index + 1]
        before = so_far.stages[-1] if so_far.stages else StageScore(0, 0, 0)
        earlier = list(so_far.results)
        rule = StageRule(entry_bar(following.threshold, following.require_second_best, second_best),
                         tuple(score_bars), needs_patch=index == 0)

        def decide(prefix: list[TaskResult]) -> float | None:
            verdict = stage_decision(resolved_before=before.resolved, total_before=before.total,
                                     graded=[r.outcome == "resolved" for r in prefix], stage_size=len(jobs),
                                     rule=rule, patch_seen=any(made_patch(out_dir, r) for r in prefix))
            if verdict != STOP:
                return None
            ungraded = [outcome_key(task, k) for task, k in jobs[len(prefix):]]
            if outcomes_settled and not outcomes_settled(resolved_map(earlier + prefix), ungraded):
                return None
            return rule.entry_bar
        return decide

    # -- one task ----------------------------------------------------------------------------
    def run_task(self, agent_dir: Path, task_id: str, stage: int, node_id: str, attempt_id: str, out_dir: Path,
                 eval_index: int = 0) -> TaskResult:
        task_dir = task_artifacts_dir(out_dir, task_id, eval_index)
        started = time.monotonic()
        # The eval index is part of the call scope, so repeated evaluations replay in the same order.
        scope = task_id if eval_index == 0 else f"{task_id}#{eval_index}"
        try:
            with self.llm.agent_env(self.llm.context(node_id, attempt_id, "task", scope)) as env:
                job = task_job(f"{node_id} task {scope}", agent_dir=agent_dir, task_id=task_id, llm_env=env,
                               limits=self.limits, task_timeout_s=self.task_timeout_s,
                               grade_timeout_s=self.cfg.grade_timeout_s, out_dir=task_dir)
                outcome, exit_status = self.executor.run(job)
        except BudgetExceeded:  # the budget, not the agent, ended this task: no outcome
            raise
        except Exception as exc:  # a lost or hung job costs this task, not the node
            task_dir.mkdir(parents=True, exist_ok=True)
            (task_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
            outcome, exit_status = "error", "framework_error"
        finally:
            self.progress.step(attempt_id)
        return TaskResult(task_id, stage, outcome, round(time.monotonic() - started, 3), exit_status, eval_index)


def run_in_order(jobs: list, run: Callable, workers: int, decide: Callable | None = None) -> tuple[list, int, object]:
    """Run `jobs` with up to `workers` at once, started in order; returns (results in job order, jobs started,
    stop). With `decide`, after each completion it is asked about the longest completed prefix, one prefix
    length at a time; at the first prefix it answers non-None for, no further job starts, jobs in flight
    finish, and only that prefix is returned (so the results depend on the outcomes, not on timing)."""
    results: list = [None] * len(jobs)
    counted, started, stop = len(jobs), 0, None
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        in_flight: dict = {}
        prefix = 0
        while True:
            while stop is None and started < len(jobs) and len(in_flight) < max(1, workers):
                in_flight[pool.submit(run, jobs[started])] = started
                started += 1
            if not in_flight:
                break
            done, _ = wait(in_flight, return_when=FIRST_COMPLETED)
            for future in done:
                results[in_flight.pop(future)] = future.result()  # BudgetExceeded ends the evaluation
            while decide and stop is None and prefix < len(jobs) - 1 and results[prefix] is not None:
                prefix += 1  # the whole stage graded is no early stop: the last prefix needs no question
                stop = decide(results[:prefix])
                if stop is not None:
                    counted = prefix
    return results[:counted], started, stop


def outcome_key(task_id: str, eval_index: int) -> str:
    """A task run's name in the outcome maps the paired admission test compares."""
    return task_id if eval_index == 0 else f"{task_id}#{eval_index}"


def resolved_map(results: list[TaskResult]) -> dict[str, bool]:
    """{task run: resolved}, the form the paired admission test compares."""
    return {outcome_key(r.task_id, r.eval_index): r.outcome == "resolved" for r in results}


def task_job(name: str, *, agent_dir: Path, task_id: str, llm_env: dict[str, str], limits: AgentLimits,
             task_timeout_s: float, grade_timeout_s: float, out_dir: Path) -> Job:
    """One evaluation of one task as an executor job (it runs where the executor puts it)."""
    return Job(name, attempt_task, inputs={"agent_dir": agent_dir}, out_dir=out_dir, llm_env=llm_env,
               kwargs={"task_id": task_id, "limits": limits.model_dump(),
                       "task_timeout_s": task_timeout_s, "grade_timeout_s": grade_timeout_s},
               timeout_s=task_timeout_s + grade_timeout_s + JOB_GRACE_S)


def attempt_task(place: Workplace, *, out_dir: Path, agent_dir: Path, task_id: str, llm_env: dict[str, str],
                 limits: dict, task_timeout_s: float, grade_timeout_s: float) -> tuple[str, str]:
    """(outcome, agent exit status) of the agent in agent_dir on one task; artifacts in out_dir."""
    benchmark, policy = place.benchmark, place.policy
    workspace = out_dir / "_workspace"
    try:
        info = benchmark.prepare_workspace(task_id, workspace)
        task = {
            "instance_id": info.instance_id,
            "problem_statement": info.problem_statement,
            "test_description": info.test_description or TEST_DESCRIPTION_FALLBACK,
            "limits": limits,
        }
        in_image = agent_workspace(benchmark, task_id)
        if in_image is None:
            run = run_agent(policy=policy, agent_dir=agent_dir, repo_dir=workspace, task=task, out_dir=out_dir,
                            llm_env=llm_env, timeout=task_timeout_s, toolchains=getattr(benchmark, "toolchains", []))
        else:
            run = run_agent_in_image(policy=policy, agent_dir=agent_dir, workspace=in_image, task=task,
                                     out_dir=out_dir, llm_env=llm_env, timeout=task_timeout_s,
                                     benchmark=benchmark.name)
        (out_dir / "model_patch.diff").write_text(run.patch)
        return _outcome(benchmark, policy, task_id, run, out_dir, grade_timeout_s), run.exit_status
    except Exception as exc:  # a broken task or agent must not take the node down with it
        (out_dir / "error.txt").write_text(f"{type(exc).__name__}: {exc}\n")
        return "error", "framework_error"
    finally:
        shutil.rmtree(workspace, ignore_errors=True)


def _outcome(benchmark: Benchmark, policy: SandboxPolicy, task_id: str, run, task_dir: Path, timeout: float) -> str:
    if run.result.timed_out:
        return "timeout"
    if not run.patch.strip():
        return "error" if run.crashed else "empty_patch"
    return benchmark.grade(task_id, run.patch, backend=policy.backend, timeout=timeout, log_dir=task_dir).outcome
