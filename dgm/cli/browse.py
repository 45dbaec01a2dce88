"""`dgm tree`, `dgm show`, `dgm diff`, `dgm log`: read a run from the terminal."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.panel import Panel
from rich.syntax import Syntax
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from dgm.analysis.runview import SCRIPTED_BANNER, RunView
from dgm.analysis.trajectory import load_trajectory, render_trajectory, trajectory_path
from dgm.cli import add_command
from dgm.patches import patch_stats
from dgm.store import StoreError


def register(subparsers) -> None:
    p = add_command(subparsers, "tree", _tree, "Show a run's archive as a lineage tree.", "dgm tree archive/quickstart")
    p.add_argument("run", help="run directory or run id under ./archive")
    p = add_command(subparsers, "show", _show, "Show one node: parent, entry, diagnosis, patch, task outcomes, cost.",
                    "dgm show archive/quickstart g3n1")
    p.add_argument("run", help="run directory or run id under ./archive")
    p.add_argument("node", help="node id (see `dgm tree`)")
    p = add_command(subparsers, "diff", _diff, "Show a node's code change (vs its parent, or vs OTHER).",
                    "dgm diff archive/quickstart g3n1 initial")
    p.add_argument("run", help="run directory or run id under ./archive")
    p.add_argument("node", help="node id")
    p.add_argument("other", nargs="?", help="compare against this node instead of the parent")
    p = add_command(subparsers, "log", _log, "Show a trajectory: a task's, or the self-modification (TASK=self_modify).",
                    "dgm log archive/quickstart g3n1 self_modify")
    p.add_argument("run", help="run directory or run id under ./archive")
    p.add_argument("node", help="node id")
    p.add_argument("task", help="task id, or self_modify")
    p.add_argument("--full", action="store_true", help="do not shorten long messages")


def _console() -> Console:
    return Console(highlight=False)


def _guard(handler):
    """Turn store errors (missing run/node/task) into one clear line and exit code 2."""
    def wrapped(args):
        try:
            return handler(args)
        except StoreError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    return wrapped


def banner(console: Console, view: RunView) -> None:
    if view.scripted:
        console.print(Text(f"⚠ scripted model — {SCRIPTED_BANNER.split('— ', 1)[1]} (run {view.run_id})",
                           style="bold yellow"))


def score_text(view: RunView, node) -> str:
    if node.score is None or not node.stages:
        return "unscored"
    last = node.stages[-1]
    lo, hi = view.interval(node)
    return f"{node.score:.3f} [{lo:.2f}–{hi:.2f}] ({last.resolved}/{last.total})"


def approval_text(node) -> str:
    """The human gate's state of a node ("" when no gate holds it)."""
    if node.approval is None:
        return ""
    label = node.approval.replace("_", " ")
    return f"{label} ({node.approval_reason})" if node.approval_reason else label


@_guard
def _tree(args) -> int:
    view = RunView.load(args.run)
    console = _console()
    banner(console, view)
    best = view.best()
    lineage = {n.node_id for n in view.lineage(best.node_id)} if best else set()

    def label(node) -> Text:
        star = " ★ best" if best and node.node_id == best.node_id else ""
        flags = "compiled" if node.compiled else node.status
        gate = approval_text(node)
        text = Text(f"{node.node_id}  {score_text(view, node)}  {node.tasks_evaluated} tasks  {flags}{star}"
                    + (f"  {gate}" if gate else ""))
        if not node.in_archive:
            text.stylize("dim")
        elif node.node_id in lineage:
            text.stylize("bold green" if star else "green")
        return text

    root = Tree(f"run {view.run_id}  ({len(view.nodes)} nodes, status {view.status})")

    def add(parent_tree, node):
        branch = parent_tree.add(label(node))
        for child in view.children(node.node_id):
            add(branch, child)

    for r in view.roots():
        add(root, r)
    console.print(root)
    return 0


