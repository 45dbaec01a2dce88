"""`dgm import-dgm DIR --out RUN`: bring an official DGM run into our store (tree/plot/report/ui work on it)."""

from __future__ import annotations

import sys
from pathlib import Path

from dgm.analysis.importer import import_official_run, load_subsets
from dgm.cli import add_command
from dgm.store import StoreError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "import-dgm", _import,
        "Import an output dir of the official DGM code (dgm_metadata.jsonl + <node>/metadata.json + model_patch.diff).",
        "dgm import-dgm output_dgm/20250529_120000_000000 --out archive/official-swe --base ~/src/dgm "
        "--subsets swebench_small.json swebench_medium.json swebench_big.json",
    )
    p.add_argument("dir", type=Path, help="the official run's output directory")
    p.add_argument("--out", required=True, type=Path, help="new run directory to create")
    p.add_argument("--base", type=Path, help="checkout of the agent source the run started from "
                   "(patches are applied to it; without it the lineage holds patches only)")
    p.add_argument("--subsets", nargs="+", type=Path, help="JSON task lists in stage order (small, medium, big)")
    p.add_argument("--run-id", help="run id to record (default: the directory name)")


def _import(args) -> int:
    try:
        if args.base is not None and not args.base.is_dir():
            raise StoreError(f"--base {args.base} is not a directory")
        subsets = load_subsets(args.subsets) if args.subsets else None
        store = import_official_run(args.dir, args.out, base_dir=args.base, subsets=subsets, run_id=args.run_id)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    nodes = store.nodes()
    problems = [n for n in nodes if n.error]
    print(f"imported {len(nodes)} nodes into {args.out}")
    for n in problems:
        print(f"  note: {n.node_id}: {n.error}")
    store.close()
    return 0
