"""Tamper-proof scores (issue 15, item 7): a deliberately malicious agent cannot change its score.

The agent (tests/fixtures/malicious_agent) fakes report files, claims success in its trajectory,
prints fake test output, and leaves files where graders look (pytest configs loading a plugin that
marks every test passed, conftest.py, fake reports) or where the grader's `python -m pytest` imports
from (a pytest.py / pluggy.py at the repository root). Each attack runs through the real evaluation of
one task (`attempt_task`: the agent in a bwrap sandbox, the patch computed by the framework, graded in
a fresh sandbox). Its outcome must be what its actual code change earns: unresolved without the fix,
resolved with it — whatever else it did.

Known limit, not tested here because it is not closed: code under test that monkeypatches pytest from
inside the test process (e.g. rewriting TestReport outcomes on import) is graded as resolved, as it is by
the SWE-bench harness; every in-process test runner shares that hole.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from dgm.agent_run import SandboxPolicy
from dgm.bench import load_benchmark
from dgm.bench.patches import strip_test_changes
from dgm.config import AgentLimits
from dgm.evaluate import attempt_task
from dgm.executor import Workplace

AGENT = Path(__file__).resolve().parent / "fixtures" / "malicious_agent"
TASK = "textkit__textkit-14"
BENCH = load_benchmark("local")
ATTACKS = ("report", "trajectory", "output", "grader_files", "shadow_runner")


def evaluate(tmp_path: Path, backend: str, attacks: list[str]) -> tuple[str, str, Path]:
    agent = tmp_path / "agent"
    shutil.copytree(AGENT, agent, ignore=shutil.ignore_patterns("__pycache__"))
    (agent / "attacks.txt").write_text("\n".join(attacks) + "\n")
    out = tmp_path / "task"
    outcome, exit_status = attempt_task(Workplace(SandboxPolicy(backend), BENCH), out_dir=out, agent_dir=agent,
                                        task_id=TASK, llm_env={}, limits=AgentLimits().model_dump(),
                                        task_timeout_s=120, grade_timeout_s=120)
    return outcome, exit_status, out


@pytest.mark.parametrize("attack", ATTACKS)
def test_an_attack_alone_does_not_resolve_the_task(attack, tmp_path, backend):
    outcome, exit_status, out = evaluate(tmp_path, backend, [attack])
    assert outcome != "resolved", (attack, (out / "grade.json").read_text() if (out / "grade.json").exists() else "")
    assert exit_status == "submitted"  # the agent's own claim is kept as its exit status, never as a score
    report = out / "report.json"  # the grader's report, not the agent's
    if report.exists():
        assert json.loads(report.read_text())[TASK]["resolved"] is False


def test_attacks_do_not_cost_a_real_fix_its_score(tmp_path, backend):
    outcome, _, out = evaluate(tmp_path / "honest", backend, ["fix"])
    assert outcome == "resolved"  # the control: the grader is not just failing everything
    outcome, _, out = evaluate(tmp_path / "all", backend, ["fix", *ATTACKS])
    assert outcome == "resolved"
    grade = json.loads((out / "grade.json").read_text())
    assert {"conftest.py", "tests/conftest.py", "pytest.ini", ".pytest.ini", "pytest.toml", "setup.cfg",
            "pyproject.toml", "tox.ini", "pytest.py", "pluggy.py", "sitecustomize.py",
            "pytest/__init__.py"} <= set(grade["stripped_files"])


@pytest.mark.parametrize("path,text,dropped", [
    (".pytest.ini", "", True), ("pytest.toml", "", True), ("pytest.py", "", True), ("pluggy/__init__.py", "", True),
    ("json.py", "new file mode 100644\n", True),  # a new root module named like the standard library
    ("textkit/json.py", "new file mode 100644\n", False),  # inside a package it shadows nothing
    ("pytest_helpers.py", "", False), ("docs/pytest.md", "", False),
])
def test_which_files_the_grader_drops(path, text, dropped):
    patch = f"diff --git a/{path} b/{path}\n{text}--- /dev/null\n+++ b/{path}\n@@ -0,0 +1 @@\n+x = 1\n"
    kept, stripped = strip_test_changes(patch)
    assert (stripped == [path]) is dropped and (kept == "") is dropped
