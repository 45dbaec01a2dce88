"""The Huxley-Gödel Machine's search loop (`selection.method: hgm`), beside DGM's generations in dgm/loop.py.

    tree <- {initial agent, evaluated}
    for each step, until loop.generations steps, selection.hgm.max_task_evals evaluations, or a stop:
        action <- next_action(tree, evaluations so far)                        (hgm.py)
        expand:   child <- the chosen node rewrites a copy of itself; own tests  (loop.create_child)
                  the child enters the tree unevaluated
        evaluate: the chosen node runs one task it has not yet been evaluated on (evaluate.run_task)
                  its score and admission are updated                            (admission.py)

A step is one attempt "step:0" (generation = step), so a resumed run re-runs an unfinished step and
makes the same decision: the step's RNG is seeded by (run seed, step) and the tree it reads is what
the finished steps published. Steps run one at a time (the official code runs up to max_workers
asynchronously, counting expansions under way: `next_action(pending_expansions=...)` is there for that).

Evaluations count failures as the DGM path does: unresolved, empty patch, error and timeout are all
failures of the Bernoulli trial. Each task is evaluated once per node (repeat index 0).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dgm.hgm import EXPAND, Action, HGMParams, TreeNode, next_action, pick_task
from dgm.llm.budget import BudgetExceeded
from dgm.store import Node, StageScore, TaskResult

if TYPE_CHECKING:
    from dgm.loop import DarwinGodelMachine


class HGMSearch:
    def __init__(self, machine: "DarwinGodelMachine"):
        self.machine = machine
        self.cfg = machine.cfg
        self.store = machine.store
        hgm = self.cfg.selection.hgm
        self.params = HGMParams(hgm.alpha, hgm.cool_down, hgm.cooling_beta, hgm.max_task_evals)
        self.pool = [t for stage in machine.ctx.evaluator.stage_tasks for t in stage]

    def run(self) -> str:
        self.machine.initialize_archive()
        for step in range(1, self.cfg.loop.generations + 1):
            if stop := self.machine.stop_reason() or self.budget_reason():
                return stop
            if self.machine._generation_done(step):
                continue
            if self.store.attempt_finished(f"{step}:0"):  # published before a crash: only the step's end is missing
                self.store.finish_generation(step)
                continue
            action = self.decide(step)
            if action is None:
                return "hgm: every node is evaluated on every task and none can be expanded"
            if action.kind == EXPAND:
                self.machine.create_child(step, 0, action.node_id, evaluate=False)
            else:
                self.evaluate(step, action.node_id)
            self.store.finish_generation(step)
        return self.machine.stop_reason() or self.budget_reason() or "generations done (HGM steps)"

    # -- the policy ------------------------------------------------------------------------
    def tree(self) -> list[TreeNode]:
        """Tree members: the initial agent and every child whose own tests passed, with their outcomes."""
        members = [n for n in self.store.nodes() if n.parent_id is None or n.compiled]
        return [self._tree_node(n, self.store.task_results(n.node_id)) for n in members]

    def _tree_node(self, node: Node, results: list[TaskResult]) -> TreeNode:
        solved = sum(r.outcome == "resolved" for r in results)
        tried = {r.task_id for r in results}
        return TreeNode(node.node_id, node.parent_id, solved, len(results) - solved, expandable=node.admitted,
                        untried_tasks=sum(t not in tried for t in self.pool))

    def evaluations(self) -> int:
        """N: task evaluations the search made. The initial agent's evaluation at the start is not counted;
        it covers every task of the pool (all stages), so the search never evaluates the initial agent."""
        return sum(t.evaluations for t in self.tree() if t.parent_id is not None)

    def decide(self, step: int) -> Action | None:
        rng = self.machine._rng("hgm", step)
        action = next_action(self.tree(), self.evaluations(), rng, self.params)
        if action is not None:
            self.store.start_generation(step, [action.node_id])
            self.store.events.append("hgm_step", step=step, action=action.kind, node=action.node_id,
                                     evaluations=self.evaluations(), tau=action.tau, draws=action.draws,
                                     counts={n: list(c) for n, c in action.counts.items()})
        return action

    def budget_reason(self) -> str | None:
        budget = self.params.max_task_evals
        if budget is not None and self.evaluations() >= budget:
            return f"selection.hgm.max_task_evals ({budget}) reached"
        return None

    # -- an evaluation step ------------------------------------------------------------------
    def evaluate(self, step: int, node_id: str) -> None:
        """Run the node on one task it has not been evaluated on, then publish the result and re-judge it."""
        attempt_id = f"{step}:0"
        if self.store.attempt_finished(attempt_id):
            return
        work = self.store.begin_attempt(attempt_id, step, 0, node_id)
        node = self.store.node(node_id)
        before = self.store.task_results(node_id)
        tried = {r.task_id for r in before}
        task_id = pick_task([t for t in self.pool if t not in tried], self.machine._rng("hgm-task", step))
        self.machine.ctx.progress.phase(attempt_id, "evaluating", 0, 1)
        try:
            result = self.machine.ctx.evaluator.run_task(self.machine.checkout(node_id), task_id, 1, node_id,
                                                         attempt_id, work)
        except BudgetExceeded as exc:
            self.machine._pause(attempt_id, node_id, exc)
            raise
        results = before + [result]
        resolved = sum(r.outcome == "resolved" for r in results)
        node.stages, node.score = [StageScore(1, resolved, len(results))], resolved / len(results)
        node.tasks_evaluated, node.status = len({r.task_id for r in results}), "evaluated"
        verdict = self.machine.judge(node, results)
        self.store.add_evaluations(attempt_id, node, [result], work)
        self.store.events.append("hgm_evaluation", step=step, node=node_id, task=task_id, outcome=result.outcome,
                                 score=node.score, admitted=node.admitted, reason=verdict.reason)
        self.machine.ctx.report(f"  step {step}: {node_id} on {task_id}: {result.outcome} "
                                f"({resolved}/{len(results)} resolved)")
