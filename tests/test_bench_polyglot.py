"""Polyglot adapter on a tiny fixture checkout in Aider's layout (real git, real sandbox)."""

import shutil
import subprocess
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.bench.gitutil import git
from dgm.bench.polyglot import PolyglotError

FIXTURE = Path(__file__).parent / "fixtures" / "polyglot"


@pytest.fixture(scope="module")
def bench():
    return load_benchmark(f"polyglot:{FIXTURE}")


def _solve(bench, tmp_path, iid, use_example=True):
    repo = tmp_path / iid
    bench.prepare_workspace(iid, repo)
    lang, directory, files = bench._exercise(iid)
    if use_example:
        shutil.copy(directory / files["example"][0], repo / files["solution"][0])
    git(repo, "add", "-A", "--intent-to-add")
    return git(repo, "diff", "HEAD").stdout


def test_lists_exercises_and_dgm_subsets(bench):
    assert bench.task_ids() == ["cpp__reverse-string", "java__hello-world", "javascript__hello-world",
                                "javascript__leap", "python__beer-song", "python__leap", "python__two-fer", "rust__bowling"]
    # DGM's subsets whole: a subset is never shrunk to what a checkout has (its score is over all its tasks)
    assert [len(ids) for ids in bench.subsets().values()] == [10, 50]
    with pytest.raises(KeyError, match=r"subset 'small': 8 of 10 exercises are not in"):
        bench.task_ids("small")


def test_workspace_hides_tests_and_example(bench, tmp_path):
    info = bench.prepare_workspace("python__leap", tmp_path / "ws")
    names = {p.name for p in (tmp_path / "ws").rglob("*") if ".git" not in p.parts}
    assert "leap.py" in names and "leap_test.py" not in names and "example.py" not in names
    assert "leap year" in info.problem_statement and "leap.py" in info.problem_statement


@pytest.mark.parametrize("iid", ["python__leap", "python__two-fer", "python__beer-song"])
def test_example_solutions_resolve(bench, backend, tmp_path, iid):
    result = bench.grade(iid, _solve(bench, tmp_path, iid), backend=backend, timeout=60, log_dir=tmp_path / "logs")
    assert result.outcome == "resolved", result.test_log[-1500:]
    assert (tmp_path / "logs" / "report.json").exists()


def test_wrong_solution_unresolved_and_test_edits_stripped(bench, backend, tmp_path):
    repo = tmp_path / "ws"
    bench.prepare_workspace("python__leap", repo)
    (repo / "leap.py").write_text("def leap_year(year):\n    return year % 4 == 0\n")
    (repo / "leap_test.py").write_text("def test_ok():\n    pass\n")  # agent's own "test" with the hidden name
    git(repo, "add", "-A", "--intent-to-add")
    result = bench.grade("python__leap", git(repo, "diff", "HEAD").stdout, backend=backend, timeout=60)
    assert result.outcome == "unresolved"
    assert result.stripped_files == ["leap_test.py"]
    assert "python__leap" in result.report and not result.report["python__leap"]["resolved"]


def test_empty_patch(bench, backend):
    assert bench.grade("python__leap", "", backend=backend, timeout=60).outcome == "empty_patch"


def _rust_sysroot() -> str | None:
    """rustup keeps toolchains in the home, which no sandbox shows; the `toolchains` option binds one."""
    if not shutil.which("rustc"):
        return None
    return subprocess.run(["rustc", "--print", "sysroot"], capture_output=True, text=True).stdout.strip() or None


# exercise, the example's source file, the solution file it replaces, a solution that passes only the first
# test (the others are switched off as Exercism ships them), what the host needs, and how to get it
COMPILED = [
    ("cpp__reverse-string", ".meta/example.cpp", "reverse_string.cpp",
     '#include "reverse_string.h"\nnamespace reverse_string {\nstd::string reverse_string(const std::string& text) '
     '{ return text; }\n}\n', shutil.which("cmake") and shutil.which("g++"), "apt-get install cmake g++"),
    ("rust__bowling", ".meta/example.rs", "src/lib.rs", "pub fn score(_rolls: &[u32]) -> u32 {\n    0\n}\n",
     _rust_sysroot(), "install Rust with rustup"),
]


@pytest.mark.parametrize("iid,example,solution,first_test_only,toolchain,how", COMPILED, ids=[c[0] for c in COMPILED])
def test_compiled_languages_are_graded_with_every_test_switched_on(backend, tmp_path, iid, example, solution,
                                                                     first_test_only, toolchain, how):
    """The example resolves; a solution that passes only the test Exercism leaves switched on does not
    (a grader without -DEXERCISM_RUN_ALL_TESTS=1 / --include-ignored would call it resolved)."""
    if not toolchain:
        pytest.skip(f"polyglot toolchain missing: {iid} needs it on this host ({how})")
    toolchains = [toolchain] if iid.startswith("rust") else []
    bench = load_benchmark(f"polyglot:{FIXTURE}", toolchains=toolchains)
    lang, name = iid.split("__")
    for variant, expected in (("example", "resolved"), ("first-test-only", "unresolved")):
        repo = tmp_path / f"{iid}-{variant}"
        bench.prepare_workspace(iid, repo)
        if variant == "example":
            shutil.copy(FIXTURE / lang / "exercises" / "practice" / name / example, repo / solution)
        else:
            (repo / solution).write_text(first_test_only)
        result = bench.grade(iid, git(repo, "diff", "HEAD").stdout, backend=backend, timeout=300)
        assert result.outcome == expected, result.test_log[-2000:]
        if variant == "first-test-only" and lang == "cpp":
            assert "2 passed, 3 failed" in result.test_log  # the guarded tests compiled and ran (a palindrome passes)


