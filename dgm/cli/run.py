"""`dgm run` and `dgm status`."""

from __future__ import annotations

import json
import sys

import yaml
from rich.console import Console
from rich.table import Table

from dgm.cli import add_command
from dgm.analysis.runview import resolve_run
from dgm.llm.base import PURPOSES, SCRIPTED_BANNER
from dgm.store import RunStore, StoreError
from dgm.store.records import PENDING_APPROVAL


def register(subparsers) -> None:
    from dgm.run import add_arguments

    run = add_command(subparsers, "run", _run, "Run (or resume) a DGM experiment.",
                      "dgm run experiments/quickstart.yaml --set loop.generations=5")
    add_arguments(run)
    status = add_command(subparsers, "status", _status, "Show a run's generations, nodes, and LLM spend.",
                         "dgm status archive/quickstart-20261121-101500-s0 --json")
    status.add_argument("run", help="run directory (or a run id under ./archive)")
    status.add_argument("--json", action="store_true", help="machine-readable output")


def _run(args) -> int:
    from dgm.run import execute

    return execute(args.config, args.set, args.resume, args.yes)


def role_spend(store: RunStore, config_yaml: str) -> list[dict]:
    """LLM spend per model role, with the model each role is configured to use and the models it metered."""
    tree = yaml.safe_load(config_yaml) or {}
    llm = tree.get("llm") if isinstance(tree, dict) else None
    totals = {row["key"]: row for row in store.llm_totals("purpose")}
    metered = store.llm_models()
    empty = {k: 0 for k in ("calls", "prompt_tokens", "completion_tokens", "cached_tokens", "cost_usd",
                            "cache_hits", "budget_refusals")}
    rows = []
    for role in dict.fromkeys([*PURPOSES, *totals]):  # every role, even one without calls yet
        entry = llm.get(role) if isinstance(llm, dict) else None
        configured = (entry.get("model") or entry.get("provider")) if isinstance(entry, dict) else None
        numbers = {k: v for k, v in totals.get(role, empty).items() if k != "key"}
        rows.append({"role": role, "configured_model": configured, "models": metered.get(role, []), **numbers})
    return rows


def status_data(store: RunStore) -> dict:
    info = store.run_info()
    nodes = store.nodes()
    return {
        "run_id": info["run_id"],
        "status": info["status"],
        "stop_reason": info["stop_reason"],
        "scripted_model": bool(info["scripted"]),
        "note": SCRIPTED_BANNER if info["scripted"] else None,
        "generations": len(store.generations()),
        "paused_attempts": store.paused_attempts(),
        "children": len(nodes) - 1 if nodes else 0,
        "admitted": sum(n.admitted for n in nodes),
        "nodes": [
            {
                "id": n.node_id, "parent": n.parent_id, "generation": n.generation, "entry": n.entry,
                "status": n.status, "compiled": n.compiled, "paper_compiled": n.paper_compiled,
                "admitted": n.admitted, "score": n.score,
                "tasks_evaluated": n.tasks_evaluated, "stages": [s.__dict__ | {"score": s.score} for s in n.stages],
                "error": n.error, "approval": n.approval, "approval_reason": n.approval_reason,
                "tasks_skipped": n.tasks_skipped,
            }
            for n in nodes
        ],
        "pending_approval": [n.node_id for n in nodes if n.approval == PENDING_APPROVAL],
        "adaptive": {"stopped_nodes": sum(1 for n in nodes if n.tasks_skipped),
                     "tasks_not_started": sum(n.tasks_skipped for n in nodes)},
        "llm": {
            "total": store.llm_totals()[0],
            "by_role": role_spend(store, info["config_yaml"]),
            "by_node": store.llm_totals("node_id"),
        },
    }


def _status(args) -> int:
    try:
        store = RunStore.open(resolve_run(args.run), read_only=True)
    except StoreError as exc:
        print(f"error: {exc}")
        return 2
    data = status_data(store)
    if args.json:
        print(json.dumps(data, indent=2))
        return 0
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    if data["scripted_model"]:
        console.print(f"[bold yellow]{SCRIPTED_BANNER}[/]")
    console.print(f"[bold]{data['run_id']}[/]: {data['status']}"
                  + (f" ({data['stop_reason']})" if data["stop_reason"] else "")
                  + f", {data['generations']} generations, {data['children']} children, {data['admitted']} in archive")
    # "paper": the official code's compiled rule (resolved + unresolved > 0, stage 1 fully submitted);
    # "?" when the child was not evaluated (its own tests failed), so the rule cannot be applied.
    table = Table("node", "parent", "gen", "entry", "status", "compiled", "paper", "admitted", "score", "tasks")
    for n in data["nodes"]:
        score = "-" if n["score"] is None else f"{n['score']:.2f}"
        table.add_row(n["id"], n["parent"] or "-", str(n["generation"]), (n["entry"] or "-")[:28], n["status"],
                      "yes" if n["compiled"] else "no", {True: "yes", False: "no", None: "?"}[n["paper_compiled"]],
                      ("yes" if n["admitted"] else "no") + (f" ({n['approval']})" if n["approval"] else ""), score,
                      str(n["tasks_evaluated"]))
    console.print(table)
    if data["pending_approval"]:
        console.print(f"waiting for approval: {', '.join(data['pending_approval'])} "
                      f"(dgm approve {args.run} NODE [--reject --reason TEXT])")
    if data["adaptive"]["tasks_not_started"]:
        console.print(f"adaptive evaluation: {data['adaptive']['tasks_not_started']} task runs not started "
                      f"({data['adaptive']['stopped_nodes']} stages stopped early)")
    for paused in data["paused_attempts"]:
        console.print(f"attempt {paused['attempt_id']} (parent {paused['parent_id'] or '-'}): {paused['status']}, "
                      "re-run on --resume")
    spend = Table("role", "model", "calls", "prompt tokens", "completion tokens", "cache hits", "budget refusals",
                  "cost $", title="LLM spend by model role")
    for row in data["llm"]["by_role"]:
        spend.add_row(row["role"], ", ".join(row["models"]) or row["configured_model"] or "-", str(row["calls"]),
                      str(row["prompt_tokens"]), str(row["completion_tokens"]), str(row["cache_hits"]),
                      str(row["budget_refusals"]), f"{row['cost_usd']:.4f}")
    console.print(spend)
    by_node = Table("node", "calls", "tokens", "cost $", title="LLM spend by node")
    for row in data["llm"]["by_node"]:
        by_node.add_row(row["key"] or "(run)", str(row["calls"]),
                        str(row["prompt_tokens"] + row["completion_tokens"]), f"{row['cost_usd']:.4f}")
    console.print(by_node)
    return 0
