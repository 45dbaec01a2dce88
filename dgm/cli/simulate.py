"""`dgm simulate`: compare search strategies on synthetic archive dynamics, at $0 (dgm/simulate.py)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from dgm.cli import add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "simulate", _simulate,
                    "Simulate archive dynamics (true solve rates, heritable drift, Bernoulli task outcomes) through "
                    "the "
                    "loop's own selection, admission and evaluation-scheduling code; report, per method, evaluations "
                    "to reach a target true rate and the best true rate at the budget, with 95% intervals over seeds.",
                    "dgm simulate --method score_child_prop,hgm,best,random --seeds 20 --budget 3000 "
                    "--figure sim.png")
    p.add_argument("--method", default="score_child_prop,hgm,best,random",
                   help="comma-separated: hgm, score_child_prop, score_prop, best (greedy), random, latest "
                        "(default: score_child_prop,hgm,best,random)")
    p.add_argument("--seeds", type=int, default=20, help="independent runs per method (default 20)")
    p.add_argument("--budget", type=int, default=3000, help="task evaluations per run (default 3000)")
    p.add_argument("--target", type=float, default=0.5, help="true solve rate to reach (default 0.5)")
    p.add_argument("--admission", default="keep_all", help="keep_all, keep_better or paired_test (default keep_all)")
    p.add_argument("--alpha", type=float, default=0.05, help="paired_test significance level (default 0.05)")
    p.add_argument("--hgm-alpha", type=float, default=0.6, help="HGM: expand while N^alpha >= tree children (0.6)")
    p.add_argument("--adaptive", action="store_true",
                   help="DGM methods: stop a stage once its outcome is decided (evaluation.adaptive)")
    p.add_argument("--json", action="store_true", help="the same figures as JSON (with the per-seed curves)")
    p.add_argument("--figure", type=Path, default=None, help="write the best-rate-vs-evaluations figure here (PNG)")


def _simulate(args) -> int:
    from dgm.admission import METHODS as ADMISSIONS, AdmissionRule
    from dgm.hgm import HGMParams
    from dgm.simulate import compare, plot

    methods = [m.strip() for m in args.method.split(",") if m.strip()]
    problems = [f"--seeds must be >= 1 (got {args.seeds})"] * (args.seeds < 1)
    problems += [f"--budget must be >= 1 (got {args.budget})"] * (args.budget < 1)
    problems += [f"--target must be in (0, 1) (got {args.target})"] * (not 0 < args.target < 1)
    if args.admission not in ADMISSIONS:
        problems.append(f"--admission: unknown {args.admission!r} ({', '.join(ADMISSIONS)})")
    if problems:
        print(f"dgm simulate: {problems[0]}", file=sys.stderr)
        return 2
    try:
        report = compare(methods, args.seeds, args.budget, target=args.target,
                         rule=AdmissionRule(args.admission, alpha=args.alpha), hgm=HGMParams(alpha=args.hgm_alpha),
                         adaptive=args.adaptive)
    except ValueError as exc:
        print(f"dgm simulate: {exc}", file=sys.stderr)
        return 2
    if args.figure:
        report["figure"] = str(plot(report, args.figure))
    if args.json:
        print(json.dumps(report))
    else:
        _table(report)
    return 0


def _table(report: dict) -> None:
    first = report["summary"][0]
    table = Table(title=f"Simulated search: {first['seeds']} seeds per method, budget {first['budget']} task "
                        f"evaluations, target true rate {first['target']:.2f}"
                        f"{', adaptive evaluation' if report['adaptive'] else ''} (synthetic world, no model)")
    table.add_column("method", no_wrap=True)
    for column in ("reached", "evals to target: median [95% CI]", "best true rate: mean [95% CI]",
                   "handed-in true rate: mean [95% CI]", "children"):
        table.add_column(column)
    text = lambda x: "not reached" if x is None else f"{x:.0f}"
    for s in report["summary"]:
        low, high = s["evals_to_target_ci95"]
        best_low, best_high = s["best_rate_ci95"]
        handed_low, handed_high = s["handed_in_rate_ci95"]
        table.add_row(s["method"], f"{s['reached']}/{s['seeds']}",
                      f"{text(s['evals_to_target_median'])} [{text(low)}, {text(high)}]",
                      f"{s['best_rate_mean']:.3f} [{best_low:.3f}, {best_high:.3f}]",
                      f"{s['handed_in_rate_mean']:.3f} [{handed_low:.3f}, {handed_high:.3f}]",
                      f"{s['children_mean']:.1f}")
    console = Console()
    console.print(table)
    console.print(f"admission: {report['admission']['method']}; evaluations to target of a seed that never reached it "
                  "count as infinite; best = best true rate of any admitted evaluated agent (oracle view); handed-in = "
                  "true rate of the admitted agent with the highest Wilson lower bound; intervals: percentile "
                  "bootstrap over seeds")
    if report.get("figure"):
        console.print(f"figure: {report['figure']}")