def test_javascript_specs_run_with_every_xtest_switched_on(backend, tmp_path):
    """Exercism's JavaScript specs leave only the first test on (`xtest(` for the rest); the harness rewrites
    them to `test(`. Jest cannot run here (an npm registry package; sandboxes are offline), so a stand-in
    `npm` on the toolchain path shows the spec files exactly as the grading sandbox holds them."""
    stand_in = tmp_path / "npm-stand-in"
    (stand_in / "bin").mkdir(parents=True)
    (stand_in / "bin" / "npm").write_text('#!/bin/sh\n[ "$1" = install ] && exit 0\ncat ./*.spec.js\nexit 1\n')
    (stand_in / "bin" / "npm").chmod(0o755)
    bench = load_benchmark(f"polyglot:{FIXTURE}", toolchains=[str(stand_in)])
    repo = tmp_path / "ws"
    bench.prepare_workspace("javascript__leap", repo)
    assert not (repo / "leap.spec.js").exists()
    (repo / "leap.js").write_text("export const isLeap = () => false;\n")
    result = bench.grade("javascript__leap", git(repo, "diff", "HEAD").stdout, backend=backend, timeout=120)
    assert result.outcome == "unresolved", result.test_log[-1500:]
    spec = result.test_log.split(">>>>> Start Test Output")[1]
    assert "xtest(" not in spec and spec.count("  test(") == 4


def test_java_disabled_tests_are_switched_on():
    """Exercism's Java tests carry @Disabled("Remove to run test") on all but the first (Gradle cannot run
    offline here, so this checks the text grading copies into the sandbox)."""
    from dgm.bench.polyglot import enable_junit_tests

    text = ("    @Test\n    public void first() {}\n\n    @Disabled(\"Remove to run test\")\n    @Test\n"
            "    public void second() {}\n\n    @Disabled\n    @Test\n    public void third() {}\n")
    enabled = enable_junit_tests(text)
    assert "@Disabled" not in enabled and enabled.count("@Test") == 3 and "public void third()" in enabled
    assert "import org.junit.jupiter.api.Disabled;" in enable_junit_tests("import org.junit.jupiter.api.Disabled;\n")


def test_a_task_in_two_subsets_is_run_and_counted_once(tmp_path, monkeypatch):
    """DGM's polyglot small and medium subsets share a task: stage 2 runs only the new ones, and the
    cumulative score is over the 59 distinct tasks (10, then 10 + 49), each counted once."""
    import json

    from dgm.agent_run import SandboxPolicy
    from dgm.bench.polyglot import DATA
    from dgm.config import AgentLimits, EvaluationSection, Stage
    from dgm.evaluate import Evaluator
    from dgm.store.records import TaskResult

    small, medium = (json.loads((DATA / f"polyglot_{n}.json").read_text()) for n in ("small", "medium"))
    shared = set(small) & set(medium)
    assert len(shared) == 1
    for iid in small + medium:  # a checkout holding every exercise of both subsets
        lang, name = iid.split("__")
        meta = tmp_path / lang / "exercises" / "practice" / name / ".meta"
        meta.mkdir(parents=True, exist_ok=True)
        (meta / "config.json").write_text('{"files": {"solution": ["s"], "test": ["t"]}}')
    cfg = EvaluationSection(benchmark="polyglot", stages=[Stage(tasks="small"), Stage(tasks="medium", threshold=0.4)])
    evaluator = Evaluator(benchmark=load_benchmark(f"polyglot:{tmp_path}"), policy=SandboxPolicy("local"), llm=None,
                          cfg=cfg, limits=AgentLimits())
    ran = []
    monkeypatch.setattr(evaluator, "run_task", lambda _agent, task, stage, *_a, **_k: ran.append(task) or TaskResult(
        task, stage, "resolved" if task in shared else "unresolved", 0.0, "submitted"))
    evaluation = evaluator.evaluate(tmp_path / "agent", "n1", "1:0", tmp_path / "out", all_stages=True)
    assert len(ran) == len(set(ran)) == 59
    assert [(s.resolved, s.total) for s in evaluation.stages] == [(1, 10), (1, 59)]
    assert evaluator.full_size == 59


