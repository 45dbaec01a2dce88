"""`dgm plot` writes every figure as PNG and SVG; scripted runs carry the watermark text in the SVG."""

import argparse

from dgm.analysis.layout import tidy_layout
from dgm.analysis.synthetic import build_synthetic_run
from dgm.cli import plot

FIGS = ["archive_tree", "progress", "task_outcomes", "cost"]


def run_cli(argv):
    parser = argparse.ArgumentParser()
    plot.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.handler(args)


def test_plot_writes_all_figures_with_watermark(tmp_path):
    scripted = build_synthetic_run(tmp_path / "s", children=6, seed=1)
    real = build_synthetic_run(tmp_path / "r", children=6, seed=2, scripted=False, run_id="real")
    assert run_cli(["plot", str(scripted), "--out", str(tmp_path / "fs")]) == 0
    assert run_cli(["plot", str(real), "--out", str(tmp_path / "fr")]) == 0
    for name in FIGS:
        for ext in ("png", "svg"):
            assert (tmp_path / "fs" / f"{name}.{ext}").stat().st_size > 1000
        assert "scripted model — test double, not an agent result" in (tmp_path / "fs" / f"{name}.svg").read_text()
        assert "scripted model" not in (tmp_path / "fr" / f"{name}.svg").read_text()
    assert (tmp_path / "fs" / "progress.png").read_bytes()[:4] == b"\x89PNG"
    assert run_cli(["plot", "compare", str(scripted), str(real), "--labels", "DGM", "greedy", "--reference", "0.5",
                    "--reference-label", "paper", "--out", str(tmp_path / "fc")]) == 0
    svg = (tmp_path / "fc" / "compare.svg").read_text()
    assert "greedy" in svg and "paper" in svg and "scripted model" in svg


def test_plot_compare_label_count_is_checked(tmp_path, capsys):
    run = build_synthetic_run(tmp_path / "s", children=2)
    assert run_cli(["plot", "compare", str(run), "--labels", "a", "b", "--out", str(tmp_path / "o")]) == 2
    assert "2 labels for 1 runs" in capsys.readouterr().err


def test_tidy_layout_centres_parents_over_children():
    kids = {"r": ["a", "b"], "a": ["c", "d"], "b": [], "c": [], "d": []}
    pos = tidy_layout(["r"], lambda n: kids[n])
    assert pos["c"] == (0, 2) and pos["d"] == (1, 2) and pos["b"] == (2, 1)
    assert pos["a"] == (0.5, 1) and pos["r"] == (1.25, 0)
