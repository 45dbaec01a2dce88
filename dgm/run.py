"""`python -m dgm.run CONFIG [--set key=value ...] [--yes]` and `python -m dgm.run --resume RUN_DIR`.

Builds the run's parts (store, benchmark, LLM gateway, sandbox policy, evaluator), runs the
generation loop and prints a summary. A resumed run re-opens the store with its saved config
and re-does only the attempts that never finished. Before a run that calls a paid endpoint, the
estimated cost is printed and must be confirmed (or passed with --yes). On a terminal, a live view
shows the in-flight attempts, the spend and the time left (dgm/progress.py).
"""

from __future__ import annotations

import argparse
import importlib.util
import datetime as _dt
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from rich.console import Console

from dgm.agent_run import SandboxPolicy
from dgm.bench import load_benchmark
from dgm.bench.base import Benchmark
from dgm.config import Config, ConfigError, load_config
from dgm.estimate import estimate_cost, paid_roles
from dgm.evaluate import Evaluator, resolve_stages
from dgm.executor import gateway_host, open_executor
from dgm.llm.base import SCRIPTED_BANNER
from dgm.llm.budget import Budgets
from dgm.llm.cache import ResponseCache
from dgm.llm.gateway import Gateway
from dgm.llm.upstream import build_upstreams
from dgm.llm_access import LLMAccess
from dgm.loop import BUDGET_EXHAUSTED, INITIAL, DarwinGodelMachine, RunContext
from dgm.progress import StoreProgress, live_view
from dgm.sandbox.base import Limits
from dgm.preregistration import write_plan
from dgm.sandbox import cleanup_leftovers
from dgm.splits import check_sealed
from dgm.store import RunStore, StoreError

# On resume only stopping rules and budgets may change, so past decisions stay valid.
RESUMABLE_KEYS = ("loop.", "llm.budgets.")
# Runs saved before the harness had to outlast the agent may hold a timeout equal to the agent's limit;
# raising it is the one other change a resume accepts (it only lets such agents hand in their patch).
RESUMABLE_TIMEOUTS = ("evaluation.task_timeout_s=", "agent.self_modify_timeout_s=")

console = Console(highlight=False)


def scripted_options(benchmark) -> dict:
    """The scripted test double solves tasks from the benchmark's gold patches (trusted side only)."""

    def solution(problem_text: str) -> str | None:
        task_id = benchmark.find_by_problem_statement(problem_text)
        return benchmark.gold_patch(task_id) if task_id else None

    return {"solutions": solution}


@contextmanager
def runtime(config: Config, store: RunStore, run_id: str, benchmark: Benchmark | None = None,
            sink=None) -> Iterator[RunContext]:
    """The run's parts, live. `sink`: where LLM calls are metered (default: the run store; `dgm confirm`
    meters its own calls apart, so a confirmation never changes the run's ledger)."""
    benchmark = benchmark or load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
    prices = config.llm.price_table()
    routes = build_upstreams(
        {role: route.gateway_entry() for role, route in config.llm.roles().items()},
        prices=prices,
        scripted_kwargs=scripted_options(benchmark) if config.uses_scripted_model else None,
        require_keys=config.llm.cache != "replay",  # a replay answers from the cache: no key needed
    )
    spent = {row["key"]: row["cost_usd"] for row in store.llm_totals("node_id") if row["key"]}
    budgets = Budgets(config.llm.budgets.run_usd, config.llm.budgets.node_usd, config.llm.budgets.attempt_usd,
                      spent_by_node=spent, spent_run=store.spent_usd())
    # The cache is scoped to this run (or, for `dgm replay`, to the run it replays): runs sharing a
    # cache_dir, e.g. two seeds, never replay each other's answers.
    cache = ResponseCache(config.llm.cache_dir or store.run_dir / "llm_cache", config.llm.cache,
                          run=config.llm.cache_run or run_id)
    tcp_host = gateway_host(config)  # remote workers reach the gateway over TCP (per-attempt tokens only)
    gateway = Gateway(routes, sink=sink or store, budgets=budgets, prices=prices, tcp=tcp_host is not None,
                      tcp_host=tcp_host or "127.0.0.1", cache=cache)
    with gateway:
        gateway.preflight()
        sandbox = config.sandbox
        policy = SandboxPolicy(
            backend=sandbox.backend,
            limits=Limits(memory_mb=sandbox.memory_mb, cpu_seconds=sandbox.cpu_seconds,
                          file_size_mb=sandbox.file_size_mb, processes=sandbox.processes),
            llm_socket=gateway.socket_path,
            labels={"dgm.run": run_id},
            backend_options={"image": sandbox.docker_image} if sandbox.backend == "docker" else {},
        )
        llm = LLMAccess(gateway, run_id)
        progress = StoreProgress(store)
        executor = open_executor(config, policy=policy, benchmark=benchmark, gateway=gateway)
        try:
            evaluator = Evaluator(benchmark=benchmark, policy=policy, llm=llm, cfg=config.evaluation,
                                  limits=config.agent.task_limits, progress=progress, executor=executor)
            yield RunContext(config=config, store=store, benchmark=benchmark, evaluator=evaluator, policy=policy,
                             llm=llm, initial_agent=config.agent.initial.resolve(),
                             budget_exhausted=lambda: gateway.run_budget_exhausted,
                             report=lambda line: console.print(line), progress=progress, executor=executor)
        finally:
            executor.close()