def test_a_toolchain_missing_inside_the_sandbox_is_an_error_not_a_failed_task(bench, backend, monkeypatch):
    from dgm.bench import polyglot

    monkeypatch.setitem(polyglot.TEST_COMMANDS, "rust", polyglot.LanguageTests("no-such-cargo", "no-such-cargo test"))
    patch = "--- a/src/lib.rs\n+++ b/src/lib.rs\n@@ -1 +1 @@\n-/// Total score of a game with no strikes or spares: the sum of the pins knocked down.\n+// x\n"
    result = bench.grade("rust__bowling", patch, backend=backend, timeout=60)
    assert result.outcome == "error" and "no-such-cargo" in result.reason and "toolchains" in result.reason
    # Exercism's JavaScript tests need jest from npm; a sandbox has no network, so without an image or a
    # cache that holds it, grading must say so instead of failing the task.
    example = FIXTURE / "javascript" / "exercises" / "practice" / "hello-world" / ".meta" / "proof.ci.js"
    patch = ("--- a/hello-world.js\n+++ b/hello-world.js\n@@ -1,3 +1 @@\n-export const hello = () => {\n"
             "-  throw new Error('Remove this line and implement the function');\n-};\n+" + example.read_text())
    result = bench.grade("javascript__hello-world", patch, backend=backend, timeout=120)
    if shutil.which("npm"):
        assert result.outcome == "error" and "npm packages (jest...) in the offline" in result.reason, result.test_log[-1500:]
        assert "syntax error" not in result.test_log
    else:
        assert result.outcome == "error" and "npm is not on PATH" in result.reason
    # Java: Exercism's Gradle wrapper needs its distribution, which a sandbox cannot download.
    patch = ("--- a/src/main/java/Greeter.java\n+++ b/src/main/java/Greeter.java\n@@ -2,3 +2,3 @@\n"
             "     String getGreeting() {\n-        return \"Goodbye, Mars!\";\n+        return \"Hello, World!\";\n     }\n")
    result = bench.grade("java__hello-world", patch, backend=backend, timeout=120)
    expected = "Gradle distribution" if shutil.which("java") else "java is not on PATH"
    assert result.outcome == "error" and expected in result.reason, result.test_log[-1500:]
    with pytest.raises(PolyglotError, match="toolchains: .*nope"):
        load_benchmark(f"polyglot:{FIXTURE}", toolchains=[str(FIXTURE / "nope")])


def test_shipped_polyglot_config_accepts_a_checkout_path():
    """The path reaches the benchmark; this small checkout lacks most of DGM's subsets, which must be an
    error that names the stage and a missing task, not a run over fewer tasks."""
    from dgm.config import load_config
    from dgm.run import check_before_running

    config = load_config("experiments/polyglot.yaml", [f"evaluation.benchmark_options.path={FIXTURE}"])
    with pytest.raises(ValueError, match=r"evaluation\.stages\.0\.tasks: 8 task ids not in benchmark 'polyglot'"):
        check_before_running(config)


def test_bad_checkout_and_unknown_exercise(bench, tmp_path):
    with pytest.raises(PolyglotError, match="not found"):
        load_benchmark(f"polyglot:{tmp_path / 'nope'}")
    with pytest.raises(KeyError, match="python__nope"):
        bench.task_info("python__nope")


def test_the_agent_sandbox_has_the_benchmark_toolchains(tmp_path):
    """An agent (run by the real evaluator, in the real sandbox) solves a task with a tool that only a
    `toolchains` directory provides: the tool prints the solution."""
    from dgm.config import Config, Stage
    from dgm.run import new_run, runtime

    toolchain = tmp_path / "opt" / "leapc"
    (toolchain / "bin").mkdir(parents=True)
    example = FIXTURE / "python" / "exercises" / "practice" / "leap" / ".meta" / "example.py"
    (toolchain / "bin" / "leapc").write_text(f"#!/bin/sh\ncat <<'EOF'\n{example.read_text()}EOF\n")
    (toolchain / "bin" / "leapc").chmod(0o755)
    agent = tmp_path / "agent"
    shutil.copytree(Path(__file__).resolve().parents[1] / "agents" / "initial", agent)
    (agent / "agent" / "__main__.py").write_text(
        "import pathlib, subprocess, sys\n"
        "repo = pathlib.Path(sys.argv[sys.argv.index('--repo') + 1])\n"
        "(repo / 'leap.py').write_text(subprocess.run(['leapc'], capture_output=True, text=True, check=True).stdout)\n")
    config = Config(run={"seed": 0, "archive_dir": tmp_path / "archive", "name": "tc"},
                    evaluation={"benchmark": "polyglot", "stages": [Stage(tasks=["python__leap"])],
                                "benchmark_options": {"path": str(FIXTURE), "toolchains": [str(toolchain)]}})
    store, run_id = new_run(config)
    with runtime(config, store, run_id) as ctx:
        result = ctx.evaluator.run_task(agent, "python__leap", 1, "n1", "1:0", tmp_path / "out")
    assert result.outcome == "resolved", (tmp_path / "out").rglob("agent_output.txt").__next__().read_text()
