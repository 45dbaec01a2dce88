"""`dgm plan --baseline P --effect D` (tasks and cost a comparison needs) and `dgm plan CONFIG` (what its
stage sizes can detect)."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict

from rich.console import Console
from rich.table import Table

from dgm.cli import add_command

PAPER_CHILDREN = 80  # the paper's "80 iterations"
WORST_CASE_BASELINE = 0.5  # the score whose comparisons need the most tasks


def register(subparsers) -> None:
    p = add_command(subparsers, "plan", _plan,
                    "Power and budget planner. With --baseline and --effect: tasks each comparison needs "
                    "(paired McNemar and two-proportion designs) and the evaluation cost per child and per run. "
                    "With a CONFIG: the smallest gain each of its cumulative stage sizes can detect.",
                    "dgm plan --baseline 0.2 --effect 0.1 --cost-per-task 0.35  |  "
                    "dgm plan experiments/swebench.yaml --sizes 10,50,140")
    p.add_argument("config", nargs="?", help="experiment YAML whose stage sizes to assess")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key")
    p.add_argument("--baseline", type=float, default=None,
                   help=f"score of the agent to beat, e.g. the initial agent's (CONFIG default: {WORST_CASE_BASELINE}, "
                        "the worst case)")
    p.add_argument("--effect", type=float, default=None, help="gain to detect, in score points (0.1 = +10 points)")
    p.add_argument("--alpha", type=float, default=0.05, help="two-sided significance level (default 0.05)")
    p.add_argument("--power", type=float, default=0.8, help="chance to detect a real effect (default 0.8)")
    p.add_argument("--cost-per-task", type=float, default=None, metavar="USD", help="LLM cost of one task run")
    p.add_argument("--children", type=int, default=None,
                   help=f"children per run (default: the config's, else the paper's {PAPER_CHILDREN})")
    p.add_argument("--discordance", type=float, default=None,
                   help="paired design: share of tasks exactly one agent solves (default: as if independent)")
    p.add_argument("--sizes", default=None, metavar="N,N,...",
                   help="CONFIG: stage sizes to assess instead of loading its benchmark (e.g. 10,50,140)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def _plan(args) -> int:
    from dgm.config import ConfigError

    try:
        data = _config_plan(args) if args.config else _sample_plan(args)
    except (ValueError, ConfigError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(data, indent=2))
    else:
        (_print_config_plan if args.config else _print_sample_plan)(data, Console(highlight=False))
    return 0


def _sample_plan(args) -> dict:
    from dgm.power import plan_samples

    if args.baseline is None or args.effect is None:
        raise ValueError("give --baseline and --effect (or a CONFIG to assess its stage sizes)")
    children = args.children or PAPER_CHILDREN
    plans = plan_samples(args.baseline, args.effect, alpha=args.alpha, power=args.power,
                         cost_per_task=args.cost_per_task, children=children, discordance=args.discordance)
    return {"baseline": args.baseline, "effect": args.effect, "alpha": args.alpha, "power": args.power,
            "cost_per_task_usd": args.cost_per_task, "children": children, "discordance": args.discordance,
            "designs": [asdict(p) for p in plans]}


def _print_sample_plan(data: dict, console: Console) -> None:
    table = Table(title=f"tasks to detect {data['baseline']:.2f} -> {data['baseline'] + data['effect']:.2f} "
                        f"(alpha {data['alpha']:g} two-sided, power {data['power']:g})")
    run_cost = f"cost per run ({data['children']} children + initial)"
    for column in ("design", "tasks per agent", "cost per child", run_cost):
        table.add_column(column, justify="left" if column == "design" else "right")
    for p in data["designs"]:
        name = "paired (same tasks, McNemar)" if p["design"] == "paired" else "two-proportion (independent samples)"
        table.add_row(name, str(p["tasks"]), _usd(p["cost_per_child_usd"]), _usd(p["cost_per_run_usd"]))
    console.print(table)
    console.print("cost: task evaluations only (self-modification and diagnosis come on top); "
                  "paired: discordance " + ("as if independent (an upper bound)" if data["discordance"] is None
                                            else f"{data['discordance']:g}"))


def _config_plan(args) -> dict:
    from dgm.bench import load_benchmark
    from dgm.config import ConfigError, load_config
    from dgm.evaluate import resolve_stages
    from dgm.power import stage_power, tasks_needed

    config = load_config(args.config, args.set)
    if args.sizes:
        sizes = [int(n) for n in args.sizes.split(",")]
    else:
        try:
            benchmark = load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
            sizes = [len(tasks) for tasks in resolve_stages(benchmark, config.evaluation)]
        except (ValueError, KeyError, OSError, TypeError, RuntimeError) as exc:
            raise ConfigError(f"evaluation.benchmark {config.evaluation.benchmark!r}: {exc} "
                              f"(or give the stage sizes: --sizes 10,50,140)") from None
    sizes = [n * config.evaluation.num_evals for n in sizes]
    baseline = WORST_CASE_BASELINE if args.baseline is None else args.baseline
    loop = config.loop
    children = args.children or loop.max_children or loop.generations * loop.children_per_generation
    rows = [asdict(r) for r in stage_power(sizes, baseline, alpha=args.alpha, power=args.power,
                                           cost_per_task=args.cost_per_task)]
    if args.effect is not None:
        for row in rows:
            row["detects_effect"] = row["paired_effect"] is not None and row["paired_effect"] <= args.effect
    data = {"config": args.config, "baseline": baseline, "alpha": args.alpha, "power": args.power,
            "effect": args.effect, "children": children, "cost_per_task_usd": args.cost_per_task, "stages": rows}
    if args.effect is not None:
        data["tasks_needed_paired"] = tasks_needed(baseline, baseline + args.effect, alpha=args.alpha, power=args.power)
    if args.cost_per_task is not None:
        first, full = rows[0]["cost_usd"], rows[-1]["cost_usd"]
        data["cost_per_run_usd"] = {"low": round(full + children * first, 4), "high": round(full * (children + 1), 4)}
    return data


def _print_config_plan(data: dict, console: Console) -> None:
    table = Table(title=f"what {data['config']}'s stages can detect over a baseline of {data['baseline']:.2f} "
                        f"(alpha {data['alpha']:g}, power {data['power']:g})")
    columns = ["stage", "tasks (cumulative)", "smallest gain, paired", "smallest gain, two-proportion"]
    columns += ["detects +%.2f" % data["effect"]] if data["effect"] is not None else []
    columns += ["cost per node"] if data["cost_per_task_usd"] is not None else []
    for column in columns:
        table.add_column(column, justify="right")
    for r in data["stages"]:
        cells = [str(r["stage"]), str(r["tasks"]), _gain(r["paired_effect"]), _gain(r["two_proportion_effect"])]
        cells += (["yes" if r["detects_effect"] else "[red]no[/]"] if data["effect"] is not None else [])
        cells += [_usd(r["cost_usd"])] if data["cost_per_task_usd"] is not None else []
        table.add_row(*cells)
    console.print(table)
    if data["effect"] is not None:
        console.print(f"detecting +{data['effect']:.2f} on the same tasks needs {data['tasks_needed_paired']} tasks")
    if "cost_per_run_usd" in data:
        cost = data["cost_per_run_usd"]
        console.print(f"task evaluations of a run ({data['children']} children + initial): "
                      f"{_usd(cost['low'])} (every child stops at stage 1) to {_usd(cost['high'])} "
                      "(all reach the last)")


def _gain(effect: float | None) -> str:
    return "none (too few tasks)" if effect is None else f"+{effect:.3f}"


def _usd(value: float | None) -> str:
    return "-" if value is None else f"${value:,.2f}"
