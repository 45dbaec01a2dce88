"""The dashboard: a local FastAPI app over one or more run stores (read-only, never blocks a run).

One write exists: the human approval gate's decisions (dgm/approval.py). It needs the token
`dgm ui` prints at start (header X-DGM-Token; the page takes it from the URL it prints, `?token=`);
a request without it gets 403, and without a token (create_app's default) every write does. A
custom header cannot be sent cross-site without a CORS preflight, which this app never grants, so
another web page in the same browser cannot decide either.

Requests read the store through a read-only SQLite connection (WAL readers never block the
writer), so a run that is still going shows up live: the page polls /api/runs/<key>/state and
re-renders when its `version` changes (the tree only when `tree_version` does, so a phase change of
an in-flight attempt does not redraw hundreds of nodes). A poll re-reads the store only when one of its files
changed, so an open tab on a large archive costs a few stat() calls. All assets are served from
dgm/ui/static (no CDN).
"""

from __future__ import annotations

import getpass
import hashlib
import secrets
from pathlib import Path

from fastapi import FastAPI, Header, HTTPException
from fastapi.responses import FileResponse, Response
from fastapi.staticfiles import StaticFiles
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import DiffLexer

from dgm.analysis.layout import tidy_layout
from dgm.analysis.runview import SCRIPTED_BANNER, RunView, resolve_run
from dgm.analysis.trajectory import load_trajectory, render_trajectory, trajectory_path
from dgm.approval import decide
from dgm.progress import attempt_node
from dgm.store import StoreError

STATIC = Path(__file__).parent / "static"
STORE_FILES = ("run.db", "run.db-wal", "events.jsonl")  # every change a run makes touches one of these


def create_app(run_refs: list[str | Path], write_token: str | None = None) -> FastAPI:
    """write_token: what a write (an approval decision) must carry; None: the dashboard is read-only."""
    runs = _run_keys([resolve_run(r) for r in run_refs])
    app = FastAPI(title="dgm dashboard", docs_url=None, redoc_url=None)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    def view(key: str) -> RunView:
        if key not in runs:
            raise HTTPException(404, f"no run {key!r}; runs: {', '.join(runs)}")
        try:
            return RunView.load(runs[key])
        except StoreError as exc:
            raise HTTPException(500, str(exc)) from exc

    @app.get("/")
    def index():
        return FileResponse(STATIC / "index.html")

    @app.get("/favicon.ico")
    def favicon():
        return Response(status_code=204)

    @app.get("/api/runs")
    def list_runs():
        out = []
        for key in runs:
            v = view(key)
            best = v.best()
            out.append({"key": key, "run_id": v.run_id, "scripted": v.scripted, "status": v.status,
                        "nodes": len(v.nodes), "best_score": best.score if best else None})
        return {"runs": out, "scripted_banner": SCRIPTED_BANNER}

    cached_states: dict[str, tuple[tuple, dict]] = {}

    @app.get("/api/runs/{key}/state")
    def state(key: str):
        stamp = store_fingerprint(runs[key]) if key in runs else None
        cached = cached_states.get(key)
        if cached is None or cached[0] != stamp:
            cached_states[key] = cached = (stamp, run_state(view(key)))
        return cached[1]

    @app.get("/api/runs/{key}/nodes/{node_id}")
    def node(key: str, node_id: str):
        v = view(key)
        try:
            return node_detail(v, node_id)
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.get("/api/runs/{key}/nodes/{node_id}/log/{task}")
    def log(key: str, node_id: str, task: str):
        v = view(key)
        try:
            path = trajectory_path(v.run_dir, node_id, task)
            return {"node": node_id, "task": task, "scripted": v.scripted,
                    "blocks": [{"heading": h, "body": b} for h, b in render_trajectory(load_trajectory(path))]}
        except StoreError as exc:
            raise HTTPException(404, str(exc)) from exc

    @app.post("/api/runs/{key}/nodes/{node_id}/approval")
    def approval(key: str, node_id: str, body: dict, x_dgm_token: str | None = Header(None)):
        if write_token is None or x_dgm_token is None or not secrets.compare_digest(x_dgm_token, write_token):
            raise HTTPException(403, "a decision needs the token `dgm ui` printed at start (open the URL it printed)")
        view(key)  # 404 for an unknown run
        if not isinstance(body.get("approve"), bool):
            raise HTTPException(422, 'body: {"approve": true|false, "reason": "..."} expected')
        try:
            node = decide(runs[key], node_id, approve=body["approve"], reason=body.get("reason") or None,
                          by=f"dashboard:{getpass.getuser()}")
        except StoreError as exc:
            raise HTTPException(409, str(exc)) from exc
        return {"node": node.node_id, "approval": node.approval, "reason": node.approval_reason}

    @app.get("/api/runs/{key}/progress.svg")
    def progress_svg(key: str):
        from dgm.analysis import plots  # matplotlib only when a plot is asked for

        return Response(plots.svg_bytes(plots.progress_figure(view(key))), media_type="image/svg+xml")

    return app


