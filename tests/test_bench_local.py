"""Grading and workspaces of the local task suite (real git, real sandbox: bwrap when it works here)."""

import json
import subprocess

import pytest

from dgm.bench import load_benchmark, parse_bench_spec
from dgm.bench.gitutil import diff, git
from dgm.bench.local import LocalBenchmark, TaskError
from dgm.bench.patches import strip_test_changes

TASK = "structs__structs-16"  # merge_intervals([]) raises; tiny repo, fast tests


@pytest.fixture(scope="module")
def bench():
    return load_benchmark("local")


def _patch_from_edit(bench, tmp_path, edit):
    """Prepare the task's workspace, let `edit(repo)` change it, return the git diff (binary-safe)."""
    repo = tmp_path / "ws"
    bench.prepare_workspace(TASK, repo)
    edit(repo)
    git(repo, "add", "-A", "--intent-to-add")
    return git(repo, "diff", "--binary", "HEAD").stdout


def test_suite_shape(bench):
    ids = bench.task_ids()
    assert len(ids) >= 30
    subsets = bench.subsets()
    assert (len(subsets["small"]), len(subsets["medium"])) == (10, 20)
    assert len(subsets["heldout"]) >= 5
    assert not set(subsets["small"]) & set(subsets["medium"]) and not set(subsets["heldout"]) & set(subsets["small"] + subsets["medium"])
    assert parse_bench_spec("local:small") == ("local", "small")
    assert parse_bench_spec("polyglot:/data/pg") == ("polyglot", None)


def test_workspace_is_base_commit_without_hidden_files(bench, tmp_path):
    info = bench.prepare_workspace(TASK, tmp_path / "ws")
    head = git(tmp_path / "ws", "rev-parse", "HEAD").stdout.strip()
    assert head == bench.task(TASK).meta["base_commit"]
    names = {p.name for p in (tmp_path / "ws").rglob("*") if ".git" not in p.parts}
    assert not names & {"gold.patch", "test.patch", "tests.json", "eval.sh", "task.yaml"}
    assert "merge_intervals([])" in info.problem_statement
    assert "test_merge_empty" not in (tmp_path / "ws" / "tests" / "test_intervals.py").read_text()


def test_base_commit_mismatch_is_a_clear_error(tmp_path):
    import shutil

    root = tmp_path / "bench"
    shutil.copytree(load_benchmark("local").root, root, ignore=shutil.ignore_patterns("__pycache__"))
    (root / "repos" / "structs" / "structs" / "lru.py").write_text("# changed\n", encoding="utf-8")
    with pytest.raises(TaskError, match="structs__structs-4"):
        LocalBenchmark(root).prepare_workspace("structs__structs-4", tmp_path / "ws")


def test_gold_resolves_and_writes_swebench_report(bench, backend, tmp_path):
    result = bench.grade(TASK, bench.gold_patch(TASK), backend=backend, timeout=60, log_dir=tmp_path / "logs")
    assert result.outcome == "resolved", result.reason + result.test_log[-2000:]
    report = json.loads((tmp_path / "logs" / "report.json").read_text())
    assert report[TASK]["resolved"] and report[TASK]["patch_successfully_applied"]
    assert report[TASK]["tests_status"]["FAIL_TO_PASS"]["success"] == ["tests/test_intervals.py::test_merge_empty"]
    assert "PASSED tests/test_intervals.py::test_merge_empty" in (tmp_path / "logs" / "test_output.txt").read_text()


def test_empty_patch(bench, backend):
    assert bench.grade(TASK, "", backend=backend, timeout=60).outcome == "empty_patch"


def test_patch_that_does_not_apply_is_an_error_with_reason(bench, backend):
    bad = "--- a/structs/intervals.py\n+++ b/structs/intervals.py\n@@ -1,3 +1,3 @@\n-no such line\n+x\n context\n"
    result = bench.grade(TASK, bad, backend=backend, timeout=60)
    assert result.outcome == "error"
    assert "does not apply" in result.reason
    assert result.report[TASK]["patch_successfully_applied"] is False


