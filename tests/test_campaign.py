"""`dgm campaign` and `dgm baseline` end to end, for real: three seeds of a small DGM run in parallel
(bwrap sandboxes, the real gateway, the scripted test-double model, real git and SQLite), each
confirmed on sealed held-out tasks by `dgm confirm`; then the equal-budget baseline of one of them,
and `dgm report` / `dgm plot compare` showing it beside its run."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dgm.analysis.runview import RunView
from dgm.cli import main

REPO = Path(__file__).resolve().parents[1]
SEARCH = ["textkit__textkit-14", "unitlib__unitlib-34"]  # the seed resolves the first, not the second
HELDOUT = ["textkit__textkit-38", "unitlib__unitlib-28"]
SMALL = ["--set", "loop.generations=1", "--set", f"evaluation.stages=[{{tasks: {json.dumps(SEARCH)}}}]",
         "--set", f"evaluation.heldout={json.dumps(HELDOUT)}"]
pytestmark = pytest.mark.slow


def _dgm(*args):
    return subprocess.run([sys.executable, "-m", "dgm", *args], cwd=REPO, capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def campaign(tmp_path_factory):
    out = tmp_path_factory.mktemp("campaign") / "c"
    proc = _dgm("campaign", "experiments/quickstart.yaml", "--seeds", "3", "--parallel", "3", "--out", str(out),
                "--json", *SMALL)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out, json.loads(proc.stdout), proc.stderr


def test_three_seeds_run_as_independent_runs(campaign):
    out, summary, log = campaign
    record = json.loads((out / "campaign.json").read_text())
    assert record["seeds"] == [0, 1, 2] and record["parallel"] == 3
    for seed in record["seeds"]:
        run_dir = out / record["runs"][str(seed)]
        config = yaml.safe_load((run_dir / "config.yaml").read_text())
        assert config["run"]["seed"] == seed and config["run"]["max_concurrency"] == 1  # 4 slots // 3 runs
        assert (run_dir / "llm_cache").is_dir() and (run_dir / "plan.json").is_file()  # its own cache and plan
    assert "SCRIPTED MODEL" in log and "seed 2: done" in log


def test_best_scores_are_confirmed_on_the_sealed_heldout_split(campaign):
    out, summary, _ = campaign
    assert summary["scripted_model"] is True and "test double" in summary["note"]
    assert summary["runs_scored"] == 3 and summary["score_source"] == ["confirmed on heldout (sealed, 2 tasks x 1)"]
    for seed in summary["seeds"]:
        confirm = json.loads((Path(seed["confirm_dir"]) / "report.json").read_text())
        row = next(r for r in confirm["rows"] if r["node_id"] == seed["best_node"])
        assert seed["best_score"] == row["confirmed_score"] and seed["p_value"] == row["p_value"]
        assert confirm["tasks"] == HELDOUT and len(seed["best_outcomes"]) == 2
        assert seed["beats_initial"] == (seed["best_score"] > seed["initial_score"])
    best = [s["best_score"] for s in summary["seeds"]]
    assert summary["best_score"]["n"] == 3 and summary["best_score"]["mean"] == pytest.approx(sum(best) / 3)
    share = summary["beats_initial"]
    assert share["seeds"] == 3 and share["probability"] == pytest.approx(share["wins"] / 3)
    assert summary["variance"]["seeds"] == 3 and summary["variance"]["tasks"] == 2


def test_figure_shows_every_seed_and_says_scripted(campaign):
    out, summary, _ = campaign
    png, svg = (Path(p) for p in summary["figures"])
    assert png.stat().st_size > 10_000
    text = svg.read_text()
    assert "test double" in text and all(f"seed {s}" in text for s in (0, 1, 2)) and "mean over seeds" in text


def test_report_and_resume_read_the_campaign_directory(campaign):
    out, summary, _ = campaign
    report = _dgm("campaign", "--report", str(out))
    assert report.returncode == 0, report.stderr
    assert "scripted model" in report.stdout and "P(best beats the initial agent)" in report.stdout
    assert "seed to seed" in report.stdout and "task sampling" in report.stdout
    resumed = _dgm("campaign", "--resume", str(out), "--json")  # everything is finished: nothing runs again
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stderr.count("finished and scored") == 3 and "running ->" not in resumed.stderr
    assert json.loads(resumed.stdout)["best_score"] == summary["best_score"]


@pytest.fixture(scope="module")
def baseline(campaign):
    out, summary, _ = campaign
    run_dir = Path(summary["seeds"][0]["confirm_dir"]).parents[1]
    proc = _dgm("baseline", "experiments/quickstart.yaml", "--budget-from", str(run_dir), "--json")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return run_dir, json.loads(proc.stdout)


def test_baseline_spends_the_runs_call_budget_on_the_initial_agent(baseline):
    run_dir, b = baseline
    calls = sum(1 for _ in _calls(run_dir))
    assert b["scripted_model"] is True and "test double" in b["note"]
    assert b["budget"]["unit"] == "calls" and b["budget"]["amount"] == calls  # the scripted model costs $0
    assert b["repeats"] >= 2 and b["budget"]["spent"] <= calls and b["tasks"] == len(SEARCH)
    per_repeat = b["budget"]["spent"] / b["repeats"]
    assert b["budget"]["spent"] + per_repeat > calls  # it stopped only when one more repeat would not fit
    assert b["pass_at_k"]["1"] == pytest.approx(b["mean_pass_at_1"]) and b["best_of_n"] == max(b["repeat_scores"])
    assert b["pass_hat_k"][str(b["repeats"])] <= b["pass_at_k"]["1"] <= b["pass_at_k"][str(b["repeats"])]
    assert b["source"]["initial_score"] is not None and b["variance"]["repeats"] == b["repeats"]
    seed = next(s for s in campaign_summary(run_dir)["seeds"] if s["seed"] == 0)
    confirmed = b["source"]["confirmed"]  # the campaign confirmed this run: shown beside the baseline
    assert confirmed["best_node"] == seed["best_node"] and confirmed["best_score"] == seed["best_score"]
    assert confirmed["initial_score"] == seed["initial_score"]


def test_a_baseline_killed_mid_repeat_resumes_to_the_same_repeats_paying_nothing_twice(baseline, tmp_path):
    run_dir, finished = baseline
    out = tmp_path / "b"
    killed = subprocess.run([sys.executable, "-m", "dgm", "baseline", "experiments/quickstart.yaml", "--budget-from",
                             str(run_dir), "--out", str(out)], cwd=REPO, capture_output=True, text=True, timeout=1500,
                            env={**os.environ, "DGM_TEST_KILL_AT": "publish:1:0"})  # repeat 1 graded, not published
    assert killed.returncode == -9, killed.stdout + killed.stderr
    resumed = _dgm("baseline", "--budget-from", str(run_dir), "--out", str(out), "--resume", "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    b = json.loads(resumed.stdout)
    assert b["repeat_scores"] == finished["repeat_scores"] and b["budget"] == finished["budget"]
    assert sum(1 for _ in _calls(out, "cache_hit = 1")) >= 1  # repeat 1's answers came from the record
    again = _dgm("baseline", "--budget-from", str(run_dir), "--out", str(out), "--resume")
    assert again.returncode == 0 and "finished already" in again.stdout


def campaign_summary(run_dir):
    return {"seeds": [json.loads(p.read_text()) for p in (run_dir.parents[1] / "scores").glob("*.json")]}


def _calls(run_dir, where="cache_hit = 0"):
    import sqlite3

    db = sqlite3.connect(run_dir / "run.db")
    yield from db.execute(f"SELECT id FROM llm_calls WHERE {where}")


def test_report_and_plot_compare_show_the_baseline_beside_its_run(baseline, tmp_path):
    run_dir, b = baseline
    report = _dgm("report", str(run_dir))
    assert report.returncode == 0, report.stderr
    assert b["baseline_run"] in report.stdout and "best_of_n" in report.stdout and "pass^2" in report.stdout
    assert "task_sampling_se" in report.stdout and "run_to_run_sd" in report.stdout
    plot = _dgm("plot", "compare", str(run_dir), "--labels", "DGM", "--out", str(tmp_path))
    assert plot.returncode == 0, plot.stderr
    svg = (tmp_path / "compare.svg").read_text()
    assert f"best-of-{b['repeats']} (equal budget)" in svg and "DGM" in svg and "test double" in svg


def test_bad_campaign_and_baseline_arguments_are_one_line_errors(tmp_path, capsys, campaign, baseline):
    out, summary, _ = campaign
    assert main(["campaign", "experiments/quickstart.yaml", "--seeds", "0", "--out", str(tmp_path / "x")]) == 2
    assert "--seeds must be >= 1" in capsys.readouterr().err
    run_dir = Path(summary["seeds"][0]["confirm_dir"]).parents[1]
    assert main(["baseline", "experiments/quickstart.yaml", "--budget-from", str(run_dir),
                 "--set", "evaluation.benchmark=polyglot:/nowhere"]) == 2
    assert "evaluation.benchmark" in capsys.readouterr().err
    assert main(["baseline", "experiments/quickstart.yaml", "--budget-from", str(run_dir)]) == 2
    assert "holds a baseline already" in capsys.readouterr().err  # the fixture's: never overwritten
    assert main(["baseline", "--budget-from", str(run_dir), "--out", str(tmp_path / "none"), "--resume"]) == 2
    assert "holds no baseline to resume" in capsys.readouterr().err
    assert main(["campaign", "--report", str(tmp_path)]) == 2
    assert "not a campaign directory" in capsys.readouterr().err


def test_resume_finishes_seeds_killed_mid_run(tmp_path):
    out = tmp_path / "c"
    killed = subprocess.run([sys.executable, "-m", "dgm", "campaign", "experiments/quickstart.yaml", "--seeds", "2",
                             "--parallel", "2", "--out", str(out), *SMALL], cwd=REPO, capture_output=True, text=True,
                            timeout=1500, env={**os.environ, "DGM_TEST_KILL_AT": "publish:1:0"})
    assert killed.returncode == 1 and killed.stdout.count("exit -9") == 2, killed.stdout + killed.stderr
    before = json.loads(_dgm("campaign", "--report", str(out), "--json").stdout)
    assert before["runs_scored"] == 0 and [s["status"] for s in before["seeds"]] == ["running", "running"]
    resumed = _dgm("campaign", "--resume", str(out), "--json")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["runs_scored"] == 2 and all(s["children"] == 2 for s in summary["seeds"])
    for seed in (0, 1):  # the killed attempt re-ran under its key: no node twice
        view = RunView.load(out / "runs" / f"quickstart-s{seed}")
        assert sorted(n.node_id for n in view.nodes) == ["g001s0", "g001s1", "initial"]
