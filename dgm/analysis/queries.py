"""Read-only queries over a run store that the figures and dashboard need in bulk.

Kept here (not in dgm/store) so the store's own API stays small; every function only reads.
"""

from __future__ import annotations

from dgm.store import RunStore, TaskResult


def all_task_results(store: RunStore) -> dict[str, list[TaskResult]]:
    """Every node's task results in one query: {node_id: [TaskResult, ...]}."""
    out: dict[str, list[TaskResult]] = {}
    rows = store.db.execute("SELECT * FROM task_results ORDER BY node_id, stage, task_id, eval_index")
    for r in rows:
        out.setdefault(r["node_id"], []).append(
            TaskResult(r["task_id"], r["stage"], r["outcome"], r["duration_s"], r["agent_exit"], r["eval_index"])
        )
    return out


def llm_calls(store: RunStore) -> list[dict]:
    """Every metered LLM call, oldest first (node, purpose, model, tokens, $)."""
    rows = store.db.execute(
        "SELECT id, node_id, attempt_id, purpose, task_id, model, prompt_tokens, completion_tokens, cached_tokens,"
        " cost_usd, cache_hit, error, created_at FROM llm_calls ORDER BY id"
    )
    return [dict(r) for r in rows]


def attempts_in_flight(store: RunStore) -> list[dict]:
    """Attempts started but not yet published (what a live run is working on now), with their phase."""
    return store.in_flight()
