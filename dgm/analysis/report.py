"""Tables for `dgm report`: per-run summary rows and a multi-run comparison, as Markdown or CSV."""

from __future__ import annotations

import csv
import io
import json

from dgm.analysis.runview import SCRIPTED_BANNER, RunView
from dgm.analysis.stats import wilson_interval

PURPOSES = ("diagnosis", "self_modify", "task", "preflight")


def best_per_stage(view: RunView) -> dict[int, dict]:
    """For each stage size: the best node evaluated at that stage, with its Wilson interval."""
    out: dict[int, dict] = {}
    for n in view.nodes:
        if not n.admitted:
            continue
        for s in n.stages:
            cur = out.get(s.total)
            if cur is None or s.score > cur["score"]:
                lo, hi = wilson_interval(s.resolved, s.total)
                out[s.total] = {"node": n.node_id, "resolved": s.resolved, "total": s.total, "score": s.score,
                                "low": lo, "high": hi}
    return dict(sorted(out.items()))


def summary_row(view: RunView) -> dict:
    children = [n for n in view.nodes if n.parent_id is not None]
    compiled = sum(1 for n in children if n.compiled)
    # The official code's rule, for comparing with the paper; unknown for children never evaluated.
    paper_compiled = sum(1 for n in children if n.paper_compiled)
    paper_unknown = sum(1 for n in children if n.paper_compiled is None)
    initial = next((n for n in view.nodes if n.parent_id is None), None)
    best = view.best()
    cost = {p: 0.0 for p in PURPOSES}
    tokens = 0
    for c in view.calls:
        cost[c["purpose"]] = cost.get(c["purpose"], 0.0) + c["cost_usd"]
        tokens += c["prompt_tokens"] + c["completion_tokens"]
    row = {
        "run": view.run_id,
        "model": "scripted (test double)" if view.scripted else "real",
        "status": view.status,
        "children": len(children),
        "compiled_rate": compiled / len(children) if children else 0.0,
        "paper_compiled_rate": paper_compiled / len(children) if children else 0.0,
        "paper_compiled_unknown": paper_unknown,
        "admitted": sum(1 for n in children if n.admitted),
        "initial_score": _fmt_score(view, initial),
        "best_node": best.node_id if best else "",
        "best_score": _fmt_score(view, best),
    }
    for size, b in best_per_stage(view).items():
        row[f"best@{size}"] = f"{b['score']:.3f} [{b['low']:.2f}, {b['high']:.2f}] ({b['node']})"
    row.update(adaptive_savings(view))
    row.update({f"cost_{p}_usd": round(v, 4) for p, v in cost.items()})
    row["cost_total_usd"] = round(sum(cost.values()), 4)
    row["tokens"] = tokens
    row.update(variance_columns(view))
    row["plan"] = plan_status(view)
    row.update(confirmed_scores(view))
    return row


def adaptive_savings(view: RunView) -> dict:
    """What adaptive evaluation (dgm/adaptive.py) saved: task runs never started, their share of all task
    runs the full evaluation would have made, and their $ estimated at each stopped node's own mean task cost
    (empty when no stage stopped early)."""
    stopped = [n for n in view.nodes if n.tasks_skipped]
    if not stopped:
        return {}
    usd = 0.0
    for n in stopped:
        started = n.stages[-1].total - n.tasks_skipped  # every task run begun, counted or not
        spent = sum(c["cost_usd"] for c in view.calls if c["node_id"] == n.node_id and c["purpose"] == "task")
        usd += spent / max(1, started) * n.tasks_skipped
    not_started = sum(n.tasks_skipped for n in stopped)
    full = sum(n.stages[-1].total for n in view.nodes if n.stages)
    return {"adaptive_stopped_stages": len(stopped), "adaptive_tasks_not_started": not_started,
            "adaptive_tasks_saved_share": round(not_started / full, 4) if full else 0.0,
            "adaptive_usd_saved_est": round(usd, 4)}


