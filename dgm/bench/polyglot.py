"""Aider's polyglot benchmark (Exercism exercises in six languages), from a local checkout.

Layout read: <root>/<lang>/exercises/practice/<name>/ with .meta/config.json listing
files.solution / files.test / files.example, and the task text in .docs/instructions.md
(+ instructions.append.md). Instance ids are "<lang>__<name>", as in DGM's subsets.

The agent's workspace holds the solution stubs and the docs; test files and the example
solution stay hidden until grading, which copies the tests into a fresh sandbox and runs the
language's test command. A task is resolved when that command exits 0.

Exercism ships most tests switched off (a student enables them one by one); the polyglot harness
(Aider's benchmark, which DGM's mirrors) switches every one on, and so does grading here:
JavaScript `xtest(` becomes `test(`, Java loses `@Disabled`, Rust runs `--include-ignored`, C++
builds with `-DEXERCISM_RUN_ALL_TESTS=1`. A solution that passes only the first test is unresolved.

A bwrap sandbox sees the host's /usr but not your home, so a toolchain installed elsewhere (rustup's
~/.rustup/toolchains/<name>, a Go or JDK tarball under /opt) is invisible inside unless it is named
in the `toolchains` option; the agent's and the grader's sandboxes then show it (SandboxSpec.toolchains).
Grading checks inside the sandbox that the language's tool is there, so a missing toolchain is an
error that says so, never a correct solution scored as unresolved.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .base import GradeResult, TaskInfo
from .gitutil import commit_all, copy_source, init_repo
from .grading_rules import instance_report, tests_status
from .patches import split_patch
from .pytest_log import parse_pytest_log

DATA = Path(__file__).parent / "data"
GRADE_DIR_INSIDE = "/dgm_grade"
TOOLCHAIN_MISSING = ">>>>> Toolchain Missing: "


@dataclass(frozen=True)
class LanguageTests:
    """How one language's exercises are tested, as the polyglot benchmark runs them."""

    tool: str  # must be on PATH inside the sandbox
    run: str  # the test command; {tests} = the exercise's test files
    prepare: str = ""  # must succeed offline before the tests can run...
    prepare_needs: str = ""  # ...and when it fails, this is what is missing
    enable_all: Callable[[str], str] | None = None  # switches on the tests a test file ships switched off


def enable_jest_tests(text: str) -> str:
    """Exercism's JavaScript specs skip all but the first test with `xtest(`."""
    return re.sub(r"\bxtest\(", "test(", text)


def enable_junit_tests(text: str) -> str:
    """Exercism's Java tests skip all but the first with `@Disabled("Remove to run test")`."""
    return re.sub(r"^[ \t]*@Disabled(\([^)]*\))?[ \t]*\r?\n", "", text, flags=re.M)


TEST_COMMANDS = {
    "python": LanguageTests("python3", "PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 python3 -m pytest -rA -p no:cacheprovider {tests}"),
    "go": LanguageTests("go", "go test ./..."),
    "rust": LanguageTests("cargo", "cargo test --offline -- --include-ignored"),
    "javascript": LanguageTests("npm", "npm test", prepare="npm install --offline --no-audit --no-fund",
                                prepare_needs="the exercise's npm packages (jest...) in the offline npm cache",
                                enable_all=enable_jest_tests),
    # Exercism's CMakeLists.txt compiles the guarded tests only with EXERCISM_RUN_ALL_TESTS; `make` runs them.
    "cpp": LanguageTests("cmake", 'mkdir -p build && cd build && cmake -DEXERCISM_RUN_ALL_TESTS=1 -G "Unix Makefiles" .. '
                                  "&& make"),
    "java": LanguageTests("java", "./gradlew test --offline", prepare="./gradlew --offline --version",
                          prepare_needs="the Gradle distribution of the exercise's wrapper (it cannot be downloaded)",
                          enable_all=enable_junit_tests),
}


class PolyglotError(ValueError):
    """Bad checkout or exercise metadata; the message names the exercise."""


