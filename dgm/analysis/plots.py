"""The paper's figures from a run store (matplotlib, Agg; PNG and SVG).

Every figure of a scripted-model run carries a watermark saying so: those runs exercise the
machinery and are never agent results. SVGs keep text as text (svg.fonttype=none), so the
watermark is searchable and the test can check it.
"""

from __future__ import annotations

import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
from matplotlib import colormaps  # noqa: E402
from matplotlib.colors import ListedColormap, Normalize  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from dgm.analysis.layout import tidy_layout  # noqa: E402
from dgm.analysis.runview import SCRIPTED_BANNER, RunView  # noqa: E402

RC = {"svg.fonttype": "none", "font.size": 9}
OUTCOME_CODES = {"none": 0, "resolved": 1, "unresolved": 2, "empty_patch": 3, "error": 4, "timeout": 4}
OUTCOME_COLOURS = ["#ffffff", "#2e9d4f", "#d6453d", "#f2c12e", "#8e44ad"]
MARKERS = ["o", "s", "D", "h", "p"]


def watermark(fig: Figure, scripted: bool) -> None:
    if not scripted:
        return
    fig.text(0.5, 0.5, SCRIPTED_BANNER, ha="center", va="center", rotation=25, fontsize=22,
             color="#c0392b", alpha=0.22, zorder=100)
    fig.text(0.01, 0.995, f"⚠ {SCRIPTED_BANNER}", ha="left", va="top", fontsize=9, color="#c0392b", weight="bold")


def finish_score_axes(fig: Figure, ax, ylabel: str, title: str, scripted: bool, legend_size: int = 8) -> Figure:
    """The common frame of the score-over-iterations figures, watermarked when the scripted model ran."""
    ax.set_xlabel("iteration (children created)")
    ax.set_ylabel(ylabel)
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=legend_size)
    ax.set_title(title)
    watermark(fig, scripted)
    return fig


def save(fig: Figure, out_dir: Path, name: str) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with matplotlib.rc_context(RC):
        for ext in ("png", "svg"):
            path = out_dir / f"{name}.{ext}"
            fig.savefig(path, dpi=130, bbox_inches="tight")
            paths.append(path)
    return paths


def svg_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    with matplotlib.rc_context(RC):
        fig.savefig(buf, format="svg", bbox_inches="tight")
    return buf.getvalue()


# -- archive tree -----------------------------------------------------------------------
def tree_figure(view: RunView) -> Figure:
    pos = tidy_layout([r.node_id for r in view.roots()], lambda n: [c.node_id for c in view.children(n)])
    width = max(6.0, 0.55 * (max((x for x, _ in pos.values()), default=0) + 2))
    depth = max((d for _, d in pos.values()), default=0)
    fig = Figure(figsize=(min(width, 40), 1.2 * depth + 2.5))
    ax = fig.add_subplot()
    cmap, norm = colormaps["viridis"], Normalize(0, max(0.01, max((n.score or 0) for n in view.nodes)))
    best = view.best()
    best_path = {n.node_id for n in view.lineage(best.node_id)} if best else set()
    for n in view.nodes:
        if n.parent_id in pos:
            (x0, y0), (x1, y1) = pos[n.parent_id], pos[n.node_id]
            on_path = n.node_id in best_path and n.parent_id in best_path
            ax.plot([x0, x1], [-y0, -y1], color="#c0392b" if on_path else "#999999", lw=3 if on_path else 0.8,
                    alpha=1 if n.compiled else 0.3, zorder=1)
    sizes = view.stage_sizes() or [0]
    for n in view.nodes:
        x, y = pos[n.node_id]
        colour = cmap(norm(n.score)) if n.score is not None else "#dddddd"
        stage_index = sizes.index(n.stages[-1].total) if n.stages and n.stages[-1].total in sizes else 0
        marker = "*" if best and n.node_id == best.node_id else MARKERS[stage_index % len(MARKERS)]
        size = 420 if marker == "*" else 90 + 50 * stage_index
        ax.scatter([x], [-y], s=size, c=[colour], marker=marker, edgecolors="black", linewidths=0.6,
                   alpha=1 if n.compiled else 0.25, zorder=3)
        ax.annotate(n.node_id, (x, -y), textcoords="offset points", xytext=(0, -13), ha="center", fontsize=7,
                    alpha=1 if n.compiled else 0.4)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    fig.colorbar(sm, ax=ax, fraction=0.03, pad=0.01, label="score")
    handles = [Line2D([], [], marker=MARKERS[i % len(MARKERS)], ls="", color="grey", label=f"{s} tasks")
               for i, s in enumerate(sizes) if s]
    handles += [Line2D([], [], marker="*", ls="", color="grey", markersize=12, label="best"),
                Line2D([], [], color="#c0392b", lw=3, label="lineage of best")]
    ax.legend(handles=handles, loc="upper right", fontsize=7, frameon=False)
    ax.set_title(f"Archive tree — run {view.run_id}")
    ax.axis("off")
    watermark(fig, view.scripted)
    return fig


