"""The human approval gate (admission.approval: human): `dgm approve` from the CLI and the dashboard's API and
buttons, over real stores (SQLite + git) built through the store API; the dashboard in headless Chromium
against a real server on loopback. The run's own waiting is tested end to end in test_approval_run.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from dgm.analysis.synthetic import build_synthetic_run
from dgm.approval import waiting_reason
from dgm.store import Node, RunStore, StageScore
from dgm.store.records import PENDING_APPROVAL
from dgm.ui.app import create_app
from ui_helpers import dashboard, dashboard_page

REPO = Path(__file__).resolve().parents[1]
TOKEN = "test-token-0123456789"


def _open_gated_node(page, node_id: str) -> None:
    """Click a node in the tree and wait for its approval line (these children have no task rows)."""
    page.wait_for_selector(f'#tree [data-node="{node_id}"]', timeout=15000)
    page.click(f'#tree [data-node="{node_id}"]')
    page.wait_for_selector("#approval-state", timeout=15000)


def _dgm(*args):
    return subprocess.run([sys.executable, "-m", "dgm", *args], cwd=REPO, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def _publish_pending(store: RunStore, node_id: str, generation: int, parent: str = "initial", score: float = 0.6):
    """A child as the loop publishes it when the gate holds it: admitted, waiting for a decision."""
    resolved = round(score * 10)
    store.start_generation(generation, [parent])
    store.begin_attempt(f"{generation}:0", generation, 0, parent)
    store.finish_attempt(Node(node_id=node_id, parent_id=parent, generation=generation, attempt_id=f"{generation}:0",
                              status="evaluated", compiled=True, admitted=True, score=score, tasks_evaluated=10,
                              stages=[StageScore(1, resolved, 10)], approval=PENDING_APPROVAL))
    store.finish_generation(generation)


@pytest.fixture
def gated_run(tmp_path):
    run = build_synthetic_run(tmp_path / "gated", children=4, seed=3, run_id="gated")
    store = RunStore.open(run)
    _publish_pending(store, "g8s0", 8, score=0.9)
    _publish_pending(store, "g9s0", 9)
    yield run, store
    store.close()


def test_pending_children_are_no_parents_until_approved_and_the_gate_says_when_to_wait(gated_run):
    run, store = gated_run
    archive = {n.node_id for n in store.archive()}
    assert "g8s0" not in archive and "g9s0" not in archive and "initial" in archive
    assert {n.node_id for n in store.pending_approval()} == {"g8s0", "g9s0"}
    assert waiting_reason(store, max_pending=None) is None  # other parents are eligible: never block
    assert "2 children wait" in waiting_reason(store, max_pending=2)
    assert waiting_reason(store, max_pending=3) is None


def test_cli_lists_approves_rejects_and_logs_every_decision(gated_run):
    run, store = gated_run
    listed = _dgm("approve", str(run), "--json")
    assert listed.returncode == 0, listed.stderr
    assert [p["node"] for p in json.loads(listed.stdout)["pending"]] == ["g8s0", "g9s0"]
    approved = _dgm("approve", str(run), "g8s0", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["decision"] == "approved"
    rejected = _dgm("approve", str(run), "g9s0", "--reject", "--reason", "deletes its own tests")
    assert rejected.returncode == 0 and "rejected (deletes its own tests)" in rejected.stdout
    again = _dgm("approve", str(run), "g9s0")
    assert again.returncode == 2 and "not pending approval (rejected)" in again.stderr
    ghost = _dgm("approve", str(run), "ghost")
    assert ghost.returncode == 2 and "ghost" in ghost.stderr
    archive = {n.node_id for n in store.archive()}
    assert "g8s0" in archive and "g9s0" not in archive
    decisions = [e for e in store.events.read() if e["event"] == "approval"]
    assert [(e["node"], e["decision"], e["reason"]) for e in decisions] == [
        ("g8s0", "approved", None), ("g9s0", "rejected", "deletes its own tests")]
    assert all(e["by"].startswith("cli:") for e in decisions)
    tree = _dgm("tree", str(run))
    assert "rejected (deletes its own tests)" in tree.stdout and "approved" in tree.stdout
    status = json.loads(_dgm("status", str(run), "--json").stdout)
    assert status["pending_approval"] == []
    assert {n["id"]: n["approval"] for n in status["nodes"]}["g9s0"] == "rejected"


def test_dashboard_writes_need_the_token(gated_run):
    run, store = gated_run
    client = TestClient(create_app([str(run)], write_token=TOKEN))
    url = "/api/runs/gated/nodes/g9s0/approval"
    assert client.post(url, json={"approve": True}).status_code == 403
    assert client.post(url, json={"approve": True}, headers={"X-DGM-Token": "wrong"}).status_code == 403
    read_only = TestClient(create_app([str(run)]))  # no token at all: every write is refused
    assert read_only.post(url, json={"approve": True}, headers={"X-DGM-Token": TOKEN}).status_code == 403
    assert store.node("g9s0").approval == PENDING_APPROVAL
    ok = client.post(url, json={"approve": False, "reason": "too risky"}, headers={"X-DGM-Token": TOKEN})
    assert ok.status_code == 200 and ok.json()["approval"] == "rejected"
    again = client.post(url, json={"approve": True}, headers={"X-DGM-Token": TOKEN})
    assert again.status_code == 409 and "not pending" in again.json()["detail"]
    state = client.get("/api/runs/gated/state").json()
    assert {n["id"]: n["approval"] for n in state["nodes"]}["g9s0"] == "rejected"
    [event] = [e for e in store.events.read() if e["event"] == "approval"]
    assert event["by"].startswith("dashboard:") and event["reason"] == "too risky"


def test_browser_approve_button(gated_run):
    run, store = gated_run
    with dashboard([run], write_token=TOKEN) as url:
        with dashboard_page(url, f"?token={TOKEN}") as page:
            _open_gated_node(page, "g8s0")
            assert "pending approval" in page.inner_text("#approval-state")
            assert "token" not in page.url  # taken from the address bar, kept for the tab only
            page.fill("#approval-reason", "looks sound")
            page.click("[data-decide=approve]")
            page.wait_for_function("document.querySelector('#approval-state')?.innerText.startsWith('approved')",
                                   timeout=15000)
    assert store.node("g8s0").approval == "approved" and store.node("g8s0").approval_reason == "looks sound"
    assert "g8s0" in {n.node_id for n in store.archive()}


def test_browser_without_the_token_shows_no_buttons(gated_run):
    run, store = gated_run
    with dashboard([run], write_token=TOKEN) as url:
        with dashboard_page(url) as page:
            _open_gated_node(page, "g9s0")
            assert "dgm approve" in page.inner_text("#approval-state")
            assert page.locator("[data-decide]").count() == 0
