"""The human approval gate (`admission.approval: human`): a person decides before a child may breed.

A child that admission lets in is stored with `approval = pending_approval`. It is data like every
node (scores, diff, logs), but not an archive member: selection, the second-best score and the
`n_i` child counts ignore it until someone decides. A decision is a write to the run store
(`decide`), made by `dgm approve RUN NODE [--reject --reason TEXT]` or the dashboard's buttons,
from any process, while the run is going or not; the run reads the store before every generation,
so it picks the decision up there. Every decision goes to events.jsonl ("approval").

The loop never waits for one child: the other parents keep breeding. It waits (run status
`waiting_for_approval`, shown by `dgm status`, the live view and the dashboard) only when
- `admission.max_pending` children are waiting (a reviewer is not flooded while away), or
- every admitted child waits and nothing else is eligible.
A rejected child stays in the tree, marked rejected, and is never a parent. The initial agent, which
the researcher chose, needs no approval.
"""

from __future__ import annotations

from pathlib import Path

from dgm.store import RunStore
from dgm.store.records import Node
from dgm.store.runstore import WAITING as WAITING_FOR_APPROVAL  # the run's status while the gate holds the loop


def waiting_reason(store: RunStore, max_pending: int | None) -> str | None:
    """Why the next generation must wait for a human decision, or None if it may start."""
    pending = [n.node_id for n in store.pending_approval()]
    if not pending:
        return None
    names = ", ".join(pending[:6]) + (" ..." if len(pending) > 6 else "")
    if max_pending is not None and len(pending) >= max_pending:
        return f"{len(pending)} children wait for approval (admission.max_pending: {max_pending}): {names}"
    if not store.archive():
        return f"no parent is eligible until a waiting child is approved: {names}"
    return None


def decide(run_dir: Path, node_id: str, *, approve: bool, reason: str | None, by: str) -> Node:
    """Record a decision on a pending node (StoreError names why it cannot be made) and log it."""
    store = RunStore.open(run_dir, beside_run=True)
    try:
        node = store.decide_approval(node_id, approve, reason)
        store.events.append("approval", node=node_id, decision=node.approval,
                            reason=reason, by=by)
        return node
    finally:
        store.close()
