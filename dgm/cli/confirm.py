"""`dgm confirm RUN [--top K] [--split heldout] [--repeats R] [--json]`: the winner's-curse correction."""

from __future__ import annotations

import json
import sys

from rich.console import Console
from rich.table import Table

from dgm.cli import add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "confirm", _confirm,
                    "Re-evaluate the top-K nodes by search score and the initial agent on the run's sealed "
                    "held-out tasks, R times each; report each confirmed score (95% interval), its gap to the "
                    "search score, and a paired test against the initial agent. Results go to RUN/confirm/.",
                    "dgm confirm archive/quickstart-20250101-120000-s0 --top 3 --repeats 2")
    p.add_argument("run", metavar="RUN", help="run directory or run id under ./archive")
    p.add_argument("--top", type=int, default=3, metavar="K", help="how many of the best nodes (default 3)")
    p.add_argument("--split", default="heldout",
                   help="heldout (the run's sealed split, default) or a benchmark subset name")
    p.add_argument("--repeats", type=int, default=1, metavar="R", help="evaluations of each task (default 1)")
    p.add_argument("--workers", type=int, default=None, help="tasks in parallel (default: the run's)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _confirm(args) -> int:
    from dgm.analysis.runview import resolve_run
    from dgm.config import ConfigError
    from dgm.confirm import ConfirmError, confirm_run
    from dgm.store import StoreError

    err = Console(stderr=True, highlight=False)
    try:
        report = confirm_run(resolve_run(args.run), top_k=args.top, split=args.split, repeats=args.repeats,
                             workers=args.workers, report=lambda line: err.print(line))
    except (ConfirmError, ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print_report(report, Console(highlight=False))
    return 0


def print_report(report, console: Console) -> None:
    from dgm.llm.base import SCRIPTED_BANNER

    if report.scripted:
        console.print(f"[bold yellow]{SCRIPTED_BANNER.upper()}[/]")
    where = "sealed held-out split" if report.sealed else "NOT held out: the search may have seen these tasks"
    if report.plan != "matches":
        console.print(f"[red]the run's plan.json check: {report.plan}[/] (held-out tasks taken from its config)")
    table = Table(title=f"confirmation of {report.run_id} on {report.split} ({where}): "
                        f"{len(report.tasks)} tasks x {report.repeats}")
    for column in ("node", "search", "confirmed", "95% CI", "gap", "+/- vs initial", "test", "p"):
        table.add_column(column, justify="left" if column in ("node", "test") else "right")
    for r in report.rows:
        search = "-" if r.search_score is None else f"{r.search_score:.3f} ({r.search_tasks})"
        table.add_row(r.node_id, search, f"{r.confirmed_score:.3f} ({r.resolved}/{r.total})",
                      f"[{r.low:.2f}, {r.high:.2f}]", "-" if r.gap is None else f"{r.gap:+.3f}",
                      "-" if r.test is None else f"+{r.better}/-{r.worse}", r.test or "-",
                      "-" if r.p_value is None else f"{r.p_value:.3g}")
    console.print(table)
    reused = len(report.rows) - len(report.evaluated)
    console.print(f"evaluated now: {', '.join(report.evaluated) or 'none'}"
                  + (f"; {reused} reused from {report.out_dir}" if reused else "")
                  + f"; LLM calls {report.llm_calls}, ${report.cost_usd:.2f}")
    console.print("gap = search score - confirmed score; p: two-sided, vs the initial agent on the same tasks")
