"""The pre-registered plan of a run: plan.json, sealed by its SHA-256 in run.db at run start.

Written before the first task is evaluated, it fixes what a reviewer needs to trust the numbers
afterwards: the resolved config (seed included), the task ids of every split (each search stage
and the sealed held-out split), the tasks excluded as unhealthy, and the metrics and tests that
will be reported. `dgm report` recomputes the hash and says whether plan.json still matches.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from dgm.config import Config
from dgm.evaluate import resolve_stages
from dgm.splits import check_sealed, excluded_tasks, heldout_tasks
from dgm.store import RunStore

PLAN_FILE = "plan.json"
METRICS = [
    "search score of each node: resolved / evaluated over its completed search stages (Wilson 95% interval)",
    "confirmed score of the top nodes and the initial agent on the held-out split, R repeats (dgm confirm)",
    "gap = search score - confirmed score (winner's-curse shrinkage)",
]
TESTS = [
    "each confirmed node vs the initial agent on the same held-out tasks: exact two-sided McNemar (R = 1) "
    "or a paired bootstrap over tasks (R > 1), alpha = 0.05",
    "confirmed score interval: Wilson 95% (R = 1) or a percentile bootstrap over tasks (R > 1)",
]


def build_plan(config: Config, benchmark, run_id: str) -> dict:
    """The plan's content; ValueError names the config key if a search stage names a held-out task."""
    cfg = config.evaluation
    check_sealed(benchmark, cfg)
    stages = resolve_stages(benchmark, cfg)
    return {
        "run_id": run_id,
        "benchmark": cfg.benchmark,
        "splits": {
            "search_stages": [{"stage": i + 1, "threshold": cfg.stages[i].threshold, "tasks": tasks}
                              for i, tasks in enumerate(stages)],
            "heldout": heldout_tasks(benchmark, cfg),
        },
        "excluded_unhealthy": {"report": str(cfg.exclude_unhealthy) if cfg.exclude_unhealthy else None,
                               "tasks": excluded_tasks(cfg)},
        "metrics": METRICS,
        "tests": TESTS,
        "scripted_model": config.uses_scripted_model,
        "config": config.model_dump(mode="json"),
    }


def write_plan(store: RunStore, config: Config, benchmark) -> str:
    """Write plan.json into the run dir and seal its SHA-256 into the store; returns the hash."""
    text = json.dumps(build_plan(config, benchmark, store.run_info()["run_id"]), indent=2) + "\n"
    path = store.run_dir / PLAN_FILE
    path.write_text(text)
    sha = file_sha256(path)
    store.set_plan_hash(sha)
    store.events.append("plan_sealed", sha256=sha)
    return sha


def file_sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@dataclass
class PlanCheck:
    status: str  # matches | MODIFIED | missing | unsealed
    sealed_sha256: str | None
    file_sha256: str | None

    def text(self) -> str:
        short = (self.sealed_sha256 or "")[:12]
        return {
            "matches": f"plan.json matches its sealed hash (sha256 {short}…)",
            "MODIFIED": f"plan.json was MODIFIED after the run started (sealed {short}…, "
                        f"now {(self.file_sha256 or '')[:12]}…)",
            "missing": f"plan.json is MISSING (sealed sha256 {short}…)",
            "unsealed": "no pre-registered plan (a run made before plans, or one that never started)",
        }[self.status]


def check_plan(store: RunStore) -> PlanCheck:
    """Does the run dir's plan.json still hash to what was sealed at run start?"""
    sealed = store.plan_hash()
    path = store.run_dir / PLAN_FILE
    if sealed is None:
        return PlanCheck("unsealed", None, file_sha256(path) if path.is_file() else None)
    if not path.is_file():
        return PlanCheck("missing", sealed, None)
    actual = file_sha256(path)
    return PlanCheck("matches" if actual == sealed else "MODIFIED", sealed, actual)
