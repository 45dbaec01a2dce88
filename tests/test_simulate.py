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
    calls = {"weights": 0, "stage": 0, "adaptive": 0, "admit": 0, "hgm": 0}

    def counting(name, real):
        def wrapper(*args, **kwargs):
            calls[name] += 1
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(simulate_module, "parent_weights", counting("weights", simulate_module.parent_weights))
    monkeypatch.setattr(simulate_module, "stage_may_enter", counting("stage", simulate_module.stage_may_enter))
    monkeypatch.setattr(simulate_module, "stage_decision", counting("adaptive", simulate_module.stage_decision))
    monkeypatch.setattr(simulate_module, "admit", counting("admit", simulate_module.admit))
    monkeypatch.setattr(simulate_module, "next_action", counting("hgm", simulate_module.next_action))
    simulate("score_child_prop", 0, 400, adaptive=True)
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


def _failing_child(rule, parent_solved: int = 10):
    """A simulation whose next child solves nothing; its parent (the initial agent) solved the first
    `parent_solved` tasks of stage 1 and every later task."""
    sim = simulate_module.Simulation("score_child_prop", 0, 3000, 0.5, simulate_module.World(), rule,
                                     simulate_module.HGMParams(), adaptive=True)
    sim.agents["initial"].outcomes = {t: i < parent_solved or i >= 10 for i, t in enumerate(sim.pool)}
    child = sim.spawn(sim.agents["initial"])
    child.rate = 1e-9
    return sim, child


def test_adaptive_evaluation_stops_stage_one_once_stage_two_is_out_of_reach():
    sim, child = _failing_child(simulate_module.AdmissionRule())
    sim.staged_evaluation(child)
    # Stage 2 needs 4/10: after 7 failures even 3 more solved tasks give 3/10. The 3 left count as unresolved.
    assert sim.evals == 7 and len(child.outcomes) == 7 and child.ungraded == 3 and child.score == 0.0
    sim.adaptive = False
    full = sim.spawn(sim.agents["initial"])
    full.rate = 1e-9
    sim.staged_evaluation(full)
    assert len(full.outcomes) == 10 and full.ungraded == 0


def test_adaptive_evaluation_waits_for_the_paired_verdict():
    """The parent solved 7 of stage 1's 10 tasks. After the child's 7 failures it could still end 7 worse
    and 3 better (one-sided McNemar p = 0.17: admitted) or 7 worse and none better (p = 0.008: refused);
    after 9 failures both ends refuse it (p <= 0.035)."""
    sim, child = _failing_child(simulate_module.AdmissionRule("paired_test", alpha=0.05), parent_solved=7)
    sim.staged_evaluation(child)
    assert len(child.outcomes) == 9 and child.ungraded == 1
    sim.judge(child)
    assert not child.admitted


def test_an_adaptive_run_stops_some_stages_and_spends_exactly_its_budget():
    sim = simulate_module.Simulation("score_child_prop", 2, 1500, 0.5, simulate_module.World(),
                                     simulate_module.AdmissionRule(), simulate_module.HGMParams(), adaptive=True)
    sim.run_dgm()
    assert sim.evals == 1500
    assert any(a.ungraded for a in sim.agents.values())
    assert simulate("score_child_prop", 2, 1500, adaptive=True) == sim.result()
