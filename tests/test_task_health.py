"""`dgm tasks health` (issue 15, item 5): gold resolves R of R and the unpatched base fails R of R, or the
task is flagged; a run drops flagged tasks with evaluation.exclude_unhealthy.

Real parts: a copy of the local suite graded in bwrap sandboxes, one of its tasks made invalid by an
eval script that never runs the tests. A flaky task cannot be made to flake on cue in a sealed sandbox
(no state survives between gradings), so the flaky verdict is checked on a stand-in benchmark whose
gradings alternate. Dropping flagged tasks from a run: tests/test_preregistration.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.bench.health import FLAKY, HEALTHY, INVALID, check_task, unhealthy_tasks
from dgm.bench.local import EvalRun, LocalBenchmark
from dgm.cli import main

SUITE = load_benchmark("local")
GOOD, BROKEN = "unitlib__unitlib-9", "textkit__textkit-14"


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """Two tasks of the local suite; BROKEN's eval script exits before it runs the tests."""
    root = tmp_path_factory.mktemp("bench")
    for task in (GOOD, BROKEN):
        shutil.copytree(SUITE.root / "tasks" / task, root / "tasks" / task)
        repo = SUITE.task(task).repo
        if not (root / "repos" / repo).exists():
            shutil.copytree(SUITE.root / "repos" / repo, root / "repos" / repo,
                            ignore=shutil.ignore_patterns("__pycache__"))
    eval_sh = root / "tasks" / BROKEN / "eval.sh"
    eval_sh.write_text(eval_sh.read_text().replace('echo ">>>>> Start Test Output"', "exit 5  # never runs the tests"))
    return root


def test_health_flags_the_invalid_task_in_json_table_and_report(suite, tmp_path, capsys, backend):
    out = tmp_path / "health.json"
    args = ["tasks", "health", f"local:{suite}", "--repeats", "2", "--backend", backend, "--out", str(out)]
    assert main(args + ["--json"]) == 1  # a flagged task fails the check
    data = json.loads(capsys.readouterr().out)
    by_task = {t["task_id"]: t for t in data["tasks"]}
    assert by_task[GOOD] | {"verdict": HEALTHY} == by_task[GOOD]
    assert (by_task[GOOD]["gold_resolved"], by_task[GOOD]["empty_failed"]) == (2, 2)
    broken = by_task[BROKEN]
    assert (broken["gold_resolved"], broken["empty_failed"], broken["verdict"]) == (0, 2, INVALID)
    assert data["unhealthy"] == [BROKEN] and unhealthy_tasks(out) == {BROKEN: INVALID}

    assert main(args[:-2] + ["--repeats", "1", "--out", str(tmp_path / "again.json")]) == 1  # the table
    table = capsys.readouterr().out
    assert "invalid" in table and "0/1" in table and "1/2 healthy" in table


class AlternatingBenchmark(LocalBenchmark):
    """Stand-in for a flaky harness: every other gold grading fails (the test itself is real)."""

    def __init__(self, root):
        super().__init__(root)
        self.gradings = 0

    def grade(self, instance_id, model_patch, **kwargs):
        from dgm.bench.base import GradeResult

        self.gradings += 1
        return GradeResult(instance_id, "resolved" if self.gradings % 2 else "unresolved", {})

    def run_eval(self, instance_id, patch, **kwargs):
        return EvalRun(True, "", "", 1, False, {t: "FAILED" for t in self.task(instance_id).fail_to_pass}, 0.1)


def test_a_task_whose_gradings_disagree_is_flaky(suite):
    bench = AlternatingBenchmark(suite)
    health = check_task(bench, GOOD, repeats=3, backend="bwrap", timeout=30)
    assert (health.gold_resolved, health.empty_failed, health.verdict) == (2, 3, FLAKY)
    assert check_task(bench, "no-such-task", repeats=1, backend="bwrap", timeout=30).verdict == INVALID


def test_a_broken_report_is_named(tmp_path):
    bad = tmp_path / "h.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match=f"evaluation.exclude_unhealthy: {bad} is not a health report"):
        unhealthy_tasks(bad)
