"""`dgm campaign CONFIG --seeds N`: N independent runs of one experiment, and what they say together.

One run is one draw: its best score depends on the seed (which parents, which entries, which
samples). A campaign makes the draw repeatable:

    seeds    <- run.seed, run.seed + 1, ..., run.seed + N - 1
    for each seed, at most P at a time:
        run      <- python -m dgm.campaign CAMPAIGN/config.yaml RUN_DIR --set run.seed=S
                    (a process of its own: its own store, gateway and run-scoped LLM cache)
        score    <- the run's best node and initial agent, confirmed (`dgm confirm`) where available,
                    else their search scores, labelled as such; saved in CAMPAIGN/scores/
    report   <- the distribution of the best scores over seeds, the share of seeds whose best beats
                the initial agent (Wilson 95%), seed-to-seed vs task-sampling spread, and a figure

P runs at once share the configured `run.max_concurrency` sandbox slots: P = that // run.workers
(at least 1, at most N), and each run gets run.max_concurrency // P of them.

The campaign directory holds `campaign.json` (config, overrides, seeds, where each run lives),
`config.yaml` (the resolved config every run starts from), `runs/`, `logs/` (each run's output),
`scores/` and `figures/`. `dgm campaign --resume DIR` starts runs that never started, resumes
runs that did not finish, and scores what is not scored yet; `--report DIR` only reads.
"""

from __future__ import annotations

import datetime as _dt
import json
import statistics
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from dgm.analysis.runview import RunView
from dgm.analysis.sampling import bootstrap_summary
from dgm.analysis.stats import wilson_interval
from dgm.config import HELDOUT_DEFAULT, Config, ConfigError, load_config
from dgm.loop import INITIAL
from dgm.store import StoreError

CAMPAIGN_FILE = "campaign.json"
UNFINISHED = ("running", "crashed", "stopped")


# -- the campaign record ---------------------------------------------------------------------
@dataclass
class Campaign:
    dir: Path
    config_path: str  # what the user gave (for the record; runs start from dir/config.yaml)
    overrides: list[str]
    seeds: list[int]
    parallel: int
    run_concurrency: int
    confirm_repeats: int
    scripted: bool
    runs: dict[str, str] = field(default_factory=dict)  # seed -> run dir, relative to the campaign dir

    def run_dir(self, seed: int) -> Path:
        return self.dir / self.runs[str(seed)]

    def log_path(self, seed: int) -> Path:
        return self.dir / "logs" / f"{Path(self.runs[str(seed)]).name}.log"

    def score_path(self, seed: int) -> Path:
        return self.dir / "scores" / f"{Path(self.runs[str(seed)]).name}.json"

    def save(self) -> None:
        data = {k: v for k, v in asdict(self).items() if k != "dir"}
        (self.dir / CAMPAIGN_FILE).write_text(json.dumps(data, indent=2))

    @classmethod
    def load(cls, directory: Path | str) -> "Campaign":
        path = Path(directory) / CAMPAIGN_FILE
        if not path.is_file():
            raise StoreError(f"{directory} is not a campaign directory (no {CAMPAIGN_FILE})")
        try:
            return cls(dir=Path(directory).resolve(), **json.loads(path.read_text()))
        except (json.JSONDecodeError, TypeError) as exc:
            raise StoreError(f"{path} is not a campaign record: {exc}") from None


