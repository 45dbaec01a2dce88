"""The offline task suite in benchmarks/ (SWE-bench task-repo layout), graded in a fresh sandbox.

How a task's base is derived (see benchmarks/README.md): `repos/<repo>/` is the upstream
source with every fix merged; a task's base is that tree with its test.patch and gold.patch
reverse-applied, committed with a fixed identity and date. The commit SHA must equal
task.yaml's `base_commit`, so every machine grades against the same bytes.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .base import GradeResult, TaskInfo
from .gitutil import GitError, commit_all, copy_source, git, init_repo
from .grading_rules import instance_report, is_resolved, tests_status
from .patches import strip_test_changes
from .pytest_log import parse_pytest_log

START_MARK = ">>>>> Start Test Output"
END_MARK = ">>>>> End Test Output"
EXIT_MARK = ">>>>> Test Exit Code"
GRADE_DIR_INSIDE = "/dgm_grade"
TEST_DESCRIPTION = ("Run the repository's tests with `python -m pytest -q` from the repository root. "
                    "Add or update tests for your change if useful.")
APPLIED_MARK = ">>>>> Applied Patch\n"
APPLY_FAILED_MARK = ">>>>> Patch Apply Failed"
# Runs inside the sandbox: apply the model patch ($1, may be empty) the way SWE-bench does
# (git apply, then a fuzzier `patch`), then the task's eval script ($2).
GRADE_SCRIPT = """\
set -u
if [ -s "$1" ]; then
  if git -c safe.directory='*' apply --verbose --binary "$1"; then :
  elif patch --batch --fuzz=5 -p1 -i "$1"; then :
  else echo ">>>>> Patch Apply Failed"; exit 98; fi
