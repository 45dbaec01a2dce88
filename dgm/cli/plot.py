"""`dgm plot RUN --out DIR` and `dgm plot compare RUN1 RUN2 ... --out DIR`."""

from __future__ import annotations

import sys
from pathlib import Path

from dgm.analysis.runview import RunView
from dgm.cli import add_command
from dgm.store import StoreError


def register(subparsers) -> None:
    p = add_command(
        subparsers, "plot", _plot,
        "Write the paper's figures (archive tree, progress, task outcomes, cost) as PNG and SVG; "
        "or `plot compare RUN1 RUN2 ...` for best-so-far curves of several runs (a run's equal-budget baseline, "
        "RUN/baseline-*, is drawn beside it as best-of-N and mean pass@1 lines).",
        "dgm plot archive/quickstart --out figures/   |   dgm plot compare runA runB --labels DGM greedy "
        "--reference 0.5 --reference-label paper --out figures/",
    )
    p.add_argument("runs", nargs="+", metavar="RUN", help="a run (dir or id); or `compare` followed by runs")
    p.add_argument("--out", required=True, type=Path, help="directory for the PNG/SVG files")
    p.add_argument("--labels", nargs="+", help="compare: one legend label per run")
    p.add_argument("--reference", type=float, help="compare: draw a horizontal reference score")
    p.add_argument("--reference-label", help="compare: legend label of the reference line")


def _plot(args) -> int:
    from dgm.analysis import plots  # matplotlib import is slow; only pay for it here
    from dgm.cli.report import with_baselines

    try:
        if args.runs[0] == "compare":
            refs = args.runs[1:]
            if not refs:
                raise StoreError("plot compare needs at least one run")
            if args.labels and len(args.labels) != len(refs):
                raise StoreError(f"--labels gave {len(args.labels)} labels for {len(refs)} runs")
            given = dict(zip(refs, args.labels or []))
            shown = with_baselines(refs)  # baselines found inside the runs are labelled by their run id
            views = [RunView.load(r) for r in shown]
            labels = [given.get(r, v.run_id) for r, v in zip(shown, views)]
            paths = plots.save(plots.compare_figure(views, labels, args.reference, args.reference_label),
                               args.out, "compare")
        else:
            if len(args.runs) != 1:
                raise StoreError("plot takes one RUN (use `dgm plot compare RUN1 RUN2 ...` for several)")
            view = RunView.load(args.runs[0])
            if view.scripted:
                print("⚠ scripted model — figures are watermarked as a test double, not an agent result")
            paths = plots.write_run_figures(view, args.out)
    except StoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
