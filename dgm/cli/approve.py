"""`dgm approve RUN NODE [--reject --reason TEXT]`: decide on a child held by the human approval gate."""

from __future__ import annotations

import getpass
import json
import sys

from rich.console import Console
from rich.table import Table

from dgm.analysis.runview import resolve_run
from dgm.approval import decide
from dgm.cli import add_command
from dgm.store import RunStore, StoreError


def register(subparsers) -> None:
    p = add_command(subparsers, "approve", _approve,
                    "Approve (or --reject) a child waiting at the human approval gate (admission.approval: human); "
                    "works while the run is going. Without NODE: list the children waiting.",
                    "dgm approve archive/quickstart-approval g001s0   |   "
                    "dgm approve RUN g001s1 --reject --reason 'deletes tests'")
    p.add_argument("run", help="run directory or run id under ./archive")
    p.add_argument("node", nargs="?", help="node id waiting for approval (see `dgm tree`)")
    p.add_argument("--reject", action="store_true", help="never let this child be a parent")
    p.add_argument("--reason", help="why (kept in the tree and the events log)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def _approve(args) -> int:
    try:
        run_dir = resolve_run(args.run)
        if args.node is None:
            return _list_pending(run_dir, args.json)
        node = decide(run_dir, args.node, approve=not args.reject, reason=args.reason, by=f"cli:{getpass.getuser()}")
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    row = {"node": node.node_id, "decision": node.approval, "reason": node.approval_reason, "score": node.score}
    if args.json:
        print(json.dumps(row))
    else:
        Console(highlight=False).print(f"{node.node_id}: {node.approval}"
                                       + (f" ({node.approval_reason})" if node.approval_reason else ""))
    return 0


def _list_pending(run_dir, as_json: bool) -> int:
    store = RunStore.open(run_dir, read_only=True)
    try:
        rows = [{"node": n.node_id, "parent": n.parent_id, "score": n.score, "tasks": n.tasks_evaluated}
                for n in store.pending_approval()]
    finally:
        store.close()
    if as_json:
        print(json.dumps({"pending": rows}))
        return 0
    table = Table("node", "parent", "score", "tasks", title="children waiting for approval")
    for r in rows:
        score = "-" if r["score"] is None else f"{r['score']:.2f}"
        table.add_row(r["node"], r["parent"] or "-", score, str(r["tasks"]))
    Console(highlight=False).print(table)
    return 0
