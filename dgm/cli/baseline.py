"""`dgm baseline CONFIG --budget-from RUN [--out DIR] [--json]`: the equal-budget repeated-sampling baseline."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "baseline", _baseline,
                    "Equal-budget baseline: evaluate the initial agent on RUN's tasks again and again until RUN's "
                    "LLM spend ($; calls for the scripted model) is used up; report best-of-N, pass@k, pass^k and "
                    "the variance from task sampling vs run to run.",
                    "dgm baseline experiments/quickstart.yaml --budget-from archive/quickstart-20261130-s0")
    p.add_argument("config", nargs="?", help="experiment YAML giving the models, sandbox and initial agent")
    p.add_argument("--budget-from", required=True, metavar="RUN", help="the run whose tasks and spend to match")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--out", type=Path,
                   help="baseline run directory (default: RUN/baseline-RUNNAME, where dgm report finds it)")
    p.add_argument("--max-repeats", type=int, default=100, help="stop after this many repeats (default 100)")
    p.add_argument("--report", action="store_true",
                   help="only report an existing baseline (the default directory or --out)")
    p.add_argument("--resume", action="store_true",
                   help="continue a baseline that was killed (the default directory or --out), with its saved "
                        "config; answers it had received are not paid again")
    p.add_argument("--yes", action="store_true", help="spend a paid endpoint's money without asking")
    p.add_argument("--json", action="store_true", help="the same figures as JSON")


def _baseline(args) -> int:
    from dgm.analysis.runview import resolve_run
    from dgm.baseline import Budget, baseline_config, check_spending, resume_baseline, run_baseline, summarize
    from dgm.config import ConfigError
    from dgm.llm.base import SCRIPTED_BANNER
    from dgm.store import StoreError

    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    try:
        source = resolve_run(args.budget_from)
        out = args.out or default_dir(source)
        if args.resume:
            resume_baseline(out, yes=args.yes, report=log)
        elif not args.report:
            if not args.config:
                raise ConfigError("give a CONFIG file (models, sandbox, initial agent), or --report")
            config, budget = baseline_config(args.config, args.set, source), Budget.of_run(source)
            if (out / "run.db").exists():
                raise ConfigError(f"{out} holds a baseline already: continue it with dgm baseline --budget-from "
                                  f"{args.budget_from} --resume{f' --out {args.out}' if args.out else ''}")
            check_spending(config, budget, source.name, args.yes, log)
            log(f"baseline of {source.name}: budget {budget.text()} -> {out}")
            run_baseline(config, source, out, max_repeats=args.max_repeats, report=log)
        summary = summarize(out)
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        summary["note"] = SCRIPTED_BANNER if summary["scripted_model"] else None
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
        print(f"baseline run directory: {out}")
    return 0


def default_dir(source: Path) -> Path:
    """Inside the run, so `dgm report RUN` and `dgm plot compare RUN` find it (the name is its run id)."""
    return source / f"baseline-{source.name}"


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from dgm.llm.base import SCRIPTED_BANNER

    console = Console(highlight=False)
    if s["scripted_model"]:
        console.print(f"[bold yellow]⚠ {SCRIPTED_BANNER}[/]")
    console.print(equal_budget_table(s))
    ks = list(s["pass_at_k"])
    passk = Table("k", *[str(k) for k in ks],
                  title=f"pass@k and pass^k over {s['repeats']} repeats x {s['tasks']} tasks")
    passk.add_row("pass@k (Codex, unbiased)", *[f"{s['pass_at_k'][k]:.3f}" for k in ks])
    passk.add_row("pass^k (tau-bench)", *[f"{s['pass_hat_k'][k]:.3f}" for k in ks])
    console.print(passk)
    console.print(variance_table(s["variance"], "repeat"))


def equal_budget_table(s: dict) -> "Table":
    from rich.table import Table

    budget, src = s["budget"], s["source"] or {}
    unit = (lambda v: f"${v:.2f}") if budget["unit"] == "usd" else (lambda v: f"{v:.0f} calls")
    table = Table("", "search run", "baseline (initial agent, repeated)",
                  title=f"Equal budget: {s['baseline_run']} vs {s['source_run']}")
    table.add_row("budget", unit(budget["amount"]), f"{unit(budget['spent'])} spent")
    table.add_row("samples", f"{src.get('children', '?')} children", f"{s['repeats']} repeats x {s['tasks']} tasks")
    table.add_row("initial agent", _score(src.get("initial_score")), f"{s['mean_pass_at_1']:.3f} (mean pass@1)")
    table.add_row("best (chosen on the same tasks)",
                  f"{_score(src.get('best_search_score'))} ({src.get('best_node', '-')}, search score)",
                  f"{s['best_of_n']:.3f} (best-of-{s['repeats']})")
    table.add_row("any sample solves the task", "", f"{s['pass_at_k'][max(s['pass_at_k'])]:.3f} (pass@{s['repeats']})")
    confirmed = src.get("confirmed")
    if confirmed:  # every repeat is the initial agent's code: on held-out tasks it scores what the initial does
        table.add_row(f"best, confirmed on {confirmed['split']} ({confirmed['tasks']} tasks x {confirmed['repeats']})",
                      f"{confirmed['best_score']:.3f} ({confirmed['best_node']})",
                      f"{confirmed['initial_score']:.3f} (the initial agent's code)")
    return table


def variance_table(v: dict, across: str) -> "Table":
    """Task sampling (bootstrap over tasks) beside run to run (spread across repeats or seeds)."""
    from rich.table import Table

    table = Table("source of variance", "estimate", "how", title="Where the score's variance comes from")
    interval = v.get("task_sampling_interval95")
    ci = f" (95% {interval[0]:.2f}–{interval[1]:.2f})" if interval else ""
    table.add_row("task sampling", f"SE {v['task_sampling_se']:.3f}{ci}",
                  f"bootstrap over the {v['tasks']:g} tasks of the mean score {v['mean_score']:.3f}")
    if v["run_to_run_sd"] is None:
        table.add_row(f"{across} to {across}", "-", f"needs >= 2 {across}s")
    else:
        se = v.get("run_to_run_se_of_mean")
        table.add_row(f"{across} to {across}",
                      f"SD {v['run_to_run_sd']:.3f}" + (f" (SE of mean {se:.3f})" if se is not None else ""),
                      f"spread of the score across {v['repeats']} {across}s")
    return table


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"
