"""The pre-registered plan and the sealed held-out split (issue 15, item 1).

Real parts: the local benchmark, a real run store (SQLite + git) made by `new_run`, `dgm report` on it.
Nothing here runs a sandbox: a plan is written before the first task is evaluated.
"""

from __future__ import annotations

import hashlib
import json

import pytest

from dgm.analysis.report import render
from dgm.analysis.runview import RunView
from dgm.bench import load_benchmark
from dgm.bench.health import TaskHealth, write_report
from dgm.config import Config, ConfigError
from dgm.evaluate import resolve_stages
from dgm.preregistration import PLAN_FILE, check_plan
from dgm.run import check_before_running, new_run
from dgm.store import RunStore

BENCH = load_benchmark("local")
SUBSETS = BENCH.subsets()


def config(tmp_path, **evaluation) -> Config:
    return Config.model_validate({"run": {"seed": 7, "archive_dir": str(tmp_path / "archive"), "name": "plan"},
                                  "evaluation": {"stages": [{"tasks": "small"}, {"tasks": "medium", "threshold": 0.4}],
                                                 **evaluation}})


def test_plan_is_written_at_run_start_and_its_hash_sealed_in_the_store(tmp_path):
    store, run_id = new_run(config(tmp_path))
    plan_text = (store.run_dir / PLAN_FILE).read_text()
    plan = json.loads(plan_text)
    assert store.plan_hash() == hashlib.sha256(plan_text.encode()).hexdigest()
    assert [s["tasks"] for s in plan["splits"]["search_stages"]] == [SUBSETS["small"], SUBSETS["medium"]]
    assert plan["splits"]["heldout"] == SUBSETS["heldout"]
    assert plan["config"]["run"]["seed"] == 7 and plan["run_id"] == run_id
    assert any("McNemar" in t for t in plan["tests"]) and plan["metrics"]
    assert plan["scripted_model"] is True
    assert list(store.events.read())[-1]["event"] == "plan_sealed"
    assert check_plan(store).status == "matches"


def test_report_says_whether_the_plan_still_matches(tmp_path):
    store, _ = new_run(config(tmp_path))
    assert "plan.json matches its sealed hash" in render([RunView.load(store.run_dir)])
    plan = json.loads((store.run_dir / PLAN_FILE).read_text())
    plan["splits"]["heldout"] = plan["splits"]["heldout"][:1]  # a quiet edit after the fact
    (store.run_dir / PLAN_FILE).write_text(json.dumps(plan, indent=2) + "\n")
    assert "plan.json was MODIFIED after the run started" in render([RunView.load(store.run_dir)])
    (store.run_dir / PLAN_FILE).unlink()
    assert "plan.json is MISSING" in render([RunView.load(store.run_dir)])


def test_a_sealed_plan_is_never_replaced(tmp_path):
    store, _ = new_run(config(tmp_path))
    with pytest.raises(Exception, match="already sealed"):
        store.set_plan_hash("0" * 64)


@pytest.mark.parametrize("stages,key", [
    ([{"tasks": "small"}, {"tasks": "heldout"}], "evaluation.stages.1.tasks"),
    ([{"tasks": [SUBSETS["small"][0], SUBSETS["heldout"][2]]}], "evaluation.stages.0.tasks"),
])
def test_a_search_stage_naming_a_held_out_task_is_a_config_error(tmp_path, stages, key):
    cfg = config(tmp_path, stages=stages)
    with pytest.raises(ConfigError, match=key) as err:
        check_before_running(cfg)
    assert "held-out" in str(err.value)
    with pytest.raises(ConfigError, match=key):
        new_run(cfg)
    assert not (tmp_path / "archive").exists()  # refused before a run dir exists


def test_heldout_can_be_chosen_or_switched_off(tmp_path):
    chosen = SUBSETS["heldout"][:2]
    store, _ = new_run(config(tmp_path, heldout=chosen))
    assert json.loads((store.run_dir / PLAN_FILE).read_text())["splits"]["heldout"] == chosen
    cfg = config(tmp_path, heldout=None, stages=[{"tasks": "heldout"}])
    check_before_running(cfg)  # no held-out split: nothing is sealed
    with pytest.raises(ConfigError, match="evaluation.heldout: benchmark 'local' has no subset 'sealed'"):
        check_before_running(config(tmp_path, heldout="sealed"))


def test_unhealthy_tasks_are_dropped_and_recorded_in_the_plan(tmp_path):
    flaky, invalid = SUBSETS["small"][1], SUBSETS["heldout"][0]
    report = tmp_path / "health.json"
    write_report(report, "local", "bwrap", [TaskHealth(flaky, 3, gold_resolved=2, empty_failed=3),
                                            TaskHealth(invalid, 3, gold_resolved=0, empty_failed=3),
                                            TaskHealth(SUBSETS["small"][0], 3, 3, 3)])
    cfg = config(tmp_path, exclude_unhealthy=str(report))
    stages = resolve_stages(BENCH, cfg.evaluation)
    assert flaky not in stages[0] and len(stages[0]) == len(SUBSETS["small"]) - 1
    store, _ = new_run(cfg)
    plan = json.loads((store.run_dir / PLAN_FILE).read_text())
    assert plan["excluded_unhealthy"] == {"report": str(report), "tasks": {flaky: "flaky", invalid: "invalid"}}
    assert invalid not in plan["splits"]["heldout"]
    assert flaky not in plan["splits"]["search_stages"][0]["tasks"]


def test_exclude_unhealthy_true_reads_the_default_report_and_a_missing_one_is_named(tmp_path):
    cfg = config(tmp_path, exclude_unhealthy=True)
    assert cfg.evaluation.exclude_unhealthy == tmp_path / "archive" / "health" / "local.json"
    with pytest.raises(ConfigError, match="evaluation.exclude_unhealthy: no health report at"):
        check_before_running(cfg)


def test_a_run_from_before_plans_reports_no_plan(tmp_path):
    store, _ = new_run(config(tmp_path))
    (store.run_dir / PLAN_FILE).unlink()
    with store.db:
        store.db.execute("UPDATE runs SET plan_sha256=NULL")
    assert check_plan(RunStore.open(store.run_dir, read_only=True)).status == "unsealed"