# -- progress ---------------------------------------------------------------------------
def progress_figure(view: RunView) -> Figure:
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    points = view.progress()
    xs = [p.iteration for p in points]
    ax.step(xs, [p.best_so_far for p in points], where="post", label="best score so far", color="#c0392b", lw=2)
    ax.plot(xs, [p.archive_mean for p in points], label="archive mean", color="#7f8c8d", lw=1.2)
    ax.step(xs, [p.lineage_score for p in points], where="post", label="lineage of best node", color="#2c7fb8",
            lw=1.5, ls="--")
    best = view.best()
    if best:
        for n in view.lineage(best.node_id)[1:]:
            i, title = view.iteration(n.node_id), view.change_title(n.node_id)
            ax.scatter([i], [n.score], color="#2c7fb8", zorder=3, s=20)
            if title:
                ax.annotate(title, (i, n.score), textcoords="offset points", xytext=(4, 8), fontsize=7, rotation=20,
                            color="#2c7fb8")
    return finish_score_axes(fig, ax, "score", f"Progress — run {view.run_id}", view.scripted)


def compare_figure(views: list[RunView], labels: list[str] | None = None, reference: float | None = None,
                   reference_label: str | None = None) -> Figure:
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    labels = labels or [v.run_id for v in views]
    for i, (view, label) in enumerate(zip(views, labels)):
        if baseline_lines(ax, view, label, colormaps["tab10"](i % 10)):
            continue
        points = view.progress()
        ax.step([p.iteration for p in points], [p.best_so_far for p in points], where="post", lw=2, label=label,
                color=colormaps["tab10"](i % 10))
    if reference is not None:
        ax.axhline(reference, color="black", ls=":", lw=1, label=reference_label or f"reference {reference:g}")
    return finish_score_axes(fig, ax, "best score so far", "Best score so far", any(v.scripted for v in views))


def baseline_lines(ax, view: RunView, label: str, colour) -> bool:
    """An equal-budget baseline (dgm baseline) is no search: its best-of-N and mean pass@1 over the
    whole budget are drawn as horizontal lines. False when the view is not a baseline."""
    from dgm.baseline import read_meta, summarize

    if read_meta(view.run_dir) is None:
        return False
    b = summarize(view.run_dir)
    ax.axhline(b["best_of_n"], color=colour, ls="--", lw=1.5,
               label=f"{label}: best-of-{b['repeats']} (equal budget)")
    ax.axhline(b["mean_pass_at_1"], color=colour, ls=":", lw=1.5, label=f"{label}: mean pass@1")
    return True


# -- per-task outcomes ------------------------------------------------------------------
def outcome_matrix(view: RunView) -> tuple[list[str], list[str], list[list[int]], list[tuple[int, int]]]:
    """Rows = the best node's lineage, columns = tasks; codes per OUTCOME_CODES; regression cells."""
    best = view.best()
    rows = [n.node_id for n in view.lineage(best.node_id)] if best else []
    tasks = sorted({r.task_id for nid in rows for r in view.results.get(nid, [])})
    grid, regressions = [], []
    for i, nid in enumerate(rows):
        outcome = {}
        for r in view.results.get(nid, []):
            if outcome.get(r.task_id) != "resolved":
                outcome[r.task_id] = r.outcome
        grid.append([OUTCOME_CODES.get(outcome.get(t, "none"), 4) for t in tasks])
        regressed = set(view.regressions(nid))
        regressions += [(i, j) for j, t in enumerate(tasks) if t in regressed]
    return rows, tasks, grid, regressions


