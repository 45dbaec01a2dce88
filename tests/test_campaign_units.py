"""Without running agents: pass@k, pass^k and the variance split against values worked out by hand; the
baseline's budget rule; a campaign's plan (seeds, parallel runs, sandbox slots) and its summary."""

import json
import math

import pytest

from dgm.analysis.sampling import (bootstrap_summary, k_values, mean_over_tasks, pass_at_k, pass_hat_k,
                                   variance_split)
from dgm.baseline import Budget, another_repeat_fits
from dgm.campaign import Campaign, plan_campaign, summarize
from dgm.store import StoreError


def test_pass_at_k_is_the_codex_papers_unbiased_estimator():
    # n = 5 samples, c = 2 resolved: pass@1 = c/n; pass@2 = 1 - C(3,2)/C(5,2) = 1 - 3/10
    assert pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert pass_at_k(5, 2, 4) == 1.0  # only 3 failures: any 4 samples hold a success
    assert pass_at_k(5, 0, 5) == 0.0
    # against the product form the paper's code uses: 1 - prod(1 - k / arange(n - c + 1, n + 1))
    n, c, k = 20, 3, 7
    assert pass_at_k(n, c, k) == pytest.approx(1 - math.prod(1 - k / i for i in range(n - c + 1, n + 1)))


def test_pass_hat_k_is_tau_benchs_all_k_succeed():
    assert pass_hat_k(5, 2, 1) == pytest.approx(0.4)
    assert pass_hat_k(5, 2, 2) == pytest.approx(1 / 10)  # C(2,2)/C(5,2)
    assert pass_hat_k(5, 2, 3) == 0.0
    assert pass_hat_k(4, 4, 4) == 1.0


def test_averages_over_tasks_and_rejects_impossible_counts():
    counts = {"a": (4, 4), "b": (4, 0), "c": (4, 2)}
    assert mean_over_tasks(counts, 1, pass_at_k) == pytest.approx((1 + 0 + 0.5) / 3)
    assert mean_over_tasks(counts, 2, pass_at_k) == pytest.approx((1 + 0 + (1 - 1 / 6)) / 3)
    assert mean_over_tasks(counts, 2, pass_hat_k) == pytest.approx((1 + 0 + 1 / 6) / 3)
    with pytest.raises(ValueError, match="k <= n"):
        pass_at_k(3, 1, 4)
    with pytest.raises(ValueError, match="c <= n"):
        pass_hat_k(3, 5, 1)


def test_k_values_shown_for_n_repeats():
    assert k_values(1) == [1]
    assert k_values(3) == [1, 2, 3]
    assert k_values(12) == [1, 2, 5, 10, 12]


def test_variance_split_separates_task_sampling_from_run_to_run():
    # two repeats over two tasks: task A always resolved, task B once
    split = variance_split([[True, False], [True, True]])
    assert split.mean_score == pytest.approx(0.75)
    assert split.run_sd == pytest.approx(math.sqrt(0.125))  # stdev of repeat scores 0.5 and 1.0
    assert split.run_se == pytest.approx(0.25)
    # bootstrap of the mean of per-task means {1.0, 0.5}: means 1, .75, .5 with prob 1/4, 1/2, 1/4
    assert split.task_se == pytest.approx(math.sqrt(0.03125), abs=0.01)
    # identical repeats: no run-to-run spread at all, only the tasks differ
    same = variance_split([[True, False, False]] * 4)
    assert same.run_sd == 0.0 and same.task_se > 0.1
    assert variance_split([[True, False]]).run_sd is None  # one repeat says nothing about run to run
    with pytest.raises(ValueError, match="same tasks"):
        variance_split([[True], [True, False]])


def test_bootstrap_summary_of_a_constant_has_no_spread():
    assert bootstrap_summary([0.5, 0.5, 0.5]) == (0.0, 0.5, 0.5)


def test_baseline_stops_before_a_repeat_that_would_overrun_the_budget():
    calls = Budget("calls", 68)
    assert another_repeat_fits(calls, 0, 0)  # the first repeat always runs
    assert another_repeat_fits(calls, 34, 2)  # 34 + 17 <= 68
    assert another_repeat_fits(calls, 51, 3)  # 51 + 17 = 68: exactly the budget
    assert not another_repeat_fits(calls, 54, 3)  # 54 + 18 > 68
    assert Budget("usd", 12.5).text() == "$12.50" and calls.text(3) == "3 LLM calls"


