"""Benchmarks: the Benchmark protocol (base.py) and its adapters.

    from dgm.bench import load_benchmark, parse_bench_spec
    bench = load_benchmark("local")                 # benchmarks/ shipped with the project
    name, subset = parse_bench_spec("local:small")  # ("local", "small")
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import OUTCOMES, Benchmark, GradeResult, TaskInfo

BENCHMARK_NAMES = ("local", "swebench", "polyglot", "synth")


def default_local_root() -> Path:
    """$DGM_BENCHMARKS_DIR, else the benchmarks/ directory next to the dgm package (source checkout)."""
    env = os.environ.get("DGM_BENCHMARKS_DIR")
    if env:
        return Path(env)
    candidate = Path(__file__).resolve().parents[2] / "benchmarks"
    if (candidate / "tasks").is_dir():
        return candidate
    raise FileNotFoundError("cannot find the local benchmark: set DGM_BENCHMARKS_DIR to a benchmarks/ directory "
                            f"(looked in {candidate})")


def parse_bench_spec(spec: str) -> tuple[str, str | None]:
    """'local:small' -> ('local', 'small'); 'local' -> ('local', None).

    A path is not a subset: 'local:/data/bench' or 'polyglot:~/polyglot' -> (name, None); use
    load_benchmark for those.
    """
    name, _, rest = spec.partition(":")
    if name not in BENCHMARK_NAMES:
        raise ValueError(f"unknown benchmark {name!r} in {spec!r}; choose one of {', '.join(BENCHMARK_NAMES)}")
    if not rest or looks_like_path(rest):
        return name, None
    return name, rest


def looks_like_path(text: str) -> bool:
    return "/" in text or text.startswith((".", "~"))


def load_benchmark(spec: str, **options) -> Benchmark:
    """'local' | 'local:<path>' | 'swebench[:<dataset file>]' | 'polyglot:<path>' | 'synth[:<spec dir>]' (a
    ':<subset>' suffix is ignored here).

    A checkout's path may also come as the option `path` (evaluation.benchmark_options in a config).
    """
    name, _, rest = spec.partition(":")
    path = Path(rest).expanduser() if rest and looks_like_path(rest) else None
    if name in ("local", "polyglot", "synth") and "path" in options:
        path = path or Path(str(options.pop("path"))).expanduser()
    if name == "local":
        from .local import LocalBenchmark

        return LocalBenchmark(path or default_local_root(), **options)
    if name == "synth":
        from .synth_suite import SynthBenchmark

        return SynthBenchmark(path, **options)  # options: cache=DIR (default ~/.cache/dgm/synth)
    if name == "swebench":
        from .swebench import SWEBenchBenchmark

        dataset = rest.rpartition(":")[0] if ":" in rest else rest  # swebench:FILE.jsonl[:subset]
        if dataset and (looks_like_path(dataset) or dataset.endswith((".json", ".jsonl", ".parquet"))):
            options["dataset"] = Path(dataset).expanduser()  # e.g. from `dgm tasks export-swebench`
        return SWEBenchBenchmark(**options)
    if name == "polyglot":
        from .polyglot import PolyglotBenchmark

        if path is None:
            raise ValueError("polyglot needs the path of a polyglot-benchmark checkout: 'polyglot:/path/to/it' "
                             "or benchmark_options: {path: ...}")
        return PolyglotBenchmark(path, **options)
    raise ValueError(f"unknown benchmark {name!r} in {spec!r}; choose one of {', '.join(BENCHMARK_NAMES)}")


__all__ = ["OUTCOMES", "Benchmark", "GradeResult", "TaskInfo", "load_benchmark", "parse_bench_spec",
           "default_local_root"]