class PolyglotBenchmark:
    name = "polyglot"

    def __init__(self, root: Path, languages: list[str] | None = None, toolchains: list[str] | None = None):
        self.root = Path(root).expanduser()
        self.toolchains = [Path(t).expanduser().resolve() for t in toolchains or []]
        for toolchain in self.toolchains:
            if not toolchain.is_dir():
                raise PolyglotError(f"benchmark option toolchains: {toolchain} is not a directory")
        if not self.root.is_dir():
            raise PolyglotError(f"polyglot checkout not found: {self.root}")
        self.languages = languages or sorted(p.name for p in self.root.iterdir() if (p / "exercises" / "practice").is_dir())
        if not self.languages:
            raise PolyglotError(f"{self.root}: no <lang>/exercises/practice/ directories (not a polyglot-benchmark checkout?)")

    # ------------------------------------------------------------ listing

    def task_ids(self, subset: str | None = None) -> list[str]:
        if subset is None or subset == "all":
            return sorted(f"{lang}__{p.name}" for lang in self.languages
                          for p in (self.root / lang / "exercises" / "practice").iterdir() if (p / ".meta" / "config.json").exists())
        subsets = self.subsets()
        if subset not in subsets:
            raise KeyError(f"unknown polyglot subset {subset!r}; known: {', '.join(subsets)}")
        present = set(self.task_ids())
        missing = [i for i in subsets[subset] if i not in present]
        if missing:
            raise KeyError(f"polyglot subset {subset!r}: {len(missing)} of {len(subsets[subset])} exercises are not in "
                           f"{self.root} (first: {missing[0]})")
        return subsets[subset]

    def subsets(self) -> dict[str, list[str]]:
        """DGM's small/medium subsets, whole: scores are over every task of a subset (as the paper
        reports them), so an exercise missing from the checkout is an error, never a smaller subset."""
        return {name: json.loads((DATA / f"polyglot_{name}.json").read_text()) for name in ("small", "medium")}

    def _exercise(self, instance_id: str) -> tuple[str, Path, dict]:
        lang, sep, name = instance_id.partition("__")
        directory = self.root / lang / "exercises" / "practice" / name
        if not sep or not (directory / ".meta" / "config.json").exists():
            raise KeyError(f"unknown polyglot exercise {instance_id!r} (expected {directory}/.meta/config.json)")
        try:
            files = json.loads((directory / ".meta" / "config.json").read_text())["files"]
            for key in ("solution", "test"):
                if not isinstance(files.get(key), list) or not files[key]:
                    raise KeyError(key)
        except (ValueError, KeyError) as exc:
            raise PolyglotError(f"{directory}/.meta/config.json: bad or missing files.{exc}") from None
        return lang, directory, files

    def task_info(self, instance_id: str) -> TaskInfo:
        lang, directory, files = self._exercise(instance_id)
        docs = [directory / ".docs" / n for n in ("introduction.md", "instructions.md", "instructions.append.md")]
        text = "\n\n".join(p.read_text().strip() for p in docs if p.exists())
        if not text:
            raise PolyglotError(f"{directory}: no .docs/instructions.md")
        statement = (f"# {instance_id}\n\n{text}\n\n"
                     f"Implement the solution in: {', '.join(files['solution'])}. Keep the existing function and "
                     "class names (hidden tests import them) and use only the standard library.")
        return TaskInfo(instance_id, statement, f"Hidden {lang} tests run at grading time; write your own checks.")

    def test_patch(self, instance_id: str) -> str:
        """The hidden test files (shown to the diagnosis only with diagnosis.include_test_patch, as in the paper)."""
        _, directory, files = self._exercise(instance_id)
        return "\n".join(f"=== {name} ===\n{(directory / name).read_text(errors='replace')}" for name in files["test"])

    # ------------------------------------------------------------ workspace

    def prepare_workspace(self, instance_id: str, dest: Path) -> TaskInfo:
        _, directory, files = self._exercise(instance_id)
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        copy_source(directory, dest)
        for hidden in files["test"] + files.get("example", []):
            target = dest / hidden
            if target.exists():
                target.unlink()
        shutil.rmtree(dest / ".meta", ignore_errors=True)
        init_repo(dest)
        commit_all(dest, f"{instance_id}: base")
        return self.task_info(instance_id)

    # ------------------------------------------------------------ grading

    def grade(self, instance_id: str, model_patch: str, *, backend: str, timeout: float,
              log_dir: Path | None = None) -> GradeResult:
        from dgm.sandbox import open_sandbox
        from dgm.sandbox.base import Mount, SandboxSpec

        started = time.monotonic()
        lang, directory, files = self._exercise(instance_id)
        patch, stripped = _strip_files(model_patch or "", set(files["test"]))
        if not patch.strip():
            return self._done(GradeResult(instance_id, "empty_patch", instance_report(instance_id, patch=model_patch, applied=False, status=None),
                                          stripped_files=stripped, reason="empty patch"), started, log_dir, patch)
        tests = TEST_COMMANDS.get(lang)
        if tests is None:
            raise PolyglotError(f"{instance_id}: no test command for language {lang!r}")
        with tempfile.TemporaryDirectory(prefix="dgm-polyglot-") as tmp:
            repo, grade_dir = Path(tmp) / "repo", Path(tmp) / "grade"
            self.prepare_workspace(instance_id, repo)
            (grade_dir / "tests").mkdir(parents=True)
            for name in files["test"]:
                hidden = grade_dir / "tests" / name
                hidden.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(directory / name, hidden)
                if tests.enable_all:  # every test switched on, as the polyglot harness runs them
                    hidden.write_text(tests.enable_all(hidden.read_text()))
            (grade_dir / "model.patch").write_text(patch)
            (grade_dir / "grade.sh").write_text(_grade_script(tests, files["test"]))
            spec = SandboxSpec(source=repo, mounts=[Mount(grade_dir, GRADE_DIR_INSIDE)], labels={"task": instance_id},
                               toolchains=self.toolchains)
            # docker: dgm's polyglot image (Debian's compilers and test tools, `dgm sandbox build-image polyglot`)
            with open_sandbox(backend, spec, **({"image": "polyglot"} if backend == "docker" else {})) as sb:
                # the grade dir as an argument: the local backend maps inside paths in argv, not in files
                res = sb.exec(["bash", f"{GRADE_DIR_INSIDE}/grade.sh", GRADE_DIR_INSIDE], timeout=timeout)
        if TOOLCHAIN_MISSING in res.output:
            missing = res.output.split(TOOLCHAIN_MISSING, 1)[1].splitlines()[0]
            reason = (f"toolchain missing inside the {backend} sandbox for {lang} tests: {missing}; provide it "
                      "under /usr, name its directory in benchmark option toolchains, or use an image that has it")
            return self._done(GradeResult(instance_id, "error", instance_report(instance_id, patch=model_patch, applied=False,
                                                                               status=None), res.output, stripped, reason=reason),
                              started, log_dir, patch)
        return self._done(self._result(instance_id, lang, model_patch, res, stripped), started, log_dir, patch)

    def _result(self, iid, lang, model_patch, res, stripped) -> GradeResult:
        if ">>>>> Patch Apply Failed" in res.output:
            return GradeResult(iid, "error", instance_report(iid, patch=model_patch, applied=False, status=None), res.output,
                               stripped, reason="model patch does not apply")
        statuses = parse_pytest_log(res.output.split(">>>>> Start Test Output")[-1]) if lang == "python" else {}
        status = tests_status(statuses, [], [])
        status["FAIL_TO_PASS"]["success" if res.exit_code == 0 else "failure"] = sorted(statuses) or [iid]
        report = instance_report(iid, patch=model_patch, applied=True, status=status)
        report[iid]["resolved"] = res.exit_code == 0 and not res.timed_out
        outcome = "timeout" if res.timed_out else "resolved" if report[iid]["resolved"] else "unresolved"
        return GradeResult(iid, outcome, report, res.output, stripped, reason="tests timed out" if res.timed_out else "")

    @staticmethod
    def _done(result: GradeResult, started: float, log_dir: Path | None, patch: str) -> GradeResult:
        result.duration_s = time.monotonic() - started
        if log_dir is not None:
            log_dir = Path(log_dir)
            log_dir.mkdir(parents=True, exist_ok=True)
            (log_dir / "report.json").write_text(json.dumps(result.report, indent=2) + "\n")
            (log_dir / "test_output.txt").write_text(result.test_log)
            (log_dir / "patch.diff").write_text(patch)
        return result