def plan_campaign(config_path: str, overrides: list[str], seeds: int, out: Path | None = None,
                  parallel: int | None = None, confirm_repeats: int = 1) -> tuple[Campaign, Config]:
    """Validate the config once and lay out the campaign directory (no run starts here)."""
    from dgm.run import check_before_running

    if seeds < 1:
        raise ConfigError(f"--seeds must be >= 1 (got {seeds})")
    config = load_config(config_path, overrides)
    check_before_running(config)
    base = config.run.seed
    slots = config.run.max_concurrency
    parallel = min(seeds, parallel or max(1, slots // config.run.workers))
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    directory = (out or config.run.archive_dir / f"campaign-{config.run.name}-{stamp}").resolve()
    if (directory / CAMPAIGN_FILE).exists():
        raise StoreError(f"{directory} already holds a campaign; use dgm campaign --resume {directory}")
    for sub in ("runs", "logs", "scores", "figures"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    (directory / "config.yaml").write_text(config.to_yaml())
    campaign = Campaign(dir=directory, config_path=str(config_path), overrides=list(overrides),
                        seeds=[base + i for i in range(seeds)], parallel=parallel,
                        run_concurrency=max(1, slots // parallel), confirm_repeats=confirm_repeats,
                        scripted=config.uses_scripted_model)
    campaign.runs = {str(s): f"runs/{config.run.name}-s{s}" for s in campaign.seeds}
    campaign.save()
    return campaign, config


# -- running ---------------------------------------------------------------------------------
def run_campaign(campaign: Campaign, report: Callable[[str], None] = print) -> dict[int, int]:
    """Every seed's run to its end (started, resumed or skipped), P at a time: {seed: exit code}."""
    todo = [s for s in campaign.seeds if not _done(campaign, s)]
    for seed in campaign.seeds:
        if seed not in todo:
            report(f"seed {seed}: finished and scored ({campaign.runs[str(seed)]})")

    def one(seed: int) -> tuple[int, int]:
        report(f"seed {seed}: running -> {campaign.run_dir(seed)} (log {campaign.log_path(seed)})")
        code = _run_seed_process(campaign, seed)
        report(f"seed {seed}: {'done' if code == 0 else f'exit {code}, see {campaign.log_path(seed)}'}")
        return seed, code

    with ThreadPoolExecutor(max_workers=campaign.parallel) as pool:
        codes = dict(pool.map(one, todo))
    return {s: codes.get(s, 0) for s in campaign.seeds}


def _done(campaign: Campaign, seed: int) -> bool:
    return campaign.score_path(seed).is_file() and _status(campaign.run_dir(seed)) == "finished"


def _status(run_dir: Path) -> str | None:
    try:
        return RunView.load(run_dir).status
    except StoreError:
        return None


def _run_seed_process(campaign: Campaign, seed: int) -> int:
    """One seed in a process of its own (its gateway, sandboxes and console stay its own); output to its log."""
    argv = [sys.executable, "-m", "dgm.campaign", str(campaign.dir), str(seed)]
    with campaign.log_path(seed).open("a") as log:
        return subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL).returncode


def run_seed(campaign: Campaign, seed: int) -> int:
    """In the seed's process: start, resume or skip its run, then score it."""
    from dgm.run import check_before_running, execute, new_run, run_to_completion

    run_dir = campaign.run_dir(seed)
    status = _status(run_dir)
    if status is None:
        overrides = [f"run.seed={seed}", f"run.max_concurrency={campaign.run_concurrency}"]
        config = load_config(campaign.dir / "config.yaml", overrides)
        benchmark = check_before_running(config)
        store, run_id = new_run(config, run_dir, benchmark)
        code = run_to_completion(config, store, run_id, benchmark)
    elif status in UNFINISHED:
        code = execute(None, [], str(run_dir), yes=True)  # the cost was confirmed for the whole campaign
    else:
        code = 0
    if code == 0 and _status(run_dir) == "finished":
        score = score_run(run_dir, campaign.confirm_repeats)
        campaign.score_path(seed).write_text(json.dumps({"seed": seed, **score}, indent=2))
        print(f"scored ({score['source']}): best {score['best_node']} {score['best_score']}, "
              f"initial {score['initial_score']}")
    return code


# -- scoring one run (the one place that knows about `dgm confirm`) ---------------------------
def score_run(run_dir: Path, confirm_repeats: int = 1, log: Callable[[str], None] = print) -> dict:
    """The run's best node and initial agent, confirmed on the sealed held-out split (`dgm confirm`).

    The best node is the top one by search score (top-1, so choosing it costs nothing of the
    held-out tasks: its confirmed score is free of the winner's curse). A run that cannot be
    confirmed (its benchmark has no held-out split) falls back to search scores, labelled as such.
    """
    from dgm.confirm import ConfirmError, confirm_run, load_results

    view = RunView.load(run_dir)
    sealed = sealed_heldout(view.run_dir)
    if sealed == []:  # the plan sealed no held-out split: nothing to confirm on
        log("not confirmed (the run has no held-out split): search scores used instead")
        return {**search_score(view), "confirm_error": "no held-out split in plan.json"}
    try:
        report = confirm_run(view.run_dir, top_k=1, split=HELDOUT_DEFAULT, repeats=confirm_repeats, report=log)
    except ConfirmError as exc:
        if sealed is not None:  # e.g. a budget stop: the seed stays unscored, --resume tries again
            raise
        log(f"not confirmed, search scores used instead: {exc}")
        return {**search_score(view), "confirm_error": str(exc)}
    best = report.rows[-1]  # the top node, or the initial agent of a run without admitted children
    initial = report.row(INITIAL)
    runs = load_results(Path(report.out_dir) / best.node_id, report.tasks, report.repeats)
    return {
        **search_score(view),
        "source": f"confirmed on {report.split} ({'sealed' if report.sealed else 'NOT sealed'}, "
                  f"{len(report.tasks)} tasks x {report.repeats})",
        "split": report.split, "best_node": best.node_id, "best_score": best.confirmed_score,
        "best_interval95": [best.low, best.high], "best_search_score": best.search_score, "gap": best.gap,
        "best_tasks": len(report.tasks), "initial_score": initial.confirmed_score,
        "beats_initial": best.node_id != INITIAL and best.confirmed_score > initial.confirmed_score,
        "p_value": best.p_value, "test": best.test,
        "best_outcomes": [sum(r) / len(r) for r in runs.values()],  # per task, mean over repeats
        "confirm_dir": report.out_dir,
    }


def sealed_heldout(run_dir: Path) -> list[str] | None:
    """The held-out task ids the run's plan.json sealed ([] : none), or None for a run without a plan."""
    path = run_dir / "plan.json"
    if not path.is_file():
        return None
    return list(json.loads(path.read_text()).get("splits", {}).get("heldout") or [])


def search_score(view: RunView) -> dict:
    """Scores on the tasks the search itself selected on (winner's curse: optimistic); the fallback."""
    best = view.best()
    initial = next((n for n in view.nodes if n.parent_id is None), None)
    outcomes = _resolved_flags(view, best.node_id) if best else []
    return {
        "run_id": view.run_id, "source": "search (not confirmed)", "split": "search tasks",
        "best_node": best.node_id if best else None,
        "best_score": best.score if best else None, "best_tasks": len(outcomes),
        "initial_score": initial.score if initial else None,
        "beats_initial": _beats(best.score if best else None, initial.score if initial else None),
        "p_value": None, "best_outcomes": outcomes,
        "children": sum(1 for n in view.nodes if n.parent_id is not None),
        "progress": [[p.iteration, p.best_so_far] for p in view.progress()],
    }


def _resolved_flags(view: RunView, node_id: str) -> list[bool]:
    return [r.outcome == "resolved" for r in view.results.get(node_id, [])]


def _beats(best: float | None, initial: float | None) -> bool | None:
    return None if best is None or initial is None else best > initial


# -- the campaign's figures ------------------------------------------------------------------
def load_scores(campaign: Campaign) -> list[dict]:
    scores = []
    for seed in campaign.seeds:
        path = campaign.score_path(seed)
        if path.is_file():
            scores.append(json.loads(path.read_text()))
        else:
            scores.append({"seed": seed, "run_id": Path(campaign.runs[str(seed)]).name, "missing": True,
                           "status": _status(campaign.run_dir(seed)) or "not started"})
    return scores


def summarize(campaign: Campaign) -> dict:
    """Distribution of best scores over seeds, P(best beats initial), and the variance split."""
    seeds = load_scores(campaign)
    scored = [s for s in seeds if not s.get("missing") and s["best_score"] is not None]
    best = [s["best_score"] for s in scored]
    wins = [s["beats_initial"] for s in scored if s["beats_initial"] is not None]
    summary = {
        "campaign": str(campaign.dir), "scripted_model": campaign.scripted, "seeds": seeds,
        "runs_scored": len(scored), "runs_planned": len(campaign.seeds),
        "significant_wins": sum(1 for s in scored if s["beats_initial"] and (s["p_value"] or 1) < 0.05),
        "score_source": sorted({s["source"] for s in scored}),
        "best_score": _distribution(best),
        "beats_initial": _share(wins),
        "variance": _variance(scored),
    }
    return summary


def _distribution(values: list[float]) -> dict | None:
    if not values:
        return None
    out = {"n": len(values), "mean": statistics.fmean(values),
           "sd": statistics.stdev(values) if len(values) > 1 else None,
           "min": min(values), "median": statistics.median(values), "max": max(values)}
    _, low, high = bootstrap_summary(values)
    out["mean_interval95"] = [low, high]  # bootstrap over seeds
    return out


def _share(wins: list[bool]) -> dict | None:
    if not wins:
        return None
    low, high = wilson_interval(sum(wins), len(wins))
    return {"seeds": len(wins), "wins": sum(wins), "probability": sum(wins) / len(wins), "interval95": [low, high]}


def _variance(scored: list[dict]) -> dict | None:
    """Seed to seed (SD of the best scores) vs task sampling (bootstrap over tasks, mean over seeds)."""
    task_ses = [bootstrap_summary(s["best_outcomes"])[0] for s in scored if s["best_outcomes"]]
    best = [s["best_score"] for s in scored]
    if not task_ses:
        return None
    return {"seeds": len(best), "task_sampling_se": statistics.fmean(task_ses),
            "tasks": statistics.median(len(s["best_outcomes"]) for s in scored if s["best_outcomes"]),
            "seed_to_seed_sd": statistics.stdev(best) if len(best) > 1 else None}


def main(argv: list[str] | None = None) -> int:
    """`python -m dgm.campaign CAMPAIGN_DIR SEED`: one seed of a campaign (what `dgm campaign` launches)."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2:
        print("usage: python -m dgm.campaign CAMPAIGN_DIR SEED (started by dgm campaign)", file=sys.stderr)
        return 2
    try:
        campaign = Campaign.load(argv[0])
        if str(int(argv[1])) not in campaign.runs:
            raise StoreError(f"seed {argv[1]} is not one of campaign {argv[0]}'s seeds {campaign.seeds}")
        return run_seed(campaign, int(argv[1]))
    except (ConfigError, StoreError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
