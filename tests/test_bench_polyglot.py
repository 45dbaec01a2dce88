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
    assert bench.task_ids() == ["cpp__reverse-string", "java__hello-world", "javascript__hello-world", "python__beer-song",
                                "python__leap", "python__two-fer", "rust__bowling"]
    assert bench.subsets()["small"] == ["python__beer-song", "rust__bowling"]  # DGM's ids present here


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


COMPILED = [  # exercise, the example's source file, the solution file it replaces, what the host needs
    ("cpp__reverse-string", ".meta/example.cpp", "reverse_string.cpp", shutil.which("cmake") and shutil.which("g++")),
    ("rust__bowling", ".meta/example.rs", "src/lib.rs", _rust_sysroot()),
]


@pytest.mark.parametrize("iid,example,solution,toolchain", COMPILED, ids=[c[0] for c in COMPILED])
def test_compiled_languages_are_graded_for_real(backend, tmp_path, iid, example, solution, toolchain):
    if not toolchain:
        pytest.skip(f"no toolchain on this host for {iid}")
    toolchains = [toolchain] if iid.startswith("rust") else []
    bench = load_benchmark(f"polyglot:{FIXTURE}", toolchains=toolchains)
    for use_example, expected in ((True, "resolved"), (False, "unresolved")):
        repo = tmp_path / f"{iid}-{use_example}"
        bench.prepare_workspace(iid, repo)
        if use_example:
            shutil.copy(FIXTURE / iid.split("__")[0] / "exercises" / "practice" / iid.split("__")[1] / example,
                        repo / solution)
        else:  # the stub, touched so that the patch is not empty
            (repo / solution).write_text((repo / solution).read_text() + "\n")
        result = bench.grade(iid, git(repo, "diff", "HEAD").stdout, backend=backend, timeout=300)
        assert result.outcome == expected, result.test_log[-2000:]


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
    from dgm.config import load_config
    from dgm.run import check_before_running

    config = load_config("experiments/polyglot.yaml", [f"evaluation.benchmark_options.path={FIXTURE}"])
    assert "rust__bowling" in check_before_running(config).task_ids()


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
