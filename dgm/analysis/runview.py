"""A read-only snapshot of one run, shaped for browsing, figures, reports and the dashboard.

"Iteration" follows the paper: children in the order they were created (generation, then node id);
the initial agent is iteration 0. The "best" node is the highest-scoring admitted node (ties go to
the one evaluated on more tasks, then the earlier one); a child held or rejected by the human approval
gate is not in the archive.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from dgm.analysis import queries
from dgm.analysis.stats import wilson_interval
from dgm.store import Node, RunStore, StoreError, TaskResult

SCRIPTED_BANNER = "scripted model — test double, not an agent result"
DIAGNOSIS_KEYS = (
    "log_summarization", "potential_improvements", "improvement_proposal",
    "implementation_suggestion", "problem_description",
)


class RunNotFound(StoreError):
    pass


def resolve_run(ref: str | Path, archive_root: Path = Path("archive")) -> Path:
    """A run given as a run directory path or as a run id under ./archive."""
    path = Path(ref)
    if (path / "run.db").is_file():
        return path
    candidate = Path(archive_root) / str(ref)
    if (candidate / "run.db").is_file():
        return candidate
    raise RunNotFound(
        f"no run {str(ref)!r}: neither a run directory (with run.db) nor a run id under {archive_root}/"
    )


@dataclass
class ProgressPoint:
    iteration: int
    node_id: str
    best_so_far: float | None
    archive_mean: float | None
    lineage_score: float | None  # score of the best node's ancestor current at this iteration


@dataclass
class RunView:
    run_dir: Path
    run_id: str
    scripted: bool
    status: str
    nodes: list[Node]
    results: dict[str, list[TaskResult]]
    calls: list[dict]
    in_flight: list[dict] = field(default_factory=list)
    generations: list[dict] = field(default_factory=list)

    # -- loading -----------------------------------------------------------------------
    @classmethod
    def load(cls, ref: str | Path) -> "RunView":
        run_dir = resolve_run(ref)
        store = RunStore.open(run_dir, read_only=True)
        try:
            info = store.run_info()
            nodes = sorted(store.nodes(), key=lambda n: (n.parent_id is not None, n.generation, n.node_id))
            return cls(
                run_dir=run_dir, run_id=info["run_id"], scripted=bool(info["scripted"]), status=info["status"],
                nodes=nodes, results=queries.all_task_results(store), calls=queries.llm_calls(store),
                in_flight=queries.attempts_in_flight(store), generations=store.generations(),
            )
        finally:
            store.close()

    # -- nodes -------------------------------------------------------------------------
    @property
    def by_id(self) -> dict[str, Node]:
        return {n.node_id: n for n in self.nodes}

    def node(self, node_id: str) -> Node:
        try:
            return self.by_id[node_id]
        except KeyError:
            known = ", ".join(n.node_id for n in self.nodes[:12])
            raise StoreError(f"run {self.run_id} has no node {node_id!r} (nodes: {known}{' ...' if len(self.nodes) > 12 else ''})") from None

    def iteration(self, node_id: str) -> int:
        return [n.node_id for n in self.nodes].index(node_id)

    def children(self, node_id: str) -> list[Node]:
        return [n for n in self.nodes if n.parent_id == node_id]

    def roots(self) -> list[Node]:
        ids = self.by_id
        return [n for n in self.nodes if n.parent_id is None or n.parent_id not in ids]

    def best(self) -> Node | None:
        scored = [n for n in self.nodes if n.score is not None and n.in_archive] or [
            n for n in self.nodes if n.score is not None
        ]
        if not scored:
            return None
        return max(scored, key=lambda n: (n.score, n.tasks_evaluated, -self.iteration(n.node_id)))

    def lineage(self, node_id: str) -> list[Node]:
        """Root ... node_id, following parent links."""
        chain, seen, ids = [], set(), self.by_id
        current = ids.get(node_id)
        while current is not None and current.node_id not in seen:
            chain.append(current)
            seen.add(current.node_id)
            current = ids.get(current.parent_id) if current.parent_id else None
        return chain[::-1]

    def stage_sizes(self) -> list[int]:
        return sorted({s.total for n in self.nodes for s in n.stages})

    @staticmethod
    def interval(node: Node) -> tuple[float, float] | None:
        if not node.stages:
            return None
        last = node.stages[-1]
        return wilson_interval(last.resolved, last.total)

    # -- artifacts ---------------------------------------------------------------------
    def node_dir(self, node_id: str) -> Path:
        return self.run_dir / "nodes" / node_id

    def diagnosis(self, node_id: str) -> dict | None:
        path = self.node_dir(node_id) / "diagnosis.json"
        if not path.is_file():
            return None
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            return {"error": f"{path} is not valid JSON: {exc}"}
        return data if isinstance(data, dict) else {"error": f"{path} holds {type(data).__name__}, not an object"}

    def change_title(self, node_id: str, width: int = 42) -> str:
        """A short title of the node's change, from its diagnosis' improvement proposal."""
        diag = self.diagnosis(node_id) or {}
        text = str(diag.get("improvement_proposal") or diag.get("title") or "").strip()
        if not text:
            return ""
        first = text.splitlines()[0].split(". ")[0].strip().rstrip(".")
        return first if len(first) <= width else first[: width - 1].rstrip() + "…"

    def patch(self, node_id: str) -> str | None:
        path = self.node_dir(node_id) / "patch.diff"
        return path.read_text(encoding="utf-8", errors="replace") if path.is_file() else None

    # -- series ------------------------------------------------------------------------
    def progress(self) -> list[ProgressPoint]:
        best = self.best()
        lineage_ids = {n.node_id for n in self.lineage(best.node_id)} if best else set()
        points, admitted_scores, best_so_far, lineage_score = [], [], None, None
        for i, n in enumerate(self.nodes):
            if n.admitted and n.score is not None:
                admitted_scores.append(n.score)
                best_so_far = n.score if best_so_far is None else max(best_so_far, n.score)
            if n.node_id in lineage_ids and n.score is not None:
                lineage_score = n.score
            mean = sum(admitted_scores) / len(admitted_scores) if admitted_scores else None
            points.append(ProgressPoint(i, n.node_id, best_so_far, mean, lineage_score))
        return points

    def cost_by_iteration(self) -> dict[str, list[dict]]:
        """{purpose: [{iteration, cost_usd, tokens} cumulative]} per iteration (calls without a known node go to 0)."""
        index = {n.node_id: i for i, n in enumerate(self.nodes)}
        per = defaultdict(lambda: [[0.0, 0] for _ in self.nodes])
        for c in self.calls:
            it = index.get(c["node_id"], 0 if c["node_id"] is None else None)
            if it is None or not self.nodes:
                continue  # a node still in flight: counted once it is published
            cell = per[c["purpose"]][it]
            cell[0] += c["cost_usd"]
            cell[1] += c["prompt_tokens"] + c["completion_tokens"]
        out = {}
        for purpose, cells in sorted(per.items()):
            cost = tokens = 0
            series = []
            for i, (dc, dt) in enumerate(cells):
                cost += dc
                tokens += dt
                series.append({"iteration": i, "cost_usd": cost, "tokens": tokens})
            out[purpose] = series
        return out

    def node_cost(self, node_id: str) -> dict[str, dict]:
        out: dict[str, dict] = {}
        for c in self.calls:
            if c["node_id"] == node_id:
                row = out.setdefault(c["purpose"], {"calls": 0, "tokens": 0, "cost_usd": 0.0})
                row["calls"] += 1
                row["tokens"] += c["prompt_tokens"] + c["completion_tokens"]
                row["cost_usd"] += c["cost_usd"]
        return out

    def total_cost(self) -> float:
        return sum(c["cost_usd"] for c in self.calls)

    def regressions(self, node_id: str) -> list[str]:
        """Tasks this node failed although its parent resolved them."""
        node = self.node(node_id)
        if not node.parent_id:
            return []
        parent_ok = {r.task_id for r in self.results.get(node.parent_id, []) if r.outcome == "resolved"}
        mine = {}
        for r in self.results.get(node_id, []):
            mine[r.task_id] = mine.get(r.task_id, False) or r.outcome == "resolved"
        return sorted(t for t in parent_ok if t in mine and not mine[t])
