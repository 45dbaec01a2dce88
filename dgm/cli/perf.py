"""`dgm bench validate-speedup|isolation|scale|synth`: wall-time measurements (validation of the local suite;
concurrent attempts per executor, in dgm/executor/bench.py; synthesis throughput and validation time of the
synth suite)."""

from __future__ import annotations

import statistics
import time

from rich.console import Console
from rich.table import Table

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("bench", help="Measure benchmark-grading performance.",
                                   description="Measure benchmark-grading performance.",
                                   epilog="Example: dgm bench validate-speedup")
    sub = parser.add_subparsers(dest="bench_command", metavar="MEASUREMENT", required=True)
    p = add_command(sub, "validate-speedup", _speedup,
                    "Wall time of validating the local suite with 1 worker vs 2 workers (target ratio >= 1.7 on 2 cores).",
                    "dgm bench validate-speedup --subset small")
    _common(p)
    p = add_command(sub, "isolation", _isolation,
                    "Validation wall time with bwrap and docker vs local (targets: bwrap/local <= 1.15, docker/local "
                    "<= 1.3), and a sandbox's start-up cost (median of 20).",
                    "dgm bench isolation --subset small")
    _common(p)
    _register_scale(sub)
    _register_synth(sub)


def _register_synth(sub) -> None:
    p = add_command(sub, "synth", _synth,
                    "Synthesis throughput (validated tasks per minute, one package into a scratch spec directory) and "
                    "the wall time of validating the whole synth suite (target < 15 min with 2 workers in bwrap).",
                    "dgm bench synth --package inflection==0.5.1 --max 6 --workers 2")
    p.add_argument("--package", default="inflection==0.5.1", help="release to synthesize from (default inflection)")
    p.add_argument("--max", type=int, default=6, help="tasks to synthesize for the throughput figure (default 6)")
    p.add_argument("--workers", type=int, default=2, help="validation workers (default 2)")
    p.add_argument("--backend", default=None, help="sandbox backend (default: bwrap when it works here)")
    p.add_argument("--subset", default=None, help="validate only this subset of the suite (default: all tasks)")
    p.add_argument("--only", choices=["throughput", "validation"], default=None, help="measure one figure only")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")


def _register_scale(sub) -> None:
    from dgm.executor.bench import cli_scale

    p = add_command(sub, "scale", cli_scale,
                    "Throughput of 1, 2, 4, 8 concurrent attempts vs the ideal, per executor (latency-bound scripted "
                    "model; targets: efficiency >= 0.85 at 8, Ray / in-process <= 1.10).",
                    "dgm bench scale --latency 5 --attempts 1,2,4,8 --executors inprocess,ray")
    p.add_argument("--latency", type=float, default=5.0,
                   help="seconds the scripted model takes per call, as a real model does (default 5)")
    p.add_argument("--attempts", default="1,2,4,8", help="concurrent attempts to measure (default 1,2,4,8)")
    p.add_argument("--executors", default="inprocess,ray", help="inprocess, ray or both (default both)")
    p.add_argument("--ray-address", default=None, help="a running cluster (default: a local Ray, loopback only)")
    p.add_argument("--agent", default="agents/initial", help="the agent that modifies itself (default: the seed)")
    p.add_argument("--backend", default=None, help="sandbox backend (default: bwrap when it works here)")


def _common(p) -> None:
    p.add_argument("--bench", default="local", help="benchmark spec (default: local)")
    p.add_argument("--subset", default=None, help="only this subset (default: all tasks)")


def _time_validation(args, backend: str, workers: int) -> tuple[float, int]:
    from dgm.bench import load_benchmark
    from dgm.bench.validate import validate

    bench = load_benchmark(args.bench)
    ids = bench.task_ids(args.subset)
    started = time.monotonic()
    results = validate(bench, ids, backend=backend, workers=workers)
    return time.monotonic() - started, sum(not r.ok for r in results)


def _report(title: str, rows: list[tuple[str, float, int]], ratios: list[tuple[str, float, str]]) -> None:
    table = Table(title=title)
    for column in ("configuration", "wall time (s)", "invalid tasks"):
        table.add_column(column)
    for name, seconds, bad in rows:
        table.add_row(name, f"{seconds:.1f}", str(bad))
    console = Console()
    console.print(table)
    for label, ratio, target in ratios:
        console.print(f"{label}: {ratio:.2f} (target {target})")


