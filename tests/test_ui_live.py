"""The dashboard on a real-sized archive (hundreds of nodes: pan, zoom, fit) and on a live run (in-flight phases).

Stores are built through the real store API (SQLite + git); the pages run in headless Chromium against a real
server on loopback.
"""

import pytest
from fastapi.testclient import TestClient

from dgm.analysis.runview import RunView
from dgm.analysis.synthetic import build_synthetic_run
from dgm.store import Node, RunStore
from dgm.ui.app import create_app
from ui_helpers import CHROMIUM, NEEDS_CHROMIUM, dashboard, dashboard_page

TIMEOUT_MS = 20000
NODES_OUTSIDE = """() => { const box = document.querySelector('#tree').getBoundingClientRect();
  return [...document.querySelectorAll('#tree .node .mark')].filter((m) => { const r = m.getBoundingClientRect();
    const x = r.x + r.width / 2, y = r.y + r.height / 2;
    return x < box.left || x > box.right || y < box.top || y > box.bottom; }).length; }"""
ORIGIN = "(id) => { const m = document.querySelector(`#tree [data-node='${id}']`).getScreenCTM(); return [m.e, m.f]; }"


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    return build_synthetic_run(tmp_path_factory.mktemp("ui-big") / "big", children=300, k=4, seed=11)


@pytest.fixture
def live_run(tmp_path):
    run = build_synthetic_run(tmp_path / "live", children=6, seed=4)
    store = RunStore.open(run)
    store.set_run_status("running")
    store.start_generation(9, ["g1n0"])
    store.begin_attempt("9:0", 9, 0, "g1n0")
    store.set_phase("9:0", "evaluating", 3, 10)
    yield run, store
    store.close()


def test_state_carries_phases_and_redraws_the_tree_only_when_nodes_change(live_run):
    run, store = live_run
    client = TestClient(create_app([str(run)]))
    before = client.get("/api/runs/live/state").json()
    [attempt] = before["in_flight"]
    assert (attempt["node"], attempt["parent_id"], attempt["phase"], attempt["phase_done"], attempt["phase_total"]) == (
        "g009s0", "g1n0", "evaluating", 3, 10)
    view = RunView.load(run)
    assert len(before["cost_series"]) == len(view.nodes)
    assert before["cost_series"][-1] == pytest.approx(view.total_cost())
    store.count_phase_step("9:0")
    after = client.get("/api/runs/live/state").json()
    assert after["in_flight"][0]["phase_done"] == 4 and after["version"] != before["version"]
    assert after["tree_version"] == before["tree_version"]  # a phase change does not redraw the tree
    store.finish_attempt(Node(node_id="g9n0", parent_id="g1n0", generation=9, attempt_id="9:0", status="no_patch",
                              compiled=False, admitted=False))
    done = client.get("/api/runs/live/state").json()
    assert done["in_flight"] == [] and done["tree_version"] != before["tree_version"]


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NEEDS_CHROMIUM)
def test_browser_pan_zoom_and_fit_on_hundreds_of_nodes(big_run, tmp_path):
    view = RunView.load(big_run)
    assert len(view.nodes) == 301
    target = view.best().node_id
    with dashboard([big_run]) as url, dashboard_page(url) as page:
        page.set_viewport_size({"width": 1400, "height": 900})
        page.wait_for_selector(f'#tree [data-node="{target}"]', timeout=TIMEOUT_MS)
        page.click("#zoom-reset")  # fit to the final viewport size
        assert page.locator("#tree .node").count() == 301
        assert page.evaluate(NODES_OUTSIDE) == 0  # fitted: every node is inside the panel
        assert page.locator("#tree svg.far").count() == 1  # zoomed out: labels hidden

        node = page.locator(f'#tree [data-node="{target}"] .mark')
        box = node.bounding_box()
        cx, cy = (round(v) for v in page.evaluate(ORIGIN, target))  # the node's centre on screen
        page.mouse.move(cx, cy)
        scale = page.evaluate("zoom.k")
        for _ in range(3):
            page.mouse.wheel(0, -200)
        page.wait_for_function(f"zoom.k > {2 * scale}", timeout=TIMEOUT_MS)
        x, y = page.evaluate(ORIGIN, target)
        assert abs(x - cx) < 4 and abs(y - cy) < 4  # zoomed about the pointer: the node stays under it
        for _ in range(9):
            page.mouse.wheel(0, -200)
        page.wait_for_function("document.querySelector('#tree svg.far') === null", timeout=TIMEOUT_MS)
        assert node.bounding_box()["width"] > 8 * box["width"]
        assert page.evaluate(NODES_OUTSIDE) > 200  # most of the tree is now out of view
        x, y = page.evaluate(ORIGIN, target)

        page.mouse.down()
        page.mouse.move(cx + 120, cy + 80, steps=6)
        page.mouse.up()
        mx, my = page.evaluate(ORIGIN, target)
        assert abs(mx - x - 120) < 2 and abs(my - y - 80) < 2
        assert page.locator("#node-title").count() == 0  # a drag is not a click

        page.click(f'#tree [data-node="{target}"] .mark')
        page.wait_for_selector("#outcomes tr:nth-child(2)", timeout=TIMEOUT_MS)
        assert page.inner_text("#node-title") == target

        page.click("#zoom-reset")
        assert page.evaluate(NODES_OUTSIDE) == 0
        # the curves beside the tree: best so far over every child, and the cumulative cost
        best_path = page.get_attribute("#progress-chart path.best", "d")
        assert best_path.count("L") >= 2 and page.locator("#cost-chart path.cost").count() == 1
        page.screenshot(path=str(tmp_path / "big.png"))


@pytest.mark.skipif(not CHROMIUM.exists(), reason=NEEDS_CHROMIUM)
def test_browser_shows_in_flight_attempts_live(live_run):
    run, store = live_run
    with dashboard([run]) as url, dashboard_page(url) as page:
        page.wait_for_selector('#in-flight tr[data-attempt="9:0"]', timeout=TIMEOUT_MS)
        assert "evaluating 3/10" in page.inner_text("#in-flight")
        ring = page.locator('#tree [data-node="g1n0"] .busy')
        assert ring.get_attribute("visibility") == "visible"  # the parent of the attempt is marked
        page.evaluate("document.querySelector('#viewport').dataset.mark = 'first drawing'")

        store.count_phase_step("9:0")  # the run moves on; the open page follows without a reload
        page.wait_for_function("document.querySelector('#in-flight').innerText.includes('evaluating 4/10')",
                               timeout=TIMEOUT_MS)
        assert page.evaluate("document.querySelector('#viewport').dataset.mark") == "first drawing"

        store.finish_attempt(Node(node_id="g9n0", parent_id="g1n0", generation=9, attempt_id="9:0",
                                  status="no_patch", compiled=False, admitted=False))
        page.wait_for_selector('#tree [data-node="g9n0"]', timeout=TIMEOUT_MS)
        assert "nothing in flight" in page.inner_text("#in-flight")
        assert ring.get_attribute("visibility") == "hidden"