def _grade_script(tests: LanguageTests, test_files: list[str]) -> str:
    """Apply the model patch, add the hidden tests, run them. $1 = the grade dir (patch + tests).

    A missing tool or offline dependency stops with TOOLCHAIN_MISSING: that is not the model's failure.
    """
    def missing(what: str) -> str:
        return f"{{ echo {shlex.quote(TOOLCHAIN_MISSING + what)}; exit 98; }}"

    lines = [f"command -v {tests.tool} >/dev/null 2>&1 || " + missing(f"{tests.tool} is not on PATH"),
             "git -c safe.directory='*' apply --verbose --binary \"$1/model.patch\" || "
             "{ echo '>>>>> Patch Apply Failed'; exit 97; }",
             "cp -r \"$1/tests/.\" ."]
    if tests.prepare:
        lines.append(f"{tests.prepare} >/dev/null 2>&1 || " + missing(tests.prepare_needs))
    lines += ["echo '>>>>> Start Test Output'", tests.run.format(tests=" ".join(test_files)),
              "rc=$?", "echo '>>>>> End Test Output'", 'echo ">>>>> Test Exit Code: $rc"', "exit $rc"]
    return "\n".join(lines) + "\n"


def _strip_files(patch: str, hidden: set[str]) -> tuple[str, list[str]]:
    """Drop diffs of the exercise's test files (the agent must not ship its own tests as the hidden ones)."""
    chunks = split_patch(patch)
    if not chunks:
        return patch, []
    kept = [c.text for c in chunks if c.path not in hidden]
    return "".join(kept), [c.path for c in chunks if c.path in hidden]