def matrix_figure(view: RunView) -> Figure:
    rows, tasks, grid, regressions = outcome_matrix(view)
    fig = Figure(figsize=(max(6, 0.16 * len(tasks) + 2), max(2.5, 0.35 * len(rows) + 1.5)))
    ax = fig.add_subplot()
    if grid and tasks:
        ax.imshow(grid, cmap=ListedColormap(OUTCOME_COLOURS), vmin=0, vmax=4, aspect="auto", interpolation="nearest")
        for i, j in regressions:
            ax.text(j, i, "×", ha="center", va="center", color="black", fontsize=9, weight="bold")
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xticks(range(len(tasks)), tasks, rotation=90, fontsize=6)
    handles = [Line2D([], [], marker="s", ls="", color=c, markeredgecolor="grey", label=name)
               for name, c in zip(["not run", "resolved", "unresolved", "empty patch", "error/timeout"], OUTCOME_COLOURS)]
    handles.append(Line2D([], [], marker="$×$", ls="", color="black", label="regression vs parent"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=7, frameon=False)
    ax.set_title(f"Per-task outcomes along the best lineage — run {view.run_id}")
    watermark(fig, view.scripted)
    return fig


# -- cost -------------------------------------------------------------------------------
def cost_figure(view: RunView) -> Figure:
    fig = Figure(figsize=(10, 4))
    ax_cost, ax_tok = fig.subplots(1, 2)
    for purpose, series in view.cost_by_iteration().items():
        xs = [s["iteration"] for s in series]
        ax_cost.plot(xs, [s["cost_usd"] for s in series], label=purpose)
        ax_tok.plot(xs, [s["tokens"] for s in series], label=purpose)
    ax_cost.set_ylabel("cumulative $")
    ax_tok.set_ylabel("cumulative tokens")
    for ax in (ax_cost, ax_tok):
        ax.set_xlabel("iteration")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"LLM spend by purpose — run {view.run_id} (total ${view.total_cost():.2f})")
    watermark(fig, view.scripted)
    return fig


FIGURES = {"archive_tree": tree_figure, "progress": progress_figure, "task_outcomes": matrix_figure, "cost": cost_figure}


def write_run_figures(view: RunView, out_dir: Path) -> list[Path]:
    """All single-run figures as PNG and SVG in out_dir."""
    paths = []
    for name, make in FIGURES.items():
        paths += save(make(view), Path(out_dir), name)
    return paths


# -- campaigns: one curve per seed, with the spread ---------------------------------------
def campaign_figure(seeds: list[dict], scripted: bool, title: str = "Campaign") -> Figure:
    """Best-so-far search score per seed (thin steps), their mean and min-max band, and each seed's scored best.

    `seeds`: the campaign's per-seed score records (dgm/campaign.py), each with `progress`
    [[iteration, best so far], ...], `best_score` and `source` (confirmed or search).
    """
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    curves = [[b for _, b in s["progress"]] for s in seeds if s.get("progress")]
    length = max((len(c) for c in curves), default=0)
    filled = [_carry_forward(c, length) for c in curves]
    cmap = colormaps["tab10"]
    xs = [*range(length), length - 0.5]  # the last iteration's value drawn half a step on, so it shows
    for i, (s, curve) in enumerate(zip([s for s in seeds if s.get("progress")], filled)):
        ax.step(xs, curve + curve[-1:], where="post", lw=1, alpha=0.7, color=cmap(i % 10), label=f"seed {s['seed']}")
        if s.get("best_score") is not None:
            # side by side at the right edge, so equal scores of several seeds all show
            ax.scatter([length - 0.3 + 0.12 * i], [s["best_score"]], marker="D", s=25, color=cmap(i % 10), zorder=3)
    if filled:
        columns = list(zip(*filled))
        low, high, mean = [min(c) for c in columns], [max(c) for c in columns], [sum(c) / len(c) for c in columns]
        ax.fill_between(xs, low + low[-1:], high + high[-1:], step="post", color="#c0392b", alpha=0.12,
                        label="min–max over seeds")
        ax.step(xs, mean + mean[-1:], where="post", color="#c0392b", lw=2.2, label="mean over seeds")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    sources = sorted({s["source"] for s in seeds if s.get("source")})
    ax.scatter([], [], marker="D", s=25, color="grey", label=f"best node's score: {', '.join(sources) or '-'}")
    return finish_score_axes(fig, ax, "best search score so far", f"{title}: {len(filled)} seeds", scripted,
                             legend_size=7)


def _carry_forward(curve: list[float | None], length: int) -> list[float]:
    """A seed's best-so-far at every iteration: 0 before its first score, its last value after its end."""
    out, last = [], 0.0
    for i in range(length):
        value = curve[i] if i < len(curve) else None
        last = value if value is not None else last
        out.append(last)
    return out