fi
echo ">>>>> Applied Patch"
exec bash "$2"
"""
REQUIRED_TASK_KEYS = ("instance_id", "repo", "base_commit", "version", "created_at", "kind", "files")


class TaskError(ValueError):
    """A task directory is missing something or is inconsistent; the message names the task."""


@dataclass
class Task:
    instance_id: str
    dir: Path
    meta: dict
    fail_to_pass: list[str]
    pass_to_pass: list[str]

    @property
    def repo(self) -> str:
        return self.meta["repo"]

    def read(self, name: str) -> str:
        return (self.dir / name).read_text(encoding="utf-8")


@dataclass
class EvalRun:
    """One run of eval.sh on the base repo plus a patch."""

    applied: bool
    apply_log: str
    log: str
    exit_code: int | None
    timed_out: bool
    statuses: dict[str, str]
    duration_s: float


class LocalBenchmark:
    name = "local"

    def __init__(self, root: Path):
        self.root = Path(root)
        if not (self.root / "tasks").is_dir():
            raise TaskError(f"{self.root}: not a benchmark directory (no tasks/ inside)")
        self._tasks: dict[str, Task] = {}

    # ------------------------------------------------------------ listing

    def subsets(self) -> dict[str, list[str]]:
        path = self.root / "subsets.yaml"
        if not path.exists():
            return {"all": self.task_ids()}
        data = yaml.safe_load(path.read_text()) or {}
        known = set(self._all_ids())
        for name, ids in data.items():
            missing = [i for i in ids if i not in known]
            if missing:
                raise TaskError(f"{path}: subset {name!r} names unknown tasks: {', '.join(missing)}")
        return {name: list(ids) for name, ids in data.items()}

    def _all_ids(self) -> list[str]:
        return sorted(p.name for p in (self.root / "tasks").iterdir() if (p / "task.yaml").exists())

    def task_ids(self, subset: str | None = None) -> list[str]:
        if subset is None or subset == "all":
            return self._all_ids()
        subsets = self.subsets()
        if subset not in subsets:
            raise KeyError(f"unknown subset {subset!r} of {self.root}; known: {', '.join(subsets)}")
        return subsets[subset]

    def task(self, instance_id: str) -> Task:
        if instance_id not in self._tasks:
            self._tasks[instance_id] = self._load_task(instance_id)
        return self._tasks[instance_id]

    def _load_task(self, instance_id: str) -> Task:
        directory = self.root / "tasks" / instance_id
        if not (directory / "task.yaml").exists():
            raise KeyError(f"unknown task {instance_id!r} (no {directory}/task.yaml)")
        meta = yaml.safe_load((directory / "task.yaml").read_text()) or {}
        missing = [k for k in REQUIRED_TASK_KEYS if k not in meta]
        if missing:
            raise TaskError(f"{directory}/task.yaml: missing keys {', '.join(missing)}")
        for name in ("problem_statement.md", "gold.patch", "test.patch", "tests.json", "eval.sh"):
            if not (directory / name).exists():
                raise TaskError(f"task {instance_id}: missing {name}")
        try:
            tests = json.loads((directory / "tests.json").read_text())
            f2p, p2p = list(tests["FAIL_TO_PASS"]), list(tests["PASS_TO_PASS"])
        except (ValueError, KeyError) as exc:
            raise TaskError(f"task {instance_id}: bad tests.json ({exc})") from None
        if not (self.root / "repos" / meta["repo"]).is_dir():
            raise TaskError(f"task {instance_id}: repo {meta['repo']!r} not found under {self.root / 'repos'}")
        return Task(instance_id, directory, meta, f2p, p2p)

    def task_info(self, instance_id: str) -> TaskInfo:
        return TaskInfo(instance_id, self.task(instance_id).read("problem_statement.md"), TEST_DESCRIPTION)

    # ------------------------------------------------------------ trusted-side helpers

    def gold_patch(self, instance_id: str) -> str:
        return self.task(instance_id).read("gold.patch")

    def test_patch(self, instance_id: str) -> str:
        """The hidden tests (shown to the diagnosis only with diagnosis.include_test_patch, as in the paper)."""
        return self.task(instance_id).read("test.patch")

    def find_by_problem_statement(self, text: str) -> str | None:
        """The task whose problem statement appears in `text` (for the scripted test model)."""
        for instance_id in self._all_ids():
            if self.task(instance_id).read("problem_statement.md").strip() in text:
                return instance_id
        return None

    # ------------------------------------------------------------ workspace

    def prepare_workspace(self, instance_id: str, dest: Path) -> TaskInfo:
        task = self.task(instance_id)
        dest = Path(dest)
        if dest.exists() and any(dest.iterdir()):
            raise FileExistsError(f"workspace {dest} is not empty")
        try:
            sha = derive_base(self.root / "repos" / task.repo, task.read("test.patch"), task.read("gold.patch"),
                              dest, f"{instance_id}: base")
        except GitError as exc:
            raise TaskError(f"task {instance_id}: cannot derive the base from repos/{task.repo}: {exc}") from None
        if sha != task.meta["base_commit"]:
            raise TaskError(f"task {instance_id}: base commit is {sha}, task.yaml says {task.meta['base_commit']} "
                            f"(repos/{task.repo} changed since the task was built? rebuild the tasks)")
        return self.task_info(instance_id)

    # ------------------------------------------------------------ grading

    def grade(self, instance_id: str, model_patch: str, *, backend: str, timeout: float,
              log_dir: Path | None = None) -> GradeResult:
        started = time.monotonic()
        task = self.task(instance_id)
        patch, stripped = strip_test_changes(model_patch or "")
        if not patch.strip():
            result = GradeResult(instance_id, "empty_patch",
                                 instance_report(instance_id, patch=model_patch, applied=False, status=None),
                                 stripped_files=stripped, reason="patch is empty after removing test changes")
        else:
            run = self.run_eval(instance_id, patch, backend=backend, timeout=timeout)
            result = self._result_from_run(task, model_patch, run, stripped)
        result.duration_s = time.monotonic() - started
        if log_dir is not None:
            _write_logs(Path(log_dir), result, patch)
        return result

    def run_eval(self, instance_id: str, patch: str, *, backend: str, timeout: float) -> EvalRun:
        """Fresh sandbox over the base repo: apply `patch` (may be empty), run eval.sh, parse the log."""
        from dgm.sandbox import open_sandbox
        from dgm.sandbox.base import Mount, SandboxSpec

        task = self.task(instance_id)
        started = time.monotonic()
        with tempfile.TemporaryDirectory(prefix="dgm-grade-") as tmp:
            repo, grade_dir = Path(tmp) / "repo", Path(tmp) / "grade"
            self.prepare_workspace(instance_id, repo)
            grade_dir.mkdir()
            (grade_dir / "model.patch").write_text(patch, encoding="utf-8")
            shutil.copy(task.dir / "eval.sh", grade_dir / "eval.sh")
            spec = SandboxSpec(source=repo, mounts=[Mount(grade_dir, GRADE_DIR_INSIDE)],
                               labels={"purpose": "grade", "task": instance_id})
            (grade_dir / "grade.sh").write_text(GRADE_SCRIPT)
            # One process per grading run: sandbox start-up is the main cost of an isolated run.
            with open_sandbox(backend, spec) as sb:
                res = sb.exec(["bash", f"{GRADE_DIR_INSIDE}/grade.sh", f"{GRADE_DIR_INSIDE}/model.patch",
                               f"{GRADE_DIR_INSIDE}/eval.sh"], timeout=timeout)
        apply_log, applied_mark, log = res.output.partition(APPLIED_MARK)
        if not applied_mark:
            if APPLY_FAILED_MARK in res.output or not res.timed_out:
                return EvalRun(False, res.output, "", None, False, {}, time.monotonic() - started)
            log, apply_log = res.output, ""
        return EvalRun(True, apply_log + applied_mark, log, _exit_code(log, res.exit_code), res.timed_out,
                       parse_pytest_log(_between_markers(log)), time.monotonic() - started)

    def _result_from_run(self, task: Task, model_patch: str, run: EvalRun, stripped: list[str]) -> GradeResult:
        iid = task.instance_id
        if not run.applied:
            report = instance_report(iid, patch=model_patch, applied=False, status=None)
            return GradeResult(iid, "error", report, run.apply_log, stripped,
                               reason="model patch does not apply: " + _last_lines(run.apply_log))
        status = tests_status(run.statuses, task.fail_to_pass, task.pass_to_pass)
        report = instance_report(iid, patch=model_patch, applied=True, status=status)
        log = run.apply_log + run.log
        if run.timed_out:
            report[iid]["resolved"] = False
            return GradeResult(iid, "timeout", report, log, stripped, reason="tests timed out")
        if not run.statuses:
            report[iid]["resolved"] = False
            return GradeResult(iid, "error", report, log, stripped,
                               reason=f"no test results in the log (exit code {run.exit_code})")
        # A patch can print fake "PASSED ..." lines; every test in these files is F2P or P2P,
        # so a resolved run must also have a clean pytest exit code.
        resolved = is_resolved(status) and run.exit_code == 0
        report[iid]["resolved"] = resolved
        reason = "" if resolved or not is_resolved(status) else f"log says all passed but pytest exited {run.exit_code}"
        return GradeResult(iid, "resolved" if resolved else "unresolved", report, log, stripped, reason=reason)


def derive_base(upstream: Path, test_patch: str, gold_patch: str, dest: Path, message: str) -> str:
    """`dest` = upstream minus the task's tests and fix, committed reproducibly; returns the commit SHA."""
    dest.mkdir(parents=True, exist_ok=True)
    copy_source(upstream, dest)
    init_repo(dest)
    git(dest, "apply", "-R", "--whitespace=nowarn", input=test_patch)
    git(dest, "apply", "-R", "--whitespace=nowarn", input=gold_patch)
    return commit_all(dest, message)


def _between_markers(log: str) -> str:
    if START_MARK in log:
        log = log.split(START_MARK, 1)[1]
    return log.split(END_MARK, 1)[0]


def _exit_code(log: str, fallback: int) -> int:
    for line in reversed(log.splitlines()):
        if line.startswith(EXIT_MARK):
            try:
                return int(line.rsplit(":", 1)[1])
            except ValueError:
                break
    return fallback


def _last_lines(text: str, n: int = 3) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip() and not line.startswith(">>>>>")]
    return " | ".join(lines[-n:])


def _write_logs(log_dir: Path, result: GradeResult, patch: str) -> None:
    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
    (log_dir / "test_output.txt").write_text(result.test_log)
    (log_dir / "patch.diff").write_text(patch)
    meta = {"outcome": result.outcome, "reason": result.reason, "stripped_files": result.stripped_files,
            "duration_s": round(result.duration_s, 3)}
    (log_dir / "grade.json").write_text(json.dumps(meta, indent=2) + "\n")
