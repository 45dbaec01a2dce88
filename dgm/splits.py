"""The task splits of a run: search stages, the sealed held-out split, and tasks excluded as unhealthy.

The loop chooses parents and admits children from the search stages only. The held-out split
(`evaluation.heldout`) is sealed: a config whose stages name a held-out task is refused before the
run starts, and only `dgm confirm` evaluates held-out tasks, after the search is over, so the
confirmed score of the chosen agent is free of the winner's curse.
"""

from __future__ import annotations

from dgm.bench.health import unhealthy_tasks
from dgm.config import HELDOUT_DEFAULT, EvaluationSection


def excluded_tasks(cfg: EvaluationSection) -> dict[str, str]:
    """{task id: verdict} dropped by `evaluation.exclude_unhealthy` (empty when it is off)."""
    return unhealthy_tasks(cfg.exclude_unhealthy) if cfg.exclude_unhealthy else {}


def subset_or_ids(benchmark, value: list[str] | str, where: str) -> list[str]:
    """Task ids of a subset name or an explicit list; ValueError names `where` and the bad entry."""
    if isinstance(value, list):
        ids = value
    elif value in benchmark.subsets():
        ids = benchmark.subsets()[value]
    else:
        raise ValueError(f"{where}: benchmark {benchmark.name!r} has no subset {value!r} "
                         f"(subsets: {', '.join(benchmark.subsets())})")
    unknown = [t for t in ids if t not in set(benchmark.task_ids())]
    if unknown:
        raise ValueError(f"{where}: {len(unknown)} task ids not in benchmark {benchmark.name!r} (first: {unknown[0]})")
    return list(dict.fromkeys(ids))


def heldout_tasks(benchmark, cfg: EvaluationSection) -> list[str]:
    """The sealed held-out split, minus unhealthy tasks. The default name is optional (a benchmark
    without a `heldout` subset has no held-out split); a configured one must exist."""
    if cfg.heldout is None or (cfg.heldout == HELDOUT_DEFAULT and HELDOUT_DEFAULT not in benchmark.subsets()):
        return []
    excluded = excluded_tasks(cfg)
    return [t for t in subset_or_ids(benchmark, cfg.heldout, "evaluation.heldout") if t not in excluded]


def check_sealed(benchmark, cfg: EvaluationSection) -> None:
    """ValueError naming the stage key if any search stage would evaluate a held-out task."""
    sealed = set(heldout_tasks(benchmark, cfg))
    for index, stage in enumerate(cfg.stages):
        where = f"evaluation.stages.{index}.tasks"
        leaked = [t for t in subset_or_ids(benchmark, stage.tasks, where) if t in sealed]
        if leaked:
            raise ValueError(f"{where}: names {len(leaked)} held-out task(s) (first: {leaked[0]}); the held-out "
                             f"split (evaluation.heldout = {cfg.heldout!r}) is sealed: only `dgm confirm` "
                             f"evaluates it. Pick other search tasks, or set evaluation.heldout")


def split_tasks(benchmark, cfg: EvaluationSection, split: str) -> list[str]:
    """Task ids of a split named on the command line: `heldout` is the run's sealed split, any other
    name a subset of the benchmark; unhealthy tasks are left out either way."""
    if split == HELDOUT_DEFAULT:
        tasks = heldout_tasks(benchmark, cfg)
        if not tasks:
            raise ValueError(f"the run has no held-out split (evaluation.heldout = {cfg.heldout!r} on benchmark "
                             f"{benchmark.name!r}); name a subset with --split")
        return tasks
    excluded = excluded_tasks(cfg)
    return [t for t in subset_or_ids(benchmark, split, "--split") if t not in excluded]
