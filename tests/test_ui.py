"""The dashboard: JSON API over a real store, and end-to-end in headless Chromium (real server on loopback)."""

import pytest
from fastapi.testclient import TestClient

from dgm.analysis.runview import RunView
from dgm.analysis.synthetic import build_synthetic_run
from dgm.llm.base import CallContext, UsageRecord
from dgm.store import RunStore
from dgm.ui.app import create_app
from ui_helpers import CHROMIUM, NEEDS_CHROMIUM, dashboard, dashboard_page, open_node

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    return (build_synthetic_run(root / "scripted", children=8, seed=5),
            build_synthetic_run(root / "real", children=4, seed=6, scripted=False, run_id="real"))


def test_api_state_node_log_and_live_version(runs):
    client = TestClient(create_app([str(r) for r in runs]))
    listed = client.get("/api/runs").json()["runs"]
    assert [(r["key"], r["scripted"]) for r in listed] == [("scripted", True), ("real", False)]
    state = client.get("/api/runs/scripted/state").json()
    view = RunView.load(runs[0])
    assert state["best"] == view.best().node_id and len(state["nodes"]) == len(view.nodes)
    child = next(n for n in view.nodes if n.parent_id and n.commit_sha)
    node = client.get(f"/api/runs/scripted/nodes/{child.node_id}").json()
    assert "<span" in node["diff_html"] and f"improvement_{child.node_id}" in node["diff"]
    assert len(node["results"]) == child.tasks_evaluated
    log = client.get(f"/api/runs/scripted/nodes/{child.node_id}/log/self_modify").json()
    assert log["blocks"][0]["heading"] == "trajectory"
    missing = client.get("/api/runs/scripted/nodes/ghost")
    assert missing.status_code == 404 and "ghost" in missing.json()["detail"]
    assert "scripted model" in client.get("/api/runs/scripted/progress.svg").text
    # a write while the dashboard is open changes the version the page polls for
    before = client.get("/api/runs/real/state").json()["version"]
    store = RunStore.open(runs[1])
    store.record_llm_call(UsageRecord(CallContext("real", "initial", "0:initial", "task"), "m", 10, 1, 0, 0.5, False, 0.1))
    store.close()
    after = client.get("/api/runs/real/state").json()
    assert after["version"] != before
    assert after["total_cost"] == pytest.approx(RunView.load(runs[1]).total_cost())
    assert client.get("/static/app.js").status_code == 200


def test_polling_an_unchanged_run_does_not_reread_the_store(runs, monkeypatch):
    client = TestClient(create_app([str(runs[1])]))
    loads = []
    real_load = RunView.load
    monkeypatch.setattr(RunView, "load", classmethod(lambda cls, d: loads.append(d) or real_load(d)))
    first = client.get("/api/runs/real/state").json()
    assert client.get("/api/runs/real/state").json() == first and len(loads) == 1
    store = RunStore.open(runs[1])
    store.events.append("note", text="anything a run writes")
    store.close()
    client.get("/api/runs/real/state")
    assert len(loads) == 2


@pytest.fixture
def server(runs):
    with dashboard(runs) as url:
        yield url


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NEEDS_CHROMIUM)
def test_browser_click_node_shows_diff_and_outcomes(server, runs):
    view = RunView.load(runs[0])
    child = next(n for n in view.nodes if n.parent_id and n.commit_sha and n.tasks_evaluated)
    with dashboard_page(server) as page:
        open_node(page, child.node_id, timeout_ms=10000)
        assert "scripted model" in page.inner_text("#scripted-banner")
        assert page.inner_text("#node-title") == child.node_id
        assert f"improvement_{child.node_id}" in page.inner_text("#diff")
        rows = page.locator("#outcomes tr").count() - 1
        assert rows == child.tasks_evaluated
        # switch to the unscripted run: no banner
        page.select_option("#run-select", "real")
        page.wait_for_function("document.querySelector('#scripted-banner').hidden === true", timeout=10000)
