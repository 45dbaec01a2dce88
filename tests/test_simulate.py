"""The $0 simulator (dgm/simulate.py): reproducible, driven by the loop's own decision code, and the
searches do what they should in a world where improvement is possible."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

import dgm.simulate as simulate_module
from dgm.simulate import compare, simulate

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("method", ["hgm", "score_child_prop", "best", "random"])
def test_same_seed_same_result(method):
    a, b = simulate(method, 3, 600), simulate(method, 3, 600)
    assert a == b
    assert simulate(method, 4, 600) != a


@pytest.mark.parametrize("method", ["hgm", "score_child_prop"])
def test_hgm_and_score_child_prop_reach_the_target(method):
    results = [simulate(method, seed, 3000, target=0.4) for seed in range(4)]
    reached = [r.evals_to_target for r in results if r.evals_to_target is not None]
    assert len(reached) >= 3, results
    assert all(r.best_rate > 0.2 for r in results)  # better than the seed agent's 0.2


def test_the_budget_is_spent_and_never_exceeded():
    for method in ("hgm", "score_child_prop"):
        sim = simulate_module.Simulation(method, 1, 500, 0.5, simulate_module.World(),
                                         simulate_module.AdmissionRule(), simulate_module.HGMParams())
        (sim.run_hgm if method == "hgm" else sim.run_dgm)()
        assert sim.evals == 500


def test_the_simulator_calls_the_loops_decision_code(monkeypatch):
    calls = {"weights": 0, "stage": 0, "admit": 0, "hgm": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(simulate_module, "parent_weights", counting("weights", simulate_module.parent_weights))
    monkeypatch.setattr(simulate_module, "stage_may_enter", counting("stage", simulate_module.stage_may_enter))
    monkeypatch.setattr(simulate_module, "admit", counting("admit", simulate_module.admit))
    monkeypatch.setattr(simulate_module, "next_action", counting("hgm", simulate_module.next_action))
    simulate("score_child_prop", 0, 400)
    simulate("hgm", 0, 100)
    assert all(calls.values()), calls


def test_paired_admission_refuses_some_children():
    rule = simulate_module.AdmissionRule("paired_test", alpha=0.05)
    sim = simulate_module.Simulation("score_child_prop", 0, 3000, 0.5, simulate_module.World(), rule,
                                     simulate_module.HGMParams())
    sim.run_dgm()
    evaluated = [a for a in sim.agents.values() if a.parent_id and a.compiled and a.outcomes]
    assert any(not a.admitted for a in evaluated) and any(a.admitted for a in evaluated)


def test_cli_table_json_and_figure(tmp_path):
    figure = tmp_path / "sim.png"
    cmd = [sys.executable, "-m", "dgm", "simulate", "--seeds", "3", "--budget", "300", "--figure", str(figure)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "hgm" in proc.stdout and "score_child_prop" in proc.stdout and figure.stat().st_size > 0
    proc = subprocess.run(cmd + ["--json"], cwd=REPO, capture_output=True, text=True, timeout=300)
    report = json.loads(proc.stdout)
    assert [s["method"] for s in report["summary"]] == ["score_child_prop", "hgm", "best", "random"]
    assert report["summary"] == compare(["score_child_prop", "hgm", "best", "random"], 3, 300)["summary"]
    bad = subprocess.run([sys.executable, "-m", "dgm", "simulate", "--method", "nope"], cwd=REPO,
                         capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "unknown 'nope'" in bad.stderr
