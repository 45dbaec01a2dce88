"""`dgm replay RUN`: re-execute a finished run from its saved config with every LLM answer taken from
the run's response cache (a miss is an error, never an upstream call), then compare the two runs.

Identical means: the same nodes (parents, entries, status, admission, scores per stage), the same
agent code (the same agents.git commit per node), the same patches and the same task outcomes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from dgm.config import Config, load_config
from dgm.store import RunStore


@dataclass
class ReplayReport:
    original: Path
    replay: Path
    upstream_calls: int
    replay_misses: int
    differences: list[str] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return not self.differences and self.replay_misses == 0


def replay_config(original: Path) -> Config:
    config = load_config(original / "config.yaml")  # the resolved config: its seed is set
    config.llm.cache = "replay"
    config.llm.cache_dir = (original / "llm_cache").resolve() if config.llm.cache_dir is None else config.llm.cache_dir
    # The cache is scoped by run: read the original run's answers (or those it read itself).
    config.llm.cache_run = config.llm.cache_run or RunStore.open(original, read_only=True).run_info()["run_id"]
    return config


def node_fingerprint(store: RunStore, node_id: str) -> dict:
    node = store.node(node_id)
    patch = store.node_dir(node_id) / "patch.diff"
    return {
        "parent": node.parent_id, "entry": node.entry, "status": node.status, "compiled": node.compiled,
        "admitted": node.admitted, "score": node.score, "commit": node.commit_sha,
        "stages": [(s.stage, s.resolved, s.total) for s in node.stages],
        "patch": patch.read_text() if patch.is_file() else None,
        "tasks": [(r.task_id, r.eval_index, r.outcome) for r in store.task_results(node_id)],
    }


def compare_runs(original: RunStore, replay: RunStore) -> list[str]:
    a = {n.node_id for n in original.nodes()}
    b = {n.node_id for n in replay.nodes()}
    differences = [f"node {n} only in the original" for n in sorted(a - b)]
    differences += [f"node {n} only in the replay" for n in sorted(b - a)]
    for node_id in sorted(a & b):
        left, right = node_fingerprint(original, node_id), node_fingerprint(replay, node_id)
        differences += [f"node {node_id}: {key} differs" for key in left if left[key] != right[key]]
    return differences


def count_upstream_calls(store: RunStore) -> tuple[int, int]:
    """(calls answered by the upstream, replay misses) as metered by the gateway."""
    rows = store.db.execute(
        "SELECT SUM(cache_hit = 0 AND error IS NULL), SUM(error LIKE '%replay_miss%') FROM llm_calls"
    ).fetchone()
    return int(rows[0] or 0), int(rows[1] or 0)