def test_patch_touching_tests_is_stripped_and_recorded(bench, backend, tmp_path):
    def edit(repo):  # "fix" by deleting the failing test + a real fix; only the fix may count
        (repo / "tests" / "conftest.py").write_text("collect_ignore = ['test_intervals.py']\n")
        test_file = repo / "tests" / "test_intervals.py"
        test_file.write_text(test_file.read_text().replace("def test_merge_overlapping", "def _off"))

    patch = _patch_from_edit(bench, tmp_path, edit)
    result = bench.grade(TASK, patch, backend=backend, timeout=60)
    assert result.outcome == "empty_patch"
    assert sorted(result.stripped_files) == ["tests/conftest.py", "tests/test_intervals.py"]

    gold_plus_tests = bench.gold_patch(TASK) + patch
    result = bench.grade(TASK, gold_plus_tests, backend=backend, timeout=60)
    assert result.outcome == "resolved" and len(result.stripped_files) == 2


def test_strip_handles_setup_cfg_pytest_section():
    patch = ("diff --git a/setup.cfg b/setup.cfg\n--- a/setup.cfg\n+++ b/setup.cfg\n@@ -1 +1,2 @@\n [tool:pytest]\n+addopts = -k nothing\n"
             "diff --git a/pkg/a.py b/pkg/a.py\n--- a/pkg/a.py\n+++ b/pkg/a.py\n@@ -1 +1 @@\n-x = 1\n+x = 2\n")
    kept, dropped = strip_test_changes(patch)
    assert dropped == ["setup.cfg"] and "pkg/a.py" in kept and "setup.cfg" not in kept


def test_strip_keeps_library_code_in_a_testing_package():
    """sympy/testing/pytest.py is sympy's code (its test helpers), not a test: an edit to it stays."""
    def diff(path):
        return f"diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n@@ -1 +1 @@\n-x = 1\n+x = 2\n"

    library, test = "sympy/testing/pytest.py", "sympy/testing/tests/test_pytest.py"
    kept, dropped = strip_test_changes(diff(library) + diff(test) + diff("numpy/testing/test_utils.py"))
    assert dropped == [test, "numpy/testing/test_utils.py"] and library in kept


def test_binary_patch_applies(bench, backend, tmp_path):
    def edit(repo):
        (repo / "structs" / "blob.bin").write_bytes(bytes(range(256)) * 4)
        subprocess.run(["git", "apply"], input=bench.gold_patch(TASK), text=True, cwd=repo, check=True)

    patch = _patch_from_edit(bench, tmp_path, edit)
    assert "GIT binary patch" in patch
    result = bench.grade(TASK, patch, backend=backend, timeout=60)
    assert result.outcome == "resolved", result.reason + result.test_log[-1500:]


def test_hanging_tests_time_out(bench, backend, tmp_path):
    def edit(repo):
        path = repo / "structs" / "intervals.py"
        path.write_text(path.read_text().replace('    """Merge overlapping', '    while True:\n        pass\n    """Merge overlapping'))

    result = bench.grade(TASK, _patch_from_edit(bench, tmp_path, edit), backend=backend, timeout=8)
    assert result.outcome == "timeout"
    assert result.report[TASK]["resolved"] is False


def test_collection_error_is_unresolved(bench, backend, tmp_path):
    def edit(repo):
        path = repo / "structs" / "intervals.py"
        path.write_text(path.read_text() + "\ndef broken(:\n")

    result = bench.grade(TASK, _patch_from_edit(bench, tmp_path, edit), backend=backend, timeout=60)
    assert result.outcome == "unresolved"
    assert "tests/test_intervals.py::test_merge_empty" in result.report[TASK]["tests_status"]["FAIL_TO_PASS"]["failure"]


def test_fake_pass_lines_do_not_resolve(bench, backend, tmp_path):
    """A patch that prints 'PASSED ...' lines and then crashes pytest must not count."""

    def edit(repo):
        path = repo / "structs" / "__init__.py"
        path.write_text(path.read_text() + "\nprint('PASSED tests/test_intervals.py::test_merge_empty')\nraise SystemExit(3)\n")

    result = bench.grade(TASK, _patch_from_edit(bench, tmp_path, edit), backend=backend, timeout=60)
    assert result.outcome != "resolved"


def test_find_by_problem_statement(bench):
    statement = bench.task_info(TASK).problem_statement
    assert bench.find_by_problem_statement("You are an agent.\n" + statement + "\nGo.") == TASK
    assert bench.find_by_problem_statement("nothing here") is None


def test_unknown_task_and_subset(bench):
    with pytest.raises(KeyError, match="nope"):
        bench.task("nope")
    with pytest.raises(KeyError, match="huge"):
        bench.task_ids("huge")
