"""Polyglot graded for real in dgm's polyglot image (Debian's g++/cmake, rustc/cargo, golang, nodejs,
JDK; `dgm sandbox build-image polyglot`) on the docker backend. Languages whose test tooling cannot be
had offline (Exercism's JavaScript needs jest from npm, Java a Gradle download) are an `error` that
says why, never `unresolved`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.bench.gitutil import git
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import SandboxSpec

FIXTURE = Path(__file__).parent / "fixtures" / "polyglot"
pytestmark = [pytest.mark.docker(images=("polyglot",)), pytest.mark.timeout(900)]

GRADED = [  # exercise, the example's file, the solution file it replaces
    ("python__leap", ".meta/example.py", "leap.py"),
    ("cpp__reverse-string", ".meta/example.cpp", "reverse_string.cpp"),
    ("rust__bowling", ".meta/example.rs", "src/lib.rs"),
]


@pytest.fixture(scope="module")
def bench():
    return load_benchmark(f"polyglot:{FIXTURE}")


def test_the_image_has_the_toolchains_and_the_agents_packages():
    with open_sandbox("docker", SandboxSpec(), image="polyglot") as sb:
        r = sb.exec("g++ --version && cmake --version && cargo --version && go version && node --version "
                    "&& javac -version && python -c 'import openai, pytest'", timeout=120)
    assert r.exit_code == 0, r.output
    assert "cargo 1." in r.output and "go version go1." in r.output and "javac " in r.output


@pytest.mark.parametrize("iid,example,solution", GRADED, ids=[g[0] for g in GRADED])
def test_languages_are_graded_for_real(bench, tmp_path, iid, example, solution):
    lang, exercise = iid.split("__")
    for use_example, expected in ((True, "resolved"), (False, "unresolved")):
        repo = tmp_path / f"{iid}-{use_example}"
        bench.prepare_workspace(iid, repo)
        if use_example:
            shutil.copy(FIXTURE / lang / "exercises" / "practice" / exercise / example, repo / solution)
        else:  # the stub, touched so that the patch is not empty
            (repo / solution).write_text((repo / solution).read_text() + "\n")
        result = bench.grade(iid, git(repo, "diff", "HEAD").stdout, backend="docker", timeout=600)
        assert result.outcome == expected, result.test_log[-2000:]


def test_tooling_that_cannot_be_had_offline_is_an_error(bench):
    example = FIXTURE / "javascript" / "exercises" / "practice" / "hello-world" / ".meta" / "proof.ci.js"
    patch = ("--- a/hello-world.js\n+++ b/hello-world.js\n@@ -1,3 +1 @@\n-export const hello = () => {\n"
             "-  throw new Error('Remove this line and implement the function');\n-};\n+" + example.read_text())
    result = bench.grade("javascript__hello-world", patch, backend="docker", timeout=300)
    assert result.outcome == "error" and "npm" in result.reason, result.test_log[-1500:]
    patch = ("--- a/src/main/java/Greeter.java\n+++ b/src/main/java/Greeter.java\n@@ -2,3 +2,3 @@\n"
             "     String getGreeting() {\n-        return \"Goodbye, Mars!\";\n+        return \"Hello, World!\";\n     }\n")
    result = bench.grade("java__hello-world", patch, backend="docker", timeout=300)
    assert result.outcome == "error" and "Gradle distribution" in result.reason, result.test_log[-1500:]