@_guard
def _show(args) -> int:
    view = RunView.load(args.run)
    node = view.node(args.node)
    console = _console()
    banner(console, view)
    t = Table(show_header=False, box=None)
    t.add_row("node", f"{node.node_id} (iteration {view.iteration(node.node_id)}, generation {node.generation})")
    t.add_row("parent", node.parent_id or "—")
    t.add_row("entry", node.entry or "—")
    t.add_row("status", f"{node.status}; compiled={node.compiled}; admitted={node.admitted}")
    if node.approval:
        t.add_row("approval", approval_text(node))
    t.add_row("score", score_text(view, node))
    for s in node.stages:
        stopped = f" (adaptive stop after {s.graded} graded; rest counted unresolved)" if s.graded is not None else ""
        t.add_row(f"  stage {s.stage}", f"{s.resolved}/{s.total} = {s.score:.3f}{stopped}")
    if node.error:
        t.add_row("error", node.error)
    patch = view.patch(node.node_id)
    if patch is not None:
        stats = patch_stats(patch)
        t.add_row("patch", f"{stats['files']} files, +{stats['added']} -{stats['removed']} lines")
    cost = view.node_cost(node.node_id)
    total = sum(c["cost_usd"] for c in cost.values())
    t.add_row("cost", f"${total:.4f} " + ", ".join(f"{p}: ${c['cost_usd']:.4f} ({c['tokens']} tok)" for p, c in cost.items()))
    console.print(t)
    diag = view.diagnosis(node.node_id)
    if diag:
        body = "\n".join(f"[b]{k}[/b]: {v if isinstance(v, str) else json.dumps(v)}" for k, v in diag.items()
                         if k in ("improvement_proposal", "problem_description", "error"))
        console.print(Panel(body or json.dumps(diag)[:500], title="diagnosis"))
    results = view.results.get(node.node_id, [])
    if results:
        regress = set(view.regressions(node.node_id))
        rt = Table(title=f"task outcomes ({sum(r.outcome == 'resolved' for r in results)}/{len(results)} resolved)")
        for col in ("task", "stage", "outcome", "agent exit", "seconds", ""):
            rt.add_column(col)
        for r in results:
            style = {"resolved": "green", "unresolved": "red", "empty_patch": "yellow"}.get(r.outcome, "magenta")
            rt.add_row(r.task_id, str(r.stage), Text(r.outcome, style=style), r.agent_exit or "", f"{r.duration_s:.1f}",
                       "regression" if r.task_id in regress else "")
        console.print(rt)
    return 0


@_guard
def _diff(args) -> int:
    view = RunView.load(args.run)
    node = view.node(args.node)
    if args.other:
        view.node(args.other)
        text = _lineage_diff(view, args.other, node.node_id)
    else:
        text = view.patch(node.node_id)
        if text is None:
            if not node.parent_id:
                raise StoreError(f"node {node.node_id!r} has no parent; give OTHER to compare against")
            text = _lineage_diff(view, node.parent_id, node.node_id)
    console = _console()
    banner(Console(stderr=True, highlight=False), view)  # stderr: the diff itself stays pipeable into git apply
    if sys.stdout.isatty():
        console.print(Syntax(text, "diff", theme="ansi_dark", word_wrap=True))
    else:
        sys.stdout.write(text if text.endswith("\n") or not text else text + "\n")
    return 0


def _lineage_diff(view: RunView, old: str, new: str) -> str:
    from dgm.store import RunStore

    store = RunStore.open(view.run_dir, read_only=True)
    try:
        if store.lineage is None:
            raise StoreError(f"run {view.run_id} has no agents.git")
        for node_id in (old, new):
            if not store.lineage.has(node_id):
                raise StoreError(f"node {node_id!r} has no agent code in agents.git (status {view.node(node_id).status})")
        return store.lineage.diff(old, new)
    finally:
        store.close()


@_guard
def _log(args) -> int:
    view = RunView.load(args.run)
    view.node(args.node)
    path = trajectory_path(view.run_dir, args.node, args.task)
    console = _console()
    banner(console, view)
    for heading, body in render_trajectory(load_trajectory(path), clip=0 if args.full else 4000):
        console.rule(heading, align="left")
        console.print(Text(body))
    return 0