def _speedup(args) -> int:
    from dgm.sandbox import default_backend

    backend = default_backend()
    one = _time_validation(args, backend, 1)
    two = _time_validation(args, backend, 2)
    _report(f"validate {args.bench} ({backend})", [("1 worker", *one), ("2 workers", *two)],
            [("speedup 1→2 workers", one[0] / two[0], ">= 1.7 on 2 cores")])
    return 0


TARGETS = {"bwrap": "<= 1.15", "docker": "<= 1.3"}


def _isolation(args) -> int:
    """One validation per backend (docker only when its daemon answers), then the start-up cost."""
    from dgm.sandbox import doctor

    available = {s.name for s in doctor() if s.available}
    backends = [b for b in ("bwrap", "docker", "local") if b in available]
    rows = {backend: _time_validation(args, backend, 2) for backend in backends}
    _report(f"validate {args.bench} (2 workers)", [(b, *rows[b]) for b in backends],
            [(f"{b} / local", rows[b][0] / rows["local"][0], TARGETS[b]) for b in backends if b != "local"])
    startup = {backend: _startup_seconds(backend) for backend in backends}
    console = Console()
    console.print("one sandbox (open + exec true + close, median of 20): "
                  + ", ".join(f"{b} {startup[b] * 1000:.0f} ms" for b in backends))
    if "docker" in backends:
        docker = next(s for s in doctor() if s.name == "docker")
        steps = _docker_steps(args)
        console.print(f"docker ({docker.reason}), one grading-sized sandbox, median of 20: "
                      + ", ".join(f"{step} {seconds * 1000:.0f} ms" for step, seconds in steps.items()))
    return 0


def _docker_steps(args, repeats: int = 20) -> dict[str, float]:
    """Where a docker sandbox's time goes: create, start, copy a task's repository in, exec `true`, remove."""
    import tempfile
    from pathlib import Path

    from dgm.bench import load_benchmark
    from dgm.sandbox.base import SandboxSpec
    from dgm.sandbox.docker import DockerSandbox

    bench = load_benchmark(args.bench)
    seen: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="dgm-bench-docker-") as tmp:
        repo = Path(tmp) / "repo"
        bench.prepare_workspace(bench.task_ids(args.subset)[0], repo)
        for _ in range(repeats):
            sandbox = DockerSandbox(SandboxSpec(source=repo))
            exec_seconds = sandbox.exec(["true"], timeout=30).duration_s
            sandbox.close()
            for step, seconds in {**sandbox.seconds, "exec": exec_seconds}.items():
                seen.setdefault(step, []).append(seconds)
    order = ("create", "start", "copy_in", "exec", "remove")
    return {step: statistics.median(seen[step]) for step in order}


def _startup_seconds(backend: str, repeats: int = 20) -> float:
    from dgm.sandbox import open_sandbox
    from dgm.sandbox.base import SandboxSpec

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        with open_sandbox(backend, SandboxSpec()) as sandbox:
            sandbox.exec(["true"], timeout=30)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def _synth(args) -> int:
    """Throughput from a scratch synthesis (the shipped spec files are untouched), then the suite's validation."""
    import json
    import tempfile
    from pathlib import Path

    from dgm.bench.synth_suite import SynthBenchmark, default_cache_dir, synth_package
    from dgm.bench.validate import validate
    from dgm.sandbox import default_backend

    backend = args.backend or default_backend()
    figures: dict = {"backend": backend, "workers": args.workers}
    if args.only != "validation":
        with tempfile.TemporaryDirectory(prefix="dgm-bench-synth-") as tmp:
            report = synth_package(args.package, spec_dir=Path(tmp), cache=default_cache_dir(), max_tasks=args.max,
                                   backend=backend, workers=args.workers)
        figures.update({"package": args.package, "mutations_tried": report.stats.tried,
                        "tasks_valid": len(report.valid), "synth_seconds": round(report.synth_seconds, 1),
                        "validate_seconds": round(report.validate_seconds, 1),
                        "valid_tasks_per_minute": round(report.per_minute, 2)})
    if args.only != "throughput":
        bench = SynthBenchmark()
        ids = bench.task_ids(args.subset)
        started = time.monotonic()
        results = validate(bench, ids, backend=backend, workers=args.workers)
        figures.update({"suite_tasks": len(ids), "suite_invalid": sum(not r.ok for r in results),
                        "suite_validation_seconds": round(time.monotonic() - started, 1),
                        "suite_target_seconds": 900})
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    table = Table(title=f"synth benchmark ({backend}, {args.workers} workers)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    Console().print(table)
    return 0