def store_fingerprint(run_dir: Path) -> tuple:
    stamp = []
    for name in STORE_FILES:
        try:
            st = (run_dir / name).stat()
            stamp.append((st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            stamp.append(None)
    return tuple(stamp)


def _run_keys(paths: list[Path]) -> dict[str, Path]:
    keys: dict[str, Path] = {}
    for p in paths:
        key = p.name
        n = 2
        while key in keys:
            key, n = f"{p.name}-{n}", n + 1
        keys[key] = p
    return keys


def run_state(v: RunView) -> dict:
    best = v.best()
    lineage = [n.node_id for n in v.lineage(best.node_id)] if best else []
    pos = tidy_layout([r.node_id for r in v.roots()], lambda n: [c.node_id for c in v.children(n)])
    nodes = []
    for i, n in enumerate(v.nodes):
        interval = v.interval(n)
        x, depth = pos.get(n.node_id, (0.0, 0))
        nodes.append({
            "id": n.node_id, "parent": n.parent_id, "iteration": i, "generation": n.generation, "status": n.status,
            "score": n.score, "interval": interval, "tasks": n.tasks_evaluated, "compiled": n.compiled,
            "admitted": n.admitted, "x": x, "depth": depth, "title": v.change_title(n.node_id),
            "approval": n.approval,
        })
    cost = v.cost_by_iteration()
    spend = {p: (s[-1]["cost_usd"] if s else 0.0) for p, s in cost.items()}
    tokens = {p: (s[-1]["tokens"] if s else 0) for p, s in cost.items()}
    in_flight = [a | {"node": attempt_node(a)} for a in v.in_flight]
    state = {
        "run_id": v.run_id, "scripted": v.scripted, "status": v.status, "nodes": nodes,
        "best": best.node_id if best else None, "lineage": lineage, "stage_sizes": v.stage_sizes(),
        "progress": [p.__dict__ for p in v.progress()], "spend": spend, "tokens": tokens,
        "cost_series": [sum(series[i]["cost_usd"] for series in cost.values()) for i in range(len(v.nodes))]
        if cost else [],
        "total_cost": v.total_cost(), "generations": v.generations, "in_flight": in_flight,
    }
    state["tree_version"] = _digest((nodes, state["best"], lineage))
    state["version"] = _digest((state["tree_version"], state["status"], state["total_cost"], in_flight, v.generations))
    return state


def _digest(value) -> str:
    return hashlib.sha1(repr(value).encode()).hexdigest()[:12]



def highlight_diff(text: str) -> str:
    return highlight(text, DiffLexer(), HtmlFormatter(noclasses=True, nowrap=False, style="default"))


def node_detail(v: RunView, node_id: str) -> dict:
    n = v.node(node_id)
    diff = v.patch(node_id)
    if diff is None and n.parent_id:
        diff = _lineage_diff(v, n.parent_id, node_id)
    regressions = set(v.regressions(node_id))
    task_dir = v.node_dir(node_id) / "tasks"
    results = [{"task": r.task_id, "stage": r.stage, "outcome": r.outcome, "agent_exit": r.agent_exit,
                "duration_s": r.duration_s, "regression": r.task_id in regressions,
                "has_log": (task_dir / r.task_id / "trajectory.json").is_file()} for r in v.results.get(node_id, [])]
    return {
        "id": n.node_id, "parent": n.parent_id, "entry": n.entry, "status": n.status, "compiled": n.compiled,
        "admitted": n.admitted, "score": n.score, "interval": v.interval(n), "error": n.error,
        "approval": n.approval, "approval_reason": n.approval_reason,
        "iteration": v.iteration(node_id), "generation": n.generation,
        "stages": [{"stage": s.stage, "resolved": s.resolved, "total": s.total, "graded": s.graded} for s in n.stages],
        "diagnosis": v.diagnosis(node_id), "diff": diff or "", "diff_html": highlight_diff(diff) if diff else "",
        "results": results, "cost": v.node_cost(node_id),
        "has_self_modify_log": (v.node_dir(node_id) / "self_modify" / "trajectory.json").is_file(),
        "scripted": v.scripted,
    }


def _lineage_diff(v: RunView, old: str, new: str) -> str | None:
    from dgm.store import RunStore

    store = RunStore.open(v.run_dir, read_only=True)
    try:
        if store.lineage is None or not (store.lineage.has(old) and store.lineage.has(new)):
            return None
        return store.lineage.diff(old, new)
    finally:
        store.close()
