"""`dgm campaign CONFIG --seeds N`, `dgm campaign --resume DIR`, `dgm campaign --report DIR`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    p = add_command(subparsers, "campaign", _campaign,
                    "Run one experiment with N seeds (independent runs, in parallel within run.max_concurrency), "
                    "then report the distribution of best scores over seeds, the share of seeds whose best beats "
                    "the initial agent, seed-to-seed vs task-sampling spread, and a figure of every seed's progress.",
                    "dgm campaign experiments/quickstart.yaml --seeds 3 --set loop.generations=2")
    p.add_argument("config", nargs="?", help="experiment YAML (every seed runs it)")
    p.add_argument("--seeds", type=int, default=3, help="number of runs: seeds run.seed .. run.seed+N-1 (default 3)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config key (every run)")
    p.add_argument("--parallel", type=int, help="runs at once (default: run.max_concurrency // run.workers)")
    p.add_argument("--confirm-repeats", type=int, default=1, help="repeats of the held-out confirmation per run")
    p.add_argument("--out", type=Path, help="campaign directory (default: ARCHIVE/campaign-NAME-TIME)")
    p.add_argument("--resume", metavar="DIR", help="finish a campaign: start, resume and score what is left")
    p.add_argument("--report", metavar="DIR", help="only report a campaign (no run starts)")
    p.add_argument("--yes", action="store_true", help="start runs that call a paid endpoint without asking")
    p.add_argument("--json", action="store_true", help="the same figures as JSON")


def _campaign(args) -> int:
    from dgm.analysis import plots
    from dgm.campaign import Campaign, plan_campaign, run_campaign, summarize
    from dgm.config import ConfigError
    from dgm.store import StoreError

    log = (lambda line: print(line, file=sys.stderr)) if args.json else print
    codes: dict[int, int] = {}
    try:
        if args.report or args.resume:
            campaign = Campaign.load(args.report or args.resume)
        else:
            if not args.config:
                raise ConfigError("give a CONFIG file, or --resume DIR / --report DIR")
            campaign, config = plan_campaign(args.config, args.set, args.seeds, args.out, args.parallel,
                                             args.confirm_repeats)
            _confirm_cost(config, len(campaign.seeds), args.yes, log)
        if not args.report:
            if campaign.scripted:
                log(SCRIPTED_NOTE().upper())
            log(f"campaign {campaign.dir}: seeds {campaign.seeds}, {campaign.parallel} at once, "
                f"{campaign.run_concurrency} sandbox slots each")
            codes = run_campaign(campaign, report=log)
        summary = summarize(campaign)
    except (ConfigError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figure = plots.save(plots.campaign_figure(summary["seeds"], campaign.scripted, f"Campaign {campaign.dir.name}"),
                        campaign.dir / "figures", "campaign_progress")
    summary["figures"] = [str(p) for p in figure]
    if args.json:
        summary["note"] = SCRIPTED_NOTE() if campaign.scripted else None
        print(json.dumps(summary, indent=2))
    else:
        print_summary(summary)
    return 1 if any(codes.values()) else 0


def SCRIPTED_NOTE() -> str:  # noqa: N802 - reads as the constant it wraps
    from dgm.llm.base import SCRIPTED_BANNER

    return SCRIPTED_BANNER


def _confirm_cost(config, runs: int, yes: bool, log) -> None:
    """A paid campaign is confirmed once, for all its runs (each run's estimate, times the runs)."""
    from dgm.estimate import paid_roles
    from dgm.run import NotConfirmed, confirm_cost
    from dgm.config import ConfigError

    if not paid_roles(config):
        return
    log(f"this campaign starts {runs} runs; the estimate below is for ONE of them")
    try:
        confirm_cost(config, yes)
    except NotConfirmed as exc:
        raise ConfigError(str(exc)) from None


def print_summary(s: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    from dgm.cli.baseline import variance_table

    console = Console(highlight=False)
    if s["scripted_model"]:
        console.print(f"[bold yellow]⚠ {SCRIPTED_NOTE()}[/]")
    source = ", ".join(s["score_source"]) or "-"
    seeds = Table("seed", "children", "best node", "search", "best", "initial", "beats initial", "p (paired)",
                  title=f"Campaign: the best node of each seed, scored by {source}")
    for r in s["seeds"]:
        if r.get("missing"):
            seeds.add_row(str(r["seed"]), "-", "-", "-", f"not scored ({r['status']})", "-", "-", "-")
            continue
        seeds.add_row(str(r["seed"]), str(r["children"]), r["best_node"] or "-", _num(r.get("best_search_score")),
                      _num(r["best_score"]),
                      _num(r["initial_score"]), {True: "yes", False: "no"}.get(r["beats_initial"], "-"),
                      _num(r["p_value"]))
    console.print(seeds)
    dist, share = s["best_score"], s["beats_initial"]
    table = Table("over seeds", "value", title=f"{s['runs_scored']} of {s['runs_planned']} runs scored ({source})")
    if dist:
        lo, hi = dist["mean_interval95"]
        table.add_row("best score: mean (95% bootstrap over seeds)", f"{dist['mean']:.3f} ({lo:.3f}–{hi:.3f})")
        table.add_row("best score: sd / min / median / max",
                      f"{_num(dist['sd'])} / {dist['min']:.3f} / {dist['median']:.3f} / {dist['max']:.3f}")
    if share:
        lo, hi = share["interval95"]
        table.add_row("P(best beats the initial agent)",
                      f"{share['probability']:.2f} ({share['wins']}/{share['seeds']} seeds; "
                      f"Wilson 95% {lo:.2f}–{hi:.2f})")
        table.add_row("... of those, significant in the paired test (p < 0.05)",
                      f"{s['significant_wins']}/{share['seeds']} seeds")
    console.print(table)
    v = s["variance"]
    if v:
        console.print(variance_table({"task_sampling_se": v["task_sampling_se"], "tasks": v["tasks"],
                                      "task_sampling_interval95": None, "mean_score": dist["mean"] if dist else 0,
                                      "run_to_run_sd": v["seed_to_seed_sd"], "run_to_run_se_of_mean": None,
                                      "repeats": v["seeds"]}, "seed"))
    console.print("search = the best node's search score (chosen on those tasks: optimistic); best, initial: "
                  "scored as the title says; p: paired test of best vs initial on the same tasks")
    console.print(f"runs: {s['campaign']}/runs/ (one per seed)")
    for path in s.get("figures", []):
        console.print(f"figure: {path}")


def _num(value) -> str:
    return "-" if value is None else f"{value:.3f}"