def new_run(config: Config, run_dir: Path | None = None, benchmark: Benchmark | None = None) -> tuple[RunStore, str]:
    """Create the run's store and seal its pre-registered plan (plan.json) before any work."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    run_id = run_dir.name if run_dir else f"{config.run.name}-{stamp}-s{config.run.seed}"
    run_dir = run_dir or config.run.archive_dir / run_id
    benchmark = benchmark or load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
    try:
        check_sealed(benchmark, config.evaluation)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    store = RunStore.create(run_dir, run_id, config.to_yaml(), config.uses_scripted_model)
    write_plan(store, config, benchmark)
    return store, run_id


def resume_run(run_dir: Path, overrides: list[str], *, yes: bool = False) -> tuple[Config, RunStore, str]:
    bad = [o for o in overrides if not o.startswith(RESUMABLE_KEYS + RESUMABLE_TIMEOUTS)]
    if bad:
        raise ConfigError(f"--resume keeps the run's saved config; only {', '.join(RESUMABLE_KEYS)}* may be "
                          f"changed (got {', '.join(bad)})")
    store = RunStore.open(run_dir)
    config = load_config(run_dir / "config.yaml", overrides)
    confirm_cost(config, yes, store=store)
    if overrides:  # kept, so a later resume does not fall back to the old limits
        (run_dir / "config.yaml").write_text(config.to_yaml())
    return config, store, reopen(store, overrides)


def reopen(store: RunStore, overrides: Sequence[str] = ()) -> str:
    """Mark an interrupted run running again, once what its killed sandboxes left is gone; its run id."""
    run_id = store.run_info()["run_id"]
    # Sandboxes of a killed run leave host dirs (copies of repos) and containers behind; only this run's go.
    leftovers = cleanup_leftovers(run_id)
    store.set_run_status("running")
    store.events.append("resume", overrides=list(overrides), removed_sandbox_dirs=leftovers["dirs"],
                        removed_containers=leftovers["containers"])
    return run_id


def check_before_running(config: Config) -> Benchmark:
    """Problems that would only surface hours into a run are reported now, before a run dir exists.

    Returns the loaded benchmark, so the run does not read a large dataset twice.
    """
    initial = config.agent.initial
    if not (initial / "agent" / "__main__.py").is_file():
        raise ConfigError(f"agent.initial: {initial} is not an agent directory (no agent/__main__.py)")
    try:
        benchmark = load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
        resolve_stages(benchmark, config.evaluation)
    except TypeError as exc:  # an option the benchmark does not take
        raise ConfigError(f"evaluation.benchmark_options for {config.evaluation.benchmark!r}: {exc}") from None
    except (ValueError, KeyError, OSError, RuntimeError) as exc:
        raise ConfigError(f"evaluation.benchmark {config.evaluation.benchmark!r}: {exc}") from None
    try:
        check_sealed(benchmark, config.evaluation)
    except ValueError as exc:  # names the stage key, or a bad evaluation.heldout / exclude_unhealthy
        raise ConfigError(str(exc)) from None
    check_executor(config)
    if config.uses_scripted_model and not hasattr(benchmark, "find_by_problem_statement"):
        raise ConfigError(f"llm: the scripted test model only knows the local suite's tasks, not "
                          f"benchmark {config.evaluation.benchmark!r}; configure a real model")
    return benchmark


class NotConfirmed(Exception):
    pass


def confirm_cost(config: Config, yes: bool, benchmark: Benchmark | None = None, store: RunStore | None = None,
                 ask=None) -> None:
    """Before a run that calls a paid endpoint: print the cost estimate and get a yes (or --yes).

    `store`: a run being resumed (its finished children are not counted again). Raises ConfigError
    when nobody can be asked (stdin is not a terminal and no --yes), NotConfirmed on any answer but yes.
    """
    if not paid_roles(config):
        return
    if benchmark is None:
        benchmark = load_benchmark(config.evaluation.benchmark, **config.evaluation.benchmark_options)
    sizes = [len(tasks) for tasks in resolve_stages(benchmark, config.evaluation)]
    nodes = store.nodes() if store else []
    estimate = estimate_cost(config, sizes, children_done=sum(1 for n in nodes if n.node_id != INITIAL),
                             initial_done=any(n.node_id == INITIAL for n in nodes))
    for line in estimate.lines():
        console.print(line, soft_wrap=True, markup=False)
    if yes:
        return
    if ask is None:
        if not (sys.stdin and sys.stdin.isatty()):
            raise ConfigError("this run calls a paid endpoint and stdin is not a terminal to confirm its cost: "
                              "pass --yes to start it anyway")
        ask = lambda: console.input("Proceed? \\[y/N] ")
    try:
        answer = ask()
    except (EOFError, KeyboardInterrupt):
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise NotConfirmed("not started (the cost was not confirmed)")


def check_executor(config: Config) -> None:
    """`run.executor: ray` needs its extra and an address the gateway can be reached from."""
    if config.run.executor == "ray" and importlib.util.find_spec("ray") is None:
        raise ConfigError("run.executor: ray needs the Ray extra: pip install -e '.[ray]'")
    try:
        gateway_host(config)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def print_summary(store: RunStore, reason: str) -> None:
    info = store.run_info()
    nodes = store.nodes()
    archive = [n for n in nodes if n.admitted]
    totals = store.llm_totals()[0]
    if info["scripted"]:
        console.print(f"[bold yellow]{SCRIPTED_BANNER.upper()}[/]")
    console.print(f"[bold]run {info['run_id']}[/] stopped: {reason}")
    if archive:
        best = max(archive, key=lambda n: n.score or 0.0)
        console.print(f"  children: {len(nodes) - 1}, admitted: {len(archive) - 1}, "
                      f"best: {best.node_id} score {best.score:.2f} on {best.tasks_evaluated} tasks")
    else:
        console.print("  the initial agent is not evaluated yet")
    for paused in store.paused_attempts():
        console.print(f"  attempt {paused['attempt_id']}: {paused['status']} (re-run on resume)")
    console.print(f"  LLM calls: {totals['calls']}, tokens: {totals['prompt_tokens'] + totals['completion_tokens']}, "
                  f"cost: ${totals['cost_usd']:.2f}")
    console.print(f"  run directory: {store.run_dir}")
    console.print(f"  next: dgm status {store.run_dir}   dgm tree {store.run_dir}")


def execute(config_path: str | None, overrides: list[str], resume: str | None, yes: bool = False) -> int:
    benchmark = None
    try:
        if resume:
            config, store, run_id = resume_run(Path(resume), overrides, yes=yes)
        else:
            if not config_path:
                raise ConfigError("give a CONFIG file, or --resume RUN_DIR")
            config = load_config(config_path, overrides)
            benchmark = check_before_running(config)
            confirm_cost(config, yes, benchmark)
            store, run_id = new_run(config, benchmark=benchmark)
    except (ConfigError, StoreError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return 2
    except NotConfirmed as exc:
        console.print(str(exc))
        return 1
    return run_to_completion(config, store, run_id, benchmark)


def run_to_completion(config: Config, store: RunStore, run_id: str, benchmark: Benchmark | None = None) -> int:
    if config.uses_scripted_model:
        console.print(f"[bold yellow]{SCRIPTED_BANNER.upper()}[/]")
    console.print(f"run {run_id} -> {store.run_dir}")
    try:
        with live_view(console, store.run_dir, config), runtime(config, store, run_id, benchmark) as ctx:
            reason = DarwinGodelMachine(ctx).run()
    except KeyboardInterrupt:
        store.set_run_status("stopped", "interrupted")
        console.print(f"interrupted; continue with: python -m dgm.run --resume {store.run_dir}")
        return 130
    except Exception as exc:
        store.set_run_status("crashed", f"{type(exc).__name__}: {exc}")
        console.print(f"[red]run failed:[/] {type(exc).__name__}: {exc}")
        console.print(f"fix the cause, then: python -m dgm.run --resume {store.run_dir}")
        return 1
    # A budget stop is a pause: the run is resumable with a raised budget, not finished.
    store.set_run_status("stopped" if reason.startswith(BUDGET_EXHAUSTED) else "finished", reason)
    print_summary(store, reason)
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", nargs="?", help="experiment YAML (e.g. experiments/quickstart.yaml)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config key, e.g. --set loop.generations=5 (repeatable)")
    parser.add_argument("--resume", metavar="RUN_DIR",
                        help="continue an interrupted or budget-stopped run from its directory (with --set, only "
                             "loop.* and llm.budgets.* may change)")
    parser.add_argument("--yes", action="store_true",
                        help="start a run that calls a paid endpoint without asking to confirm its estimated cost")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dgm.run", description=__doc__.split("\n\n")[0],
                                     epilog="Example: python -m dgm.run experiments/quickstart.yaml --set loop.generations=5")
    add_arguments(parser)
    args = parser.parse_args(argv)
    return execute(args.config, args.set, args.resume, args.yes)


if __name__ == "__main__":
    sys.exit(main())
