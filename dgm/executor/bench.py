"""`dgm bench scale`: throughput of concurrent attempts against the ideal, for each executor.

An attempt here is one self-modification of the seed agent (catalogue item `editor_str_replace`),
as in a run: the real agent in a real sandbox, talking to the real gateway, whose scripted model
answers every call after `latency` seconds, as a real model does. With latency-bound work, N
attempts at once should take as long as one: efficiency(N) = T(1) / T(N) (1.0 is ideal). The Ray
executor's overhead is T_ray(N) / T_inprocess(N).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from dgm.agent_run import SandboxPolicy
from dgm.config import AgentLimits, RaySection
from dgm.improve import problem_statement
from dgm.llm.base import CallContext
from dgm.llm.gateway import Gateway
from dgm.llm.pricing import PriceTable
from dgm.llm.scripted import load_catalogue
from dgm.llm.upstream import build_upstreams

from .base import Job, Workplace
from .inprocess import InProcessExecutor
from .jobs import self_modify_job
from .loopback import ISOLATED_ENV, loopback_only_argv, ray_environment

ITEM = "editor_str_replace"
LIMITS = AgentLimits(max_steps=40, max_seconds=600, max_cost_usd=1.0)


@dataclass
class Round:
    executor: str
    attempts: int
    seconds: float
    patches: int  # attempts that produced a non-empty patch (all should)


def _noop(place: Workplace, *, out_dir) -> None:
    time.sleep(1.0)  # long enough that each warm-up job gets a worker process of its own


def open_bench_executor(name: str, policy: SandboxPolicy, gateway: Gateway, slots: int, address: str | None):
    if name == "inprocess":
        return InProcessExecutor(Workplace(policy), slots=slots)
    from .ray_executor import RayExecutor

    cfg = RaySection(address=address, local_cpus=slots, object_store_mb=100)
    return RayExecutor(cfg, policy=policy, benchmark_spec=None, gateway=gateway, slots=slots)


def measure(executor_names: list[str], counts: list[int], latency: float, agent: Path, backend: str,
            address: str | None = None, report=print) -> list[Round]:
    item = next(i for i in load_catalogue() if i.name == ITEM)
    statement = problem_statement(agent, item.diagnosis)
    routes = build_upstreams({"self_modify": {"provider": "scripted", "latency_s": latency}}, prices=PriceTable.load())
    rounds = []
    with tempfile.TemporaryDirectory(prefix="dgm-bench-scale-") as tmp, \
            Gateway(routes, tcp="ray" in executor_names, tcp_host="127.0.0.1") as gateway:
        policy = SandboxPolicy(backend, llm_socket=gateway.socket_path, labels={"dgm.run": "bench-scale"})
        for name in executor_names:
            executor = open_bench_executor(name, policy, gateway, max(counts), address)
            try:
                _run_all(executor, [Job(f"warm-up {i}", _noop) for i in range(max(counts))])  # start workers
                for n in counts:
                    rounds.append(_round(name, executor, gateway, n, agent, statement, Path(tmp) / f"{name}-{n}"))
                    report(f"{name}: {n} attempts in {rounds[-1].seconds:.1f} s")
            finally:
                executor.close()
    return rounds


def _round(name: str, executor, gateway: Gateway, n: int, agent: Path, statement: str, out: Path) -> Round:
    tokens = [gateway.issue_token(CallContext("bench", f"n{n}a{i}", f"{name}:{n}:{i}", "self_modify"))
              for i in range(n)]
    jobs = [self_modify_job(f"attempt {i}", llm_env=gateway.agent_env(token), modifier_dir=agent, target_dir=agent,
                            statement=statement, limits=LIMITS, timeout=LIMITS.max_seconds + 60,
                            out_dir=out / str(i)) for i, token in enumerate(tokens)]
    started = time.monotonic()
    results = _run_all(executor, jobs)
    seconds = time.monotonic() - started
    for token in tokens:
        gateway.revoke(token)
    shutil.rmtree(out, ignore_errors=True)
    return Round(name, n, seconds, sum(bool(r.patch.strip()) for r in results))


def _run_all(executor, jobs: list[Job]) -> list:
    """All jobs at once (one driver thread each, as the loop runs attempts); their results in order."""
    results: list = [None] * len(jobs)
    errors: list[BaseException] = []

    def one(i: int) -> None:
        try:
            results[i] = executor.run(jobs[i])
        except BaseException as exc:  # reported after all threads finish
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


def efficiency(rounds: list[Round]) -> dict[tuple[str, int], float]:
    """T(1) / T(N) per executor (1.0: N attempts take as long as one)."""
    single = {r.executor: r.seconds for r in rounds if r.attempts == 1}
    return {(r.executor, r.attempts): single[r.executor] / r.seconds for r in rounds if r.executor in single}


# -- the command -------------------------------------------------------------------------------------
def cli_scale(args) -> int:
    from rich.console import Console
    from rich.table import Table

    from dgm.sandbox import default_backend

    executors = [e.strip() for e in args.executors.split(",")]
    if "ray" in executors and not args.ray_address and not os.environ.get(ISOLATED_ENV):
        # A local Ray for the benchmark lives in a loopback-only network namespace (and is gone with it).
        env = {**os.environ, **ray_environment()}
        try:
            return subprocess.run(loopback_only_argv([sys.executable, "-m", "dgm", *sys.argv[1:]]), env=env).returncode
        finally:
            shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)
    counts = [int(c) for c in args.attempts.split(",")]
    console = Console(highlight=False)
    rounds = measure(executors, counts, args.latency, Path(args.agent).resolve(), args.backend or default_backend(),
                     args.ray_address, report=console.print)
    eff = efficiency(rounds)
    table = Table(title=f"concurrent self-modification attempts, scripted model {args.latency:g} s per call")
    for column in ("executor", "attempts", "wall time (s)", "attempts/min", "efficiency T(1)/T(N)", "patches"):
        table.add_column(column)
    for r in rounds:
        table.add_row(r.executor, str(r.attempts), f"{r.seconds:.1f}", f"{60 * r.attempts / r.seconds:.1f}",
                      f"{eff[(r.executor, r.attempts)]:.2f}", f"{r.patches}/{r.attempts}")
    console.print(table)
    console.print("target: efficiency >= 0.85 at 8 attempts, for both executors")
    if {"inprocess", "ray"} <= set(executors):
        seconds = {(r.executor, r.attempts): r.seconds for r in rounds}
        ratios = ", ".join(f"{n}: {seconds[('ray', n)] / seconds[('inprocess', n)]:.2f}" for n in counts)
        console.print(f"Ray / in-process wall time at equal attempts: {ratios} (target <= 1.10)")
    return 0