def test_campaign_plan_shares_the_sandbox_slots_among_parallel_runs(tmp_path):
    campaign, config = plan_campaign("experiments/quickstart.yaml", ["run.seed=7", "run.max_concurrency=6"], 4,
                                     out=tmp_path / "c")
    assert campaign.seeds == [7, 8, 9, 10]
    assert campaign.parallel == 3 and campaign.run_concurrency == 2  # 6 slots // 2 workers; 6 // 3 each
    assert campaign.scripted and campaign.runs["8"] == "runs/quickstart-s8"
    again = Campaign.load(tmp_path / "c")
    assert again.seeds == campaign.seeds and again.run_dir(9) == tmp_path.resolve() / "c" / "runs" / "quickstart-s9"
    assert (tmp_path / "c" / "config.yaml").is_file()
    with pytest.raises(StoreError, match="already holds a campaign"):
        plan_campaign("experiments/quickstart.yaml", [], 2, out=tmp_path / "c")
    assert plan_campaign("experiments/quickstart.yaml", [], 2, out=tmp_path / "d", parallel=5)[0].parallel == 2


def test_campaign_summary_from_per_seed_scores(tmp_path):
    campaign, _ = plan_campaign("experiments/quickstart.yaml", ["run.seed=0"], 3, out=tmp_path / "c")
    scored = {0: (0.5, 0.25, [1, 0, 1, 0], 0.01), 1: (0.25, 0.25, [1, 0, 0, 0], None)}
    for seed, (best, initial, outcomes, p) in scored.items():
        campaign.score_path(seed).write_text(json.dumps({
            "seed": seed, "run_id": f"quickstart-s{seed}", "source": "confirmed on heldout", "best_node": "g001s0",
            "best_score": best, "initial_score": initial, "beats_initial": best > initial, "p_value": p,
            "best_outcomes": outcomes, "children": 2, "progress": [[0, initial], [1, best]]}))
    s = summarize(campaign)  # seed 2 never ran: listed, not counted
    assert s["runs_scored"] == 2 and s["seeds"][2]["missing"] and s["seeds"][2]["status"] == "not started"
    assert s["best_score"]["mean"] == pytest.approx(0.375) and s["best_score"]["sd"] == pytest.approx(0.1767767)
    assert s["beats_initial"]["wins"] == 1 and s["beats_initial"]["probability"] == 0.5
    assert s["significant_wins"] == 1
    assert s["variance"]["seed_to_seed_sd"] == pytest.approx(0.1767767) and s["variance"]["tasks"] == 4


def test_report_of_several_runs_sets_run_to_run_beside_task_sampling(tmp_path):
    from dgm.analysis.report import render
    from dgm.analysis.runview import RunView
    from dgm.analysis.synthetic import build_synthetic_run

    views = [RunView.load(build_synthetic_run(tmp_path / f"s{seed}", children=4, seed=seed)) for seed in (1, 2)]
    text = render(views)
    best = [v.best().score for v in views]
    spread = abs(best[0] - best[1]) / math.sqrt(2)  # the SD of two values
    assert f"Across these 2 runs: run-to-run SD of the best (search) score {spread:.3f}" in text
    assert "task_sampling_se" in text and "needs dgm campaign or dgm baseline" in text


def test_a_run_without_heldout_split_is_scored_by_search_and_says_so(tmp_path):
    from dgm.analysis.runview import RunView
    from dgm.analysis.synthetic import build_synthetic_run
    from dgm.campaign import score_run

    run_dir = build_synthetic_run(tmp_path / "syn", children=4, seed=1)
    (run_dir / "plan.json").write_text(json.dumps({"splits": {"search_stages": [], "heldout": []}}))
    lines = []
    score = score_run(run_dir, log=lines.append)
    assert score["source"] == "search (not confirmed)" and "no held-out split" in lines[0]
    assert score["best_score"] == RunView.load(run_dir).best().score
