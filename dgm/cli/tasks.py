"""`dgm tasks list|validate|health|export-swebench BENCH`: inspect, validate, health-check and export a
benchmark's tasks; `dgm tasks synth|fetch`: synthesize tasks from a released package, fetch the synth
benchmark's sdists."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("tasks", help="List or validate benchmark tasks.",
                                   description="List or validate benchmark tasks.",
                                   epilog="Example: dgm tasks validate local --workers 2")
    sub = parser.add_subparsers(dest="tasks_command", metavar="ACTION", required=True)

    p = add_command(sub, "list", _list, "List a benchmark's tasks (optionally one subset).",
                    "dgm tasks list local --subset small")
    p.add_argument("bench", help="benchmark spec: local, local:PATH, polyglot:PATH")
    p.add_argument("--subset", default=None, help="subset name (small, medium, heldout, ...)")

    p = add_command(sub, "validate", _validate,
                    "Check every task: F2P fail before gold and pass after, P2P pass both, empty patch "
                    "unresolved, gold touches no tests, two runs agree. Exit 1 if any task fails.",
                    "dgm tasks validate local --backend bwrap --workers 2")
    p.add_argument("bench", help="benchmark spec: local, local:PATH or swebench:DATASET.jsonl (graded by the "
                                 "swebench harness: gold resolves, empty and wrong patches do not)")
    p.add_argument("--backend", default=None, help="sandbox backend: bwrap | local (default: bwrap if it works)")
    p.add_argument("--workers", type=int, default=1, help="tasks validated in parallel (default 1)")
    p.add_argument("--task", action="append", default=None, metavar="ID", help="only this task (repeatable)")
    p.add_argument("--subset", default=None, help="only this subset")
    p.add_argument("--timeout", type=float, default=120, help="seconds per test run (default 120)")


    p = add_command(sub, "health", _health,
                    "Harness health: grade each task's gold patch R times (must resolve R of R) and run its hidden "
                    "tests on the unpatched base R times (must fail R of R); other tasks are flagged flaky or "
                    "invalid. Writes a report that evaluation.exclude_unhealthy reads. Exit 1 if any is flagged.",
                    "dgm tasks health local --subset small --repeats 3")
    p.add_argument("bench", help="benchmark spec: local or local:PATH")
    p.add_argument("--repeats", type=int, default=3, metavar="R", help="gradings of each patch (default 3)")
    p.add_argument("--backend", default=None, help="sandbox backend: bwrap | local (default: bwrap if it works)")
    p.add_argument("--workers", type=int, default=1, help="tasks checked in parallel (default 1)")
    p.add_argument("--task", action="append", default=None, metavar="ID", help="only this task (repeatable)")
    p.add_argument("--subset", default=None, help="only this subset")
    p.add_argument("--timeout", type=float, default=120, help="seconds per test run (default 120)")
    p.add_argument("--out", type=Path, default=None,
                   help="report file (default: archive/health/<bench>.json, what exclude_unhealthy: true reads)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")

    p = add_command(sub, "export-swebench", _export_swebench,
                    "Write the local suite as a SWE-bench dataset (JSONL) and build its environment and instance "
                    "images locally, named as the swebench harness expects (needs Docker; nothing is pulled).",
                    "dgm tasks export-swebench local --out local-swebench.jsonl")
    p.add_argument("bench", help="benchmark spec: local or local:PATH")
    p.add_argument("--out", type=Path, required=True, help="the dataset file to write (.jsonl)")
    p.add_argument("--subset", default=None, help="only this subset (default: every task)")
    p.add_argument("--no-images", action="store_true", help="write the dataset only")
    _register_synth(sub)


def _register_synth(sub) -> None:
    p = add_command(sub, "synth", _synth,
                    "Synthesize tasks from a released package: pip-download its sdist, run its tests in the sandbox, "
                    "inject bugs (AST mutations, single and paired), keep the ones its tests catch, validate them and "
                    "record them (replacing that package's tasks) in the synth spec directory.",
                    "dgm tasks synth --package inflection==0.5.1 --max 30")
    p.add_argument("--package", required=True, metavar="NAME==VERSION", help="a pure-Python release on PyPI")
    p.add_argument("--max", type=int, default=30, help="tasks to aim for (default 30; ~30%% are two-site bugs)")
    p.add_argument("--out", type=Path, default=None,
                   help="spec directory to record into (default: benchmarks/synth, or $DGM_SYNTH_DIR)")
    p.add_argument("--kind", default="", help="what kind of package (parsing, dates, text...), recorded")
    p.add_argument("--backend", default=None, help="sandbox backend (default: bwrap if it works)")
    p.add_argument("--workers", type=int, default=2, help="tasks validated in parallel (default 2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the mutation order (default 0)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")

    p = add_command(sub, "fetch", _fetch,
                    "Download the sdists the synth benchmark is built from (pip), check their sha256, unpack them "
                    "and write the tasks into the cache; everything after this is offline.",
                    "dgm tasks fetch synth")
    p.add_argument("bench", choices=["synth"], help="the benchmark to fetch (synth)")
    p.add_argument("--spec-dir", type=Path, default=None, help="default: benchmarks/synth, or $DGM_SYNTH_DIR")
    p.add_argument("--json", action="store_true", help="print the result as JSON")


def _benchmark_and_ids(args) -> tuple[object, list[str]] | None:
    """The benchmark and the selected task ids, or None after saying what is wrong with the arguments."""
    from dgm.bench import load_benchmark

    try:
        bench = load_benchmark(args.bench)
        ids = getattr(args, "task", None) or bench.task_ids(args.subset)
        unknown = sorted(set(ids) - set(bench.task_ids()))
        if unknown:
            raise KeyError(f"unknown task(s): {', '.join(unknown)}")
        return bench, ids
    except (ValueError, KeyError, OSError) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc  # KeyError's str() adds quotes
        print(f"error: {args.bench}{' --subset ' + args.subset if args.subset else ''}: {reason}", file=sys.stderr)
        return None


def _local_suite_and_ids(args, refusal: str) -> tuple[object, list[str]] | None:
    """`_benchmark_and_ids` for commands that work on a local task suite only; None after saying why not."""
    from dgm.bench.local import LocalBenchmark

    found = _benchmark_and_ids(args)
    if found is not None and not isinstance(found[0], LocalBenchmark):
        print(f"error: {refusal}, not {args.bench!r}", file=sys.stderr)
        return None
    return found


def _with_progress(label: str, total: int, run):
    """run(on_done) under a transient progress bar on stderr that advances once per finished task."""
    with Progress(console=Console(stderr=True), transient=True) as progress:
        bar = progress.add_task(label, total=total)
        return run(lambda _: progress.advance(bar))


def _list(args) -> int:
    found = _benchmark_and_ids(args)
    if found is None:
        return 2
    bench, ids = found
    table = Table(title=f"{bench.name} tasks" + (f" ({args.subset})" if args.subset else ""))
    for column in ("instance_id", "subset", "kind", "shape", "files"):
        table.add_column(column)
    membership = {i: name for name, ids in bench.subsets().items() for i in ids}
    for instance_id in ids:
        meta = bench.task(instance_id).meta if hasattr(bench, "task") else {}
        table.add_row(instance_id, membership.get(instance_id, ""), str(meta.get("kind", "")),
                      str(meta.get("shape", "")), ", ".join(meta.get("files", [])))
    Console().print(table)
    return 0


def _validate(args) -> int:
    from dgm.bench.local import LocalBenchmark
    from dgm.bench.validate import validate
    from dgm.sandbox import default_backend

    found = _benchmark_and_ids(args)
    if found is None:
        return 2
    bench, ids = found
    if getattr(bench, "name", None) == "swebench":
        return _validate_swebench(args, bench, ids)
    if not isinstance(bench, LocalBenchmark):
        print(f"dgm tasks validate: only local task suites and SWE-bench datasets can be validated here, "
              f"not {args.bench!r}", file=sys.stderr)
        return 2
    backend = args.backend or default_backend()
    started = time.monotonic()
    results = _with_progress(f"validating {len(ids)} tasks ({backend}, {args.workers} workers)", len(ids),
                             lambda on_done: validate(bench, ids, backend=backend, workers=args.workers,
                                                      timeout=args.timeout, on_done=on_done))
    elapsed = time.monotonic() - started

    table = Table(title=f"validation of {len(ids)} tasks — backend {backend}, {args.workers} workers, {elapsed:.1f}s")
    table.add_column("task")
    table.add_column("ok")
    table.add_column("F2P/P2P", justify="right")
    table.add_column("problems")
    for res in results:
        task = bench.task(res.instance_id)
        table.add_row(res.instance_id, "[green]yes[/]" if res.ok else "[red]NO[/]",
                      f"{len(task.fail_to_pass)}/{len(task.pass_to_pass)}", "; ".join(res.problems))
    console = Console()
    console.print(table)
    bad = [r for r in results if not r.ok]
    for res in bad:
        console.print(f"[red]FAILED[/] {res.instance_id}: {'; '.join(res.problems)}")
    console.print(f"{len(results) - len(bad)}/{len(results)} tasks valid in {elapsed:.1f}s")
    return 1 if bad else 0


def _validate_swebench(args, bench, ids) -> int:
    """Each instance through the harness; an exported local task must also agree with the local grading."""
    from concurrent.futures import ThreadPoolExecutor

    from dgm.bench import load_benchmark
    from dgm.bench.swebench_export import validate_with_harness
    from dgm.sandbox import default_backend

    origins = {bench.row(i).get("repo", "").partition("/")[0] for i in ids}  # dgm-local, dgm-synth: exported here
    exported = len(origins) == 1 and origins.pop() in ("dgm-local", "dgm-synth")
    local = load_benchmark(bench.row(ids[0])["repo"].split("/")[0].removeprefix("dgm-")) if exported else None
    local_backend = args.backend or default_backend()
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:
        results = list(pool.map(lambda i: validate_with_harness(bench, i, timeout=args.timeout, local=local,
                                                                local_backend=local_backend), ids))
    elapsed = time.monotonic() - started
    table = Table(title=f"{len(ids)} SWE-bench instances through the swebench harness's run_instance, {elapsed:.0f}s"
                        + (f" (compared with the local grading, {local_backend})" if local else ""))
    table.add_column("instance", no_wrap=True)
    for column in ("ok", "gold", "empty", "wrong", "seconds", "problems"):
        table.add_column(column)
    for res in results:
        table.add_row(res.instance_id, "[green]yes[/]" if res.ok else "[red]NO[/]",
                      *(res.outcomes.get(k, "-") for k in ("gold", "empty", "wrong")), f"{res.seconds:.0f}",
                      "; ".join(res.problems))
    console = Console()
    console.print(table)
    bad = [r for r in results if not r.ok]
    console.print(f"{len(results) - len(bad)}/{len(results)} instances valid in {elapsed:.0f}s")
    return 1 if bad else 0


def _health(args) -> int:
    import json

    from dgm.bench.health import HEALTHY, check_health, write_report
    from dgm.sandbox import default_backend

    found = _local_suite_and_ids(args, "dgm tasks health checks local task suites")
    if found is None:
        return 2
    bench, ids = found
    if args.repeats < 1:
        print(f"error: --repeats must be >= 1 (got {args.repeats})", file=sys.stderr)
        return 2
    backend = args.backend or default_backend()
    out = args.out or Path("archive") / "health" / f"{args.bench.replace('/', '_').replace(':', '_')}.json"
    started = time.monotonic()
    results = _with_progress(f"checking {len(ids)} tasks x {args.repeats} ({backend})", len(ids),
                             lambda on_done: check_health(bench, ids, repeats=args.repeats, backend=backend,
                                                          workers=args.workers, timeout=args.timeout, on_done=on_done))
    elapsed = time.monotonic() - started
    write_report(out, args.bench, backend, results)
    flagged = [r for r in results if r.verdict != HEALTHY]
    if args.json:
        print(json.dumps({"benchmark": args.bench, "backend": backend, "repeats": args.repeats, "report": str(out),
                          "tasks": [r.to_json() for r in results], "unhealthy": [r.task_id for r in flagged]},
                         indent=2))
        return 1 if flagged else 0
    table = Table(title=f"harness health of {len(ids)} tasks x {args.repeats} — backend {backend}, {elapsed:.0f}s")
    for column in ("task", "gold resolves", "empty fails", "verdict", "problems"):
        table.add_column(column, justify="right" if column in ("gold resolves", "empty fails") else "left")
    colour = {"healthy": "green", "flaky": "yellow", "invalid": "red"}
    for r in results:
        table.add_row(r.task_id, f"{r.gold_resolved}/{r.repeats}", f"{r.empty_failed}/{r.repeats}",
                      f"[{colour[r.verdict]}]{r.verdict}[/]", "; ".join(r.problems))
    console = Console()
    console.print(table)
    console.print(f"{len(results) - len(flagged)}/{len(results)} healthy; report: {out} "
                  f"(drop the flagged ones from a run with evaluation.exclude_unhealthy: {out})")
    return 1 if flagged else 0


def _export_swebench(args) -> int:
    from dgm.bench import swebench_export
    from dgm.bench.local import TaskError
    from dgm.sandbox.base import SandboxError

    found = _local_suite_and_ids(args, "only a local task suite can be exported")
    if found is None:
        return 2
    bench, ids = found
    try:
        rows = swebench_export.export_rows(bench, ids)
        swebench_export.write_dataset(rows, args.out)
        print(f"wrote {len(rows)} instances to {args.out}")
        if not args.no_images:
            started = time.monotonic()
            images = swebench_export.build_images(bench, rows, progress=print)
            built = sum(i.built for i in images)
            print(f"images: {swebench_export.env_image_name()} and {len(images)} instance images "
                  f"({built} built, {len(images) - built} up to date) in {time.monotonic() - started:.0f}s")
    except (TaskError, SandboxError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"grade them with the harness: dgm tasks validate swebench:{args.out}")
    return 0


def _synth(args) -> int:
    import json

    from dgm.bench.local import TaskError
    from dgm.bench.synth import SynthError
    from dgm.bench.synth_suite import default_cache_dir, default_spec_dir, synth_package
    from dgm.sandbox import default_backend
    from dgm.sandbox.base import SandboxError

    console = Console(stderr=True)
    try:
        report = synth_package(args.package, spec_dir=args.out or default_spec_dir(), cache=default_cache_dir(),
                               max_tasks=args.max, backend=args.backend or default_backend(), seed=args.seed,
                               workers=args.workers, kind=args.kind,
                               progress=lambda message: console.log(message) if not args.json else None)
    except (SynthError, TaskError, SandboxError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    figures = synth_figures(report)
    if args.json:
        print(json.dumps(figures, indent=2))
    else:
        table = Table(title=f"synthesized {args.package} ({figures['license']})")
        table.add_column("figure")
        table.add_column("value", justify="right")
        for key, value in figures.items():
            if key not in ("invalid", "operators", "levels"):
                table.add_row(key, f"{value:.2f}" if isinstance(value, float) else str(value))
        table.add_row("levels", ", ".join(f"{k} {v}" for k, v in figures["levels"].items()))
        table.add_row("operators caught", ", ".join(f"{k} {v}" for k, v in figures["operators"].items()))
        Console().print(table)
        for iid, problems in figures["invalid"].items():
            Console().print(f"[red]dropped[/] {iid}: {'; '.join(problems)}")
    return 0


def synth_figures(report) -> dict:
    levels: dict[str, int] = {}
    for row in report.valid:
        levels[row["difficulty"]["level"]] = levels.get(row["difficulty"]["level"], 0) + 1
    return {"package": f"{report.package.name}=={report.package.version}", "license": report.package.license,
            "baseline_tests": report.stats.baseline_tests, "mutations_tried": report.stats.tried,
            "caught": report.stats.caught, "pairs_tried": report.stats.pairs_tried,
            "pairs_kept": report.stats.pairs_kept, "tasks_built": report.built, "duplicates": report.duplicates,
            "tasks_valid": len(report.valid), "synth_seconds": round(report.synth_seconds, 1),
            "validate_seconds": round(report.validate_seconds, 1), "valid_tasks_per_minute": round(report.per_minute, 2),
            "levels": levels, "operators": report.stats.operators, "invalid": report.invalid}


def _fetch(args) -> int:
    import json

    from dgm.bench.local import TaskError
    from dgm.bench.synth import SynthError
    from dgm.bench.synth_suite import default_cache_dir, default_spec_dir, fetch, load_rows

    spec_dir, cache = args.spec_dir or default_spec_dir(), default_cache_dir()
    try:
        done = fetch(spec_dir, cache, progress=lambda m: print(m, file=sys.stderr))
    except (SynthError, TaskError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    rows = load_rows(spec_dir)
    if args.json:
        print(json.dumps({"cache": str(cache), "tasks": len(rows),
                          "packages": [{"package": f"{p.name}=={p.version}", "sdist": p.sdist, "sha256": p.sha256,
                                        "state": state} for p, state in done]}, indent=2))
        return 0
    table = Table(title=f"synth sdists in {cache} (sha256 checked)")
    for column in ("package", "license", "sdist", "sha256", "state"):
        table.add_column(column)
    for package, state in done:
        table.add_row(f"{package.name}=={package.version}", package.license, package.sdist, package.sha256[:12], state)
    Console().print(table)
    print(f"{len(rows)} tasks ready offline: dgm tasks validate synth --workers 2")
    return 0
