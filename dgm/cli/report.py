"""`dgm report RUN [RUN2 ...] [--format md|csv]`: best scores with intervals, children, compile rate, cost."""

from __future__ import annotations

import sys

from dgm.analysis.report import render
from dgm.analysis.runview import RunView
from dgm.cli import add_command
from dgm.store import StoreError


def register(subparsers) -> None:
    p = add_command(subparsers, "report", _report,
                    "Summarise one run, or compare several: best score per stage (Wilson 95%), children, "
                    "compiled rate (ours and the official code's rule), LLM cost by purpose, task-sampling vs "
                    "run-to-run spread; a run's equal-budget baseline (RUN/baseline-*, dgm baseline) beside it.",
                    "dgm report archive/dgm-swe archive/greedy-swe --format md")
    p.add_argument("runs", nargs="+", metavar="RUN", help="run directories or run ids under ./archive")
    p.add_argument("--format", choices=("md", "csv"), default="md")


def with_baselines(runs: list[str]) -> list[str]:
    """The runs asked for, each followed by its equal-budget baselines (RUN/baseline-*, dgm baseline's default)."""
    from pathlib import Path

    from dgm.analysis.runview import resolve_run

    out: list[str] = []
    for ref in runs:
        out.append(ref)
        try:
            found = sorted(p.parent for p in resolve_run(ref).glob("baseline-*/run.db"))
        except StoreError:
            continue  # RunView.load names the bad run
        asked = {Path(r).resolve() for r in runs}
        out += [str(b) for b in found if b.resolve() not in asked]
    return out


def _report(args) -> int:
    try:
        views = [RunView.load(r) for r in with_baselines(args.runs)]
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.format == "csv" and any(v.scripted for v in views):
        print("⚠ scripted model — test double, not an agent result", file=sys.stderr)
    sys.stdout.write(render(views, args.format))
    return 0
