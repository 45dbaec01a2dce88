"""`dgm eval AGENT_DIR --bench local:small`: score any agent directory on a benchmark subset."""

from __future__ import annotations

from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "eval", _eval,
                         "Evaluate an agent directory on a benchmark subset (per-task table, score, 95% interval).",
                         "dgm eval agents/initial --bench local:small --workers 2")
    parser.add_argument("agent_dir", type=Path, help="an agent directory (with agent/__main__.py)")
    parser.add_argument("--bench", default="local:small",
                        help="BENCHMARK[:PATH][:SUBSET], e.g. local:small or polyglot:~/polyglot-benchmark:small "
                             "(default local:small)")
    parser.add_argument("--workers", type=int, default=2, help="tasks evaluated in parallel")
    parser.add_argument("--config", help="take models, sandbox and limits from this experiment config "
                                         "(default: the scripted test model and bwrap)")
    parser.add_argument("--backend", choices=("bwrap", "docker", "local"), help="sandbox backend override")


def split_bench_arg(text: str) -> tuple[str, str]:
    """'local:small' -> ('local', 'small'); 'polyglot:/data/pg:small' -> ('polyglot:/data/pg', 'small')."""
    from dgm.bench import looks_like_path

    spec, _, last = text.rpartition(":")
    if not spec or looks_like_path(last):
        return text, "small"
    return spec, last


def _eval(args) -> int:
    from rich.table import Table

    from dgm.analysis.stats import wilson_interval
    from dgm.config import Config, ConfigError, Stage, load_config
    from dgm.llm.base import SCRIPTED_BANNER
    from dgm.llm.budget import BudgetExceeded
    from dgm.run import check_before_running, console, new_run, runtime
    from dgm.store import Node

    agent_dir = args.agent_dir.resolve()
    if not (agent_dir / "agent" / "__main__.py").is_file():
        console.print(f"[red]error:[/] {args.agent_dir} is not an agent directory (no agent/__main__.py)")
        return 2
    bench, subset = split_bench_arg(args.bench)
    try:
        config = load_config(args.config) if args.config else Config(run={"seed": 0})
        config.evaluation.benchmark = bench
        config.evaluation.stages = [Stage(tasks=subset)]
        config.evaluation.heldout = None  # one fixed agent and no search: there is nothing to seal
        config.run.name = f"eval-{agent_dir.name}"
        config.agent.initial = agent_dir
        if args.backend:
            config.sandbox.backend = args.backend
        benchmark = check_before_running(config)
    except ConfigError as exc:
        console.print(f"[red]error:[/] --bench {args.bench}: {exc}", soft_wrap=True)
        return 2
    store, run_id = new_run(config, benchmark=benchmark)
    if config.uses_scripted_model:
        console.print(f"[bold yellow]{SCRIPTED_BANNER.upper()}[/]")
    work = store.begin_attempt("0:initial", 0, 0, None)
    try:
        with runtime(config, store, run_id, benchmark) as ctx:
            evaluation = ctx.evaluator.evaluate(agent_dir, "initial", "0:initial", work, all_stages=True,
                                                workers=args.workers)
    except BudgetExceeded as exc:  # a budget hit is not a score: no partial result is shown
        store.set_run_status("stopped", f"budget_exhausted: {exc}")
        console.print(f"[red]error:[/] budget exhausted, no score: {exc} (raise llm.budgets in --config)")
        return 2
    node = Node(node_id="initial", parent_id=None, generation=0, attempt_id="0:initial", status="evaluated",
                compiled=True, admitted=True, score=evaluation.score, tasks_evaluated=evaluation.tasks_evaluated,
                stages=evaluation.stages)
    store.finish_attempt(node, evaluation.results, agent_dir=agent_dir, artifacts_dir=work)
    store.set_run_status("finished", "evaluation done")

    table = Table("task", "outcome", "agent exit", "seconds")
    for r in evaluation.results:
        table.add_row(r.task_id, r.outcome, r.agent_exit or "-", f"{r.duration_s:.1f}")
    console.print(table)
    stage = evaluation.stages[-1]
    low, high = wilson_interval(stage.resolved, stage.total)
    console.print(f"score: {stage.resolved}/{stage.total} = {stage.score:.1%} (95% Wilson interval {low:.1%}–{high:.1%})")
    console.print(f"artifacts: {store.node_dir('initial')}")
    return 0