def variance_columns(view: RunView) -> dict:
    """Task-sampling vs run-to-run spread; for an equal-budget baseline also best-of-N, pass@k and pass^k.

    A search run has one draw of each node, so only its best node's task-sampling SE (bootstrap over
    the tasks it was scored on) is known here; run to run needs repeats (`dgm baseline`) or seeds
    (`dgm campaign`)."""
    from dgm.analysis.sampling import bootstrap_summary
    from dgm.baseline import read_meta, summarize

    if read_meta(view.run_dir) is not None:
        b = summarize(view.run_dir)
        unit = "$" if b["budget"]["unit"] == "usd" else " calls"
        v = b["variance"]
        return {"baseline_of": b["source_run"],
                "budget": f"{b['budget']['spent']:g}{unit} of {b['budget']['amount']:g}{unit}",
                "repeats": b["repeats"], "mean_pass@1": b["mean_pass_at_1"], "best_of_n": b["best_of_n"],
                **{f"pass@{k}": value for k, value in b["pass_at_k"].items()},
                **{f"pass^{k}": value for k, value in b["pass_hat_k"].items()},
                "task_sampling_se": v["task_sampling_se"],
                "run_to_run_sd": "" if v["run_to_run_sd"] is None else v["run_to_run_sd"]}
    best = view.best()
    flags = [float(r.outcome == "resolved") for r in view.results.get(best.node_id, [])] if best else []
    return {"task_sampling_se": bootstrap_summary(flags)[0] if flags else "",
            "run_to_run_sd": "needs dgm campaign or dgm baseline"}


def confirmed_scores(view: RunView) -> dict[str, str]:
    """For each `dgm confirm` done on the run: the search's chosen node, confirmed, beside the initial agent."""
    out = {}
    for path in sorted((view.run_dir / "confirm").glob("*/report.json")):
        report = json.loads(path.read_text())
        rows = report["rows"]
        initial, chosen = rows[0], rows[1] if len(rows) > 1 else None
        text = f"initial {initial['confirmed_score']:.3f} ({initial['resolved']}/{initial['total']})"
        if chosen:
            text = (f"{chosen['node_id']} {chosen['confirmed_score']:.3f} [{chosen['low']:.2f}, {chosen['high']:.2f}] "
                    f"({chosen['resolved']}/{chosen['total']}), gap {chosen['gap']:+.3f}, p={chosen['p_value']:.3g} "
                    f"vs {text}")
        sealed = "" if report["sealed"] else " (not held out)"
        out[f"confirmed@{path.parent.name}"] = text + sealed
    return out


def plan_status(view: RunView) -> str:
    """Whether the run's plan.json still matches the hash sealed into run.db at run start."""
    from dgm.preregistration import check_plan
    from dgm.store import RunStore

    store = RunStore.open(view.run_dir, read_only=True)
    try:
        return check_plan(store).text()
    finally:
        store.close()


def _fmt_score(view: RunView, node) -> str:
    if node is None or node.score is None or not node.stages:
        return ""
    lo, hi = view.interval(node)
    last = node.stages[-1]
    return f"{node.score:.3f} [{lo:.2f}, {hi:.2f}] ({last.resolved}/{last.total})"


def render(views: list[RunView], fmt: str = "md") -> str:
    rows = [summary_row(v) for v in views]
    columns = list(dict.fromkeys(k for r in rows for k in r))
    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return buf.getvalue()
    if fmt != "md":
        raise ValueError(f"unknown report format {fmt!r} (use md or csv)")
    lines = []
    for v in views:
        if v.scripted:
            lines.append(f"> ⚠ run {v.run_id}: {SCRIPTED_BANNER}\n")
    if len(rows) == 1:  # one run: a key/value table reads better
        lines += ["| metric | value |", "| --- | --- |"]
        lines += [f"| {k} | {_cell(v)} |" for k, v in rows[0].items()]
    else:
        lines += ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
        lines += ["| " + " | ".join(_cell(r.get(c, "")) for c in columns) + " |" for r in rows]
    lines += across_runs(views, rows)
    return "\n".join(lines) + "\n"


def across_runs(views: list[RunView], rows: list[dict]) -> list[str]:
    """Several search runs of one setting (e.g. a campaign's seeds): run-to-run SD of their best scores
    beside the mean task-sampling SE, so a reader sees which of the two dominates."""
    import statistics

    pairs = [(v.best(), r) for v, r in zip(views, rows) if "baseline_of" not in r]
    pairs = [(best, r) for best, r in pairs if best is not None and r["task_sampling_se"] != ""]
    if len(pairs) < 2:
        return []
    spread = statistics.stdev(best.score for best, _ in pairs)
    task_se = statistics.fmean(r["task_sampling_se"] for _, r in pairs)
    return ["", f"Across these {len(pairs)} runs: run-to-run SD of the best (search) score {spread:.3f}; "
                f"task-sampling SE (bootstrap over each best node's tasks, mean) {task_se:.3f}. Confirmed "
                f"scores: `dgm campaign --report` / `dgm confirm`."]


def _cell(value) -> str:
    if isinstance(value, float):
        return f"{value:.3f}" if value < 1 else f"{value:.2f}"
    return str(value).replace("|", "\\|")
