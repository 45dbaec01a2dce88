"""`dgm replay RUN [--out DIR]`."""

from __future__ import annotations

from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = add_command(subparsers, "replay", _replay,
                         "Re-run a finished run from its LLM cache ($0, no upstream calls) and check it is identical.",
                         "dgm replay archive/quickstart-20261121-101500-s0 --out archive/quickstart-replay")
    parser.add_argument("run", help="the finished run directory")
    parser.add_argument("--out", type=Path, help="where the replayed run goes (default: RUN-replay)")


def _replay(args) -> int:
    from dgm.analysis.runview import resolve_run
    from dgm.replay import compare_runs, count_upstream_calls, replay_config
    from dgm.run import console, new_run, run_to_completion
    from dgm.config import ConfigError
    from dgm.store import RunStore, StoreError

    try:
        original_dir = resolve_run(args.run)
        original = RunStore.open(original_dir, read_only=True)
        config = replay_config(original_dir)
    except (StoreError, ConfigError) as exc:
        console.print(f"[red]error:[/] {exc}", soft_wrap=True)
        return 2
    out = args.out or original_dir.with_name(original_dir.name + "-replay")
    store, run_id = new_run(config, out)
    code = run_to_completion(config, store, run_id)
    upstream, misses = count_upstream_calls(store)
    differences = compare_runs(original, store)
    console.print(f"replay: {upstream} upstream calls, {misses} cache misses, "
                  f"{len(original.nodes())} nodes in the original, {len(store.nodes())} in the replay")
    for line in differences:
        console.print(f"  [red]{line}[/]")
    identical = code == 0 and not differences and misses == 0
    console.print("[bold green]identical: every node, patch and score[/]" if identical else "[bold red]NOT identical[/]")
    return 0 if identical else 1
