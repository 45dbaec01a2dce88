"""Synthesize SWE-bench-format tasks from a released package's own test suite (`dgm tasks synth`).

One stage per function, plain data between them:

    fetch_sdist      NAME==VERSION  -> the sdist in the cache (pip download), its sha256
    extract_sdist    sdist          -> the release tree (repos/<name>-<version>/ in the cache)
    run_tests        tree (+ mutation) -> per-test statuses, in a fresh sandbox (no network)
    screen           candidate mutations (dgm.bench.mutate) -> the ones some tests catch and no
                     other test notices (FAIL_TO_PASS >= 1, every other passing test still passes)
    pair             two caught mutations in different functions or files -> a multi-hunk bug that
                     needs both halves reverted
    build_row        a caught bug -> a SWE-bench row: gold patch = the revert, test patch = the
                     failing tests' files (held back from the agent, applied only at grading),
                     problem statement = the symptom (test name, assertion, traceback excerpt from
                     the test files only; never the changed line)

The base of a task is the release minus its test patch and gold patch, exactly as the local
suite derives it (dgm.bench.local.derive_base), so the rows validate with the same grader.
"""

from __future__ import annotations

import hashlib
import random
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from dgm.prompts import render

from .gitutil import commit_all, copy_source, diff, init_repo
from .local import derive_base
from .mutate import OPERATORS, Mutation, apply_mutations, find_mutations
from .patches import is_test_path, split_patch
from .pytest_log import parse_pytest_log

CREATED_AT = "2024-01-01T00:00:00Z"
MAX_FAIL_TO_PASS = 25  # a bug that breaks more than this is a crash, not an issue someone would file
PAIR_SHARE = 0.3  # of a package's tasks, this share are two-site (multi-hunk or multi-file) bugs
PYTEST = ("PYTEST_DISABLE_PLUGIN_AUTOLOAD=1 PYTHONDONTWRITEBYTECODE=1 "
          "python3 -m pytest -rA --tb=short -p no:cacheprovider")


class SynthError(RuntimeError):
    """Synthesis cannot go on for this package; the message names the package and the step."""


@dataclass(frozen=True)
class PackageSpec:
    """A released package the synth benchmark draws from (one entry of benchmarks/synth/packages.yaml)."""

    name: str
    version: str
    sdist: str = ""  # file name of the sdist
    sha256: str = ""
    license: str = ""
    kind: str = ""  # parsing, data structures, dates, text, numerics...
    src_root: str = ""  # "src" for a src/ layout: on PYTHONPATH when tests run
    tests: tuple[str, ...] = ()  # test paths given to pytest for the full-suite run

    @property
    def repo(self) -> str:
        return f"{self.name}-{self.version}"

    @property
    def slug(self) -> str:
        return re.sub(r"[^a-z0-9]+", "-", self.name.lower()).strip("-")


@dataclass
class TestRun:
    statuses: dict[str, str]
    log: str
    exit_code: int
    timed_out: bool
    seconds: float
    unparsed_failures: bool = False  # pytest counted more failures than the log names (ids with spaces)

    def passing(self) -> set[str]:
        return {t for t, s in self.statuses.items() if s in ("PASSED", "XFAIL")}


@dataclass
class CaughtBug:
    """Mutations that some tests catch while every other passing test still passes."""

    mutations: list[Mutation]
    fail_to_pass: list[str]
    log: str


@dataclass
class SynthStats:
    tried: int = 0
    caught: int = 0
    pairs_tried: int = 0
    pairs_kept: int = 0
    seconds: float = 0.0
    baseline_tests: int = 0
    operators: dict[str, int] = field(default_factory=dict)


# ------------------------------------------------------------------ fetch and extract

def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sdist(name: str, version: str, directory: Path) -> Path:
    """`pip download` the release's sdist (no wheels, no dependencies) into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    before = set(directory.iterdir())
    proc = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", "-q",
                           "-d", str(directory), f"{name}=={version}"], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SynthError(f"{name}=={version}: pip download failed: {(proc.stderr or proc.stdout).strip()[-400:]}")
    wanted = [p for p in directory.iterdir() if _is_sdist_of(p.name, name, version)]
    new = [p for p in wanted if p not in before] or wanted
    if not new:
        raise SynthError(f"{name}=={version}: pip download left no sdist in {directory}")
    return new[0]


def _is_sdist_of(filename: str, name: str, version: str) -> bool:
    wanted = re.sub(r"[-_.]+", "_", f"{name}-{version}".lower())
    stem = re.sub(r"[-_.]+", "_", filename.lower())
    return filename.endswith((".tar.gz", ".zip")) and stem.startswith(wanted + "_")


def extract_sdist(sdist: Path, dest: Path) -> Path:
    """Unpack the sdist's single top-level directory as `dest` (replacing it)."""
    if dest.exists():
        shutil.rmtree(dest)
    with tempfile.TemporaryDirectory(prefix="dgm-sdist-") as tmp:
        with tarfile.open(sdist) as archive:
            archive.extractall(tmp, filter="data")
        tops = list(Path(tmp).iterdir())
        if len(tops) != 1 or not tops[0].is_dir():
            raise SynthError(f"{sdist.name}: expected one top-level directory, found {[t.name for t in tops]}")
        shutil.copytree(tops[0], dest)
    return dest


def detect_layout(tree: Path) -> tuple[str, tuple[str, ...]]:
    """(src_root, test paths) of an unpacked release: src/ layout or not; tests/ or in-package tests."""
    src_root = "src" if (tree / "src").is_dir() else ""
    for candidate in ("tests", "test"):
        if (tree / candidate).is_dir():
            return src_root, (candidate,)
    inside = sorted(str(p.relative_to(tree)) for p in tree.rglob("tests") if p.is_dir() and "." not in p.name)
    if inside:
        return src_root, tuple(inside[:1])
    top = sorted(p.name for p in tree.glob("test_*.py"))
    if top:
        return src_root, tuple(top)
    raise SynthError(f"{tree.name}: the sdist ships no tests (no tests/, test/, */tests or test_*.py)")


def license_of(tree: Path) -> str:
    """The License (or License-Expression / license classifier) field of the sdist's PKG-INFO."""
    info = (tree / "PKG-INFO").read_text(encoding="utf-8", errors="replace") if (tree / "PKG-INFO").exists() else ""
    expression = re.search(r"^License-Expression: (.+)$", info, re.M)
    classifier = re.search(r"^Classifier: License :: OSI Approved :: (.+)$", info, re.M)
    field = re.search(r"^License: (.+)$", info, re.M)
    for match in (expression, classifier, field):
        if match and len(match.group(1)) < 40 and "copyright" not in match.group(1).lower():
            return match.group(1).strip()
    return "unknown"


# ------------------------------------------------------------------ running the tests

def pytest_command(spec: PackageSpec, paths: list[str]) -> str:
    env = f"PYTHONPATH={spec.src_root} " if spec.src_root else ""
    return f"{env}{PYTEST} {' '.join(paths)}"


def run_tests(tree: Path, spec: PackageSpec, paths: list[str], *, backend: str, timeout: float = 120) -> TestRun:
    """The given test paths in a fresh sandbox over `tree`; statuses parsed as the grader parses them."""
    from dgm.sandbox import open_sandbox
    from dgm.sandbox.base import SandboxSpec

    with open_sandbox(backend, SandboxSpec(source=tree, labels={"purpose": "synth"})) as sandbox:
        res = sandbox.exec(["bash", "-c", pytest_command(spec, paths)], timeout=timeout)
    statuses = parse_pytest_log(res.output)
    named = sum(s in ("FAILED", "ERROR") for s in statuses.values())
    counted = sum(int(n) for n in re.findall(r"(\d+) (?:failed|errors?)\b", _last_line(res.output)))
    return TestRun(statuses, res.output, res.exit_code, res.timed_out, res.duration_s, counted > named)


def _last_line(log: str) -> str:
    lines = [line for line in log.strip().splitlines() if line.strip()]
    return lines[-1] if lines else ""


# ------------------------------------------------------------------ candidates and screening

def source_files(tree: Path, spec: PackageSpec) -> list[str]:
    """The package's own modules (no tests, setup scripts, docs or generated version files)."""
    root = tree / spec.src_root if spec.src_root else tree
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(tree).as_posix()
        parts = path.relative_to(root).parts
        if len(parts) < 2 and not _single_module(path, tree):
            continue  # setup.py, conftest.py, noxfile.py...
        if is_test_path(rel) or any(p in ("docs", "doc", "examples", "benchmarks") for p in parts) \
                or path.name in ("version.py", "_version.py", "setup.py", "conftest.py", "versioneer.py"):
            continue
        files.append(rel)
    return files


def _single_module(path: Path, tree: Path) -> bool:
    """A one-module distribution (parse.py) lives at the top level."""
    return path.parent == tree and path.name not in ("setup.py", "conftest.py", "noxfile.py") \
        and not path.name.startswith("test")


def candidates(tree: Path, spec: PackageSpec, seed: int) -> list[Mutation]:
    """Every mutation site, shuffled and interleaved by operator so any prefix mixes the operators."""
    by_operator: dict[str, list[Mutation]] = {op: [] for op in OPERATORS}
    for rel in source_files(tree, spec):
        for mutation in find_mutations(rel, (tree / rel).read_text(encoding="utf-8")):
            by_operator[mutation.operator].append(mutation)
    rng = random.Random(f"{spec.repo}:{seed}")
    for sites in by_operator.values():
        rng.shuffle(sites)
    queues = [sites for sites in by_operator.values() if sites]
    ordered = []
    while queues:
        for sites in list(queues):
            ordered.append(sites.pop())
            if not sites:
                queues.remove(sites)
    return ordered


def mutated_tree(tree: Path, mutations: list[Mutation], dest: Path) -> Path:
    copy_source(tree, dest)
    for path in {m.path for m in mutations}:
        source = (tree / path).read_text(encoding="utf-8")
        (dest / path).write_text(apply_mutations(source, [m for m in mutations if m.path == path]), encoding="utf-8")
    return dest


def screen(tree: Path, spec: PackageSpec, mutations: list[Mutation], baseline: TestRun, *,
           backend: str) -> CaughtBug | None:
    """Run the whole suite with the mutations in; a bug if 1..MAX tests fail and nothing else changes."""
    with tempfile.TemporaryDirectory(prefix="dgm-synth-") as tmp:
        run = run_tests(mutated_tree(tree, mutations, Path(tmp) / "repo"), spec, list(spec.tests), backend=backend)
    if run.timed_out or run.unparsed_failures:
        return None
    failing = failing_tests(baseline, run)
    if failing is None or not 1 <= len(failing) <= MAX_FAIL_TO_PASS:
        return None
    return CaughtBug(list(mutations), failing, run.log)


def failing_tests(baseline: TestRun, run: TestRun) -> list[str] | None:
    """Tests that passed on the release and fail with the mutation; None when that cannot be told.

    A test missing from the mutated run failed if its file no longer collects; otherwise its id changed
    (ids built from values the mutated code computes): fine if it passes, unattributable if it fails.
    """
    broken_files = {t for t, s in run.statuses.items() if s == "ERROR" and "::" not in t}
    failing = []
    for test in sorted(baseline.passing()):
        status = run.statuses.get(test)
        if status in ("FAILED", "ERROR") or (status is None and test.split("::")[0] in broken_files):
            failing.append(test)
    renamed_failures = [t for t, s in run.statuses.items() if s in ("FAILED", "ERROR") and "::" in t
                        and t not in baseline.statuses]
    return None if renamed_failures else failing


def far_apart(a: Mutation, b: Mutation) -> bool:
    """Two sites whose reverts land in separate hunks (git's 3 lines of context on either side)."""
    return a.path != b.path or abs(a.line - b.line) > 8


def pair(first: CaughtBug, second: CaughtBug, tree: Path, spec: PackageSpec, baseline: TestRun, *,
         backend: str) -> CaughtBug | None:
    """Both mutations at once; kept only if tests of each half still fail (each hunk is needed)."""
    both = screen(tree, spec, first.mutations + second.mutations, baseline, backend=backend)
    if both is None:
        return None
    failing = set(both.fail_to_pass)
    if failing.isdisjoint(first.fail_to_pass) or failing.isdisjoint(second.fail_to_pass):
        return None
    return both


def synthesize(spec: PackageSpec, tree: Path, *, max_tasks: int, backend: str, seed: int = 0,
               progress=None) -> tuple[list[CaughtBug], SynthStats, set[str]]:
    """Caught single bugs and pairs for one package (about PAIR_SHARE of `max_tasks` are pairs), and
    the tests that pass on the release."""
    started = time.monotonic()
    stats = SynthStats()
    baseline = run_tests(tree, spec, list(spec.tests), backend=backend)
    stats.baseline_tests = len(baseline.passing())
    if not baseline.passing():
        raise SynthError(f"{spec.repo}: no test passes on the release in the sandbox ({backend}); "
                         f"last lines: {' | '.join(baseline.log.strip().splitlines()[-3:])}")
    want_pairs = round(max_tasks * PAIR_SHARE)
    want_caught = max_tasks - want_pairs + 2 * want_pairs
    caught, seen_lines = [], set()
    for mutation in candidates(tree, spec, seed):
        if len(caught) >= want_caught or stats.tried >= 6 * max_tasks + 20:
            break
        if (mutation.path, mutation.line) in seen_lines:
            continue  # one bug per line: two operators on one line make near-duplicate tasks
        stats.tried += 1
        bug = screen(tree, spec, [mutation], baseline, backend=backend)
        if bug is not None:
            seen_lines.add((mutation.path, mutation.line))
            caught.append(bug)
            stats.operators[mutation.operator] = stats.operators.get(mutation.operator, 0) + 1
        if progress:
            progress(f"{spec.repo}: tried {stats.tried}, caught {len(caught)}")
    stats.caught = len(caught)
    bugs = _pairs(caught, want_pairs, tree, spec, baseline, backend, stats, progress)
    stats.seconds = time.monotonic() - started
    return bugs, stats, baseline.passing()


def _pairs(caught, want_pairs, tree, spec, baseline, backend, stats, progress) -> list[CaughtBug]:
    """Pair caught bugs (other files first); the ones not used in a pair stay single bugs."""
    pool, pairs = list(caught), []
    while len(pairs) < want_pairs and len(pool) >= 2:
        first = pool.pop(0)
        partners = sorted((b for b in pool if far_apart(first.mutations[0], b.mutations[0])),
                          key=lambda b: b.mutations[0].path == first.mutations[0].path)
        if not partners:
            pool.append(first)
            break
        second = partners[0]
        stats.pairs_tried += 1
        both = pair(first, second, tree, spec, baseline, backend=backend)
        if both is None:
            pool.append(first)  # both stay available as single bugs
            if stats.pairs_tried > 3 * want_pairs:
                break
            continue
        pool.remove(second)
        pairs.append(both)
        if progress:
            progress(f"{spec.repo}: pairs {len(pairs)}/{want_pairs}")
    stats.pairs_kept = len(pairs)
    singles = pool[: max(0, len(caught) - 2 * len(pairs))]
    return singles + pairs


# ------------------------------------------------------------------ task rows

def build_row(spec: PackageSpec, tree: Path, bug: CaughtBug, baseline_passing: set[str]) -> dict:
    """A SWE-bench row (plus dgm's fields) for one caught bug."""
    test_files = sorted({t.split("::")[0] for t in bug.fail_to_pass})
    files = sorted({m.path for m in bug.mutations})
    with tempfile.TemporaryDirectory(prefix="dgm-synth-row-") as tmp:
        repo = mutated_tree(tree, bug.mutations, Path(tmp) / "buggy")
        for path in test_files:
            (repo / path).unlink()
        init_repo(repo)
        commit_all(repo, "buggy")
        for path in files + test_files:  # back to the release: the diff is the revert plus the held-back tests
            shutil.copyfile(tree / path, repo / path)
        gold, test_patch = diff(repo, *files), diff(repo, *test_files)
        instance_id = f"{spec.slug}__{spec.slug}-{spec.version}-{hashlib.sha256(gold.encode()).hexdigest()[:8]}"
        base_commit = derive_base(tree, test_patch, gold, Path(tmp) / "base", f"{instance_id}: base")
    pass_to_pass = sorted(t for t in baseline_passing if t.split("::")[0] in test_files and t not in bug.fail_to_pass)
    return {
        "instance_id": instance_id,
        "repo": spec.repo,
        "base_commit": base_commit,
        "patch": gold,
        "test_patch": test_patch,
        "problem_statement": problem_statement(spec, bug),
        "FAIL_TO_PASS": bug.fail_to_pass,
        "PASS_TO_PASS": pass_to_pass,
        "version": spec.version,
        "created_at": CREATED_AT,
        "package": spec.name,
        "sdist_sha256": spec.sha256,
        "license": spec.license,
        "operators": [m.operator for m in bug.mutations],
        "files": files,
        "test_files": test_files,
        "src_root": spec.src_root,
        "difficulty": difficulty(gold),
    }


def held_back_patch(tree: Path, test_files: list[str]) -> str:
    """The test patch: the release's own test files, added (what the task's base lacks)."""
    with tempfile.TemporaryDirectory(prefix="dgm-synth-tests-") as tmp:
        repo = Path(tmp)
        init_repo(repo)
        commit_all(repo, "empty")
        for path in test_files:
            (repo / path).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tree / path, repo / path)
        return diff(repo, *test_files)


def difficulty(gold: str) -> dict:
    """Lines changed, hunks and files of the gold patch, and the stratum they put the task in."""
    chunks = split_patch(gold)
    hunks = sum(len(re.findall(r"^@@ ", c.text, re.M)) for c in chunks)
    lines = sum(1 for c in chunks for line in c.text.splitlines()
                if line[:1] in "+-" and not line.startswith(("+++", "---")))
    level = "multi_file" if len(chunks) > 1 else "multi_hunk" if hunks > 1 else "single"
    return {"lines": lines, "hunks": hunks, "files": len(chunks), "level": level}


# ------------------------------------------------------------------ problem statements

_FAILURE_HEADER = re.compile(r"^_{3,} (.+?) _{3,}$")
_FRAME = re.compile(r"^(\S+\.py):(\d+): ")


def problem_statement(spec: PackageSpec, bug: CaughtBug) -> str:
    """The symptom in the words of a bug report: which tests fail, their assertion, a traceback excerpt
    limited to the test files (frames in the package's code would point at the changed line)."""
    failures = failure_sections(bug.log)
    shown = []
    for test_id in bug.fail_to_pass[:3]:
        name = test_id.split("::", 1)[1] if "::" in test_id else test_id
        section = failures.get(name.replace("::", "."), failures.get(name.split("::")[-1], []))
        shown.append({"test": test_id, "excerpt": "\n".join(excerpt_from_tests(section))})
    return render("synth_problem_statement.md", package=spec.name, version=spec.version, failures=shown,
                  more=max(0, len(bug.fail_to_pass) - len(shown)), total=len(bug.fail_to_pass))


def failure_sections(log: str) -> dict[str, list[str]]:
    """pytest's FAILURES section split per test (title as pytest prints it: test_x or TestC.test_x)."""
    sections: dict[str, list[str]] = {}
    current = None
    in_failures = False
    for line in log.splitlines():
        if re.match(r"^=+ (FAILURES|ERRORS) =+$", line):
            in_failures = True
            continue
        if in_failures and re.match(r"^=+ .* =+$", line):
            in_failures = False
        if not in_failures:
            continue
        header = _FAILURE_HEADER.match(line)
        if header:
            current = sections.setdefault(header.group(1).strip(), [])
            continue
        if current is not None:
            current.append(line)
    return sections


def excerpt_from_tests(section: list[str], limit: int = 14) -> list[str]:
    """Frames from test files (header + code) and the exception lines; package frames are dropped."""
    kept, in_test_frame = [], False
    for line in section:
        frame = _FRAME.match(line)
        if frame:
            in_test_frame = is_test_path(frame.group(1))
            if in_test_frame:
                kept.append(line)
            continue
        if line.startswith("E "):
            kept.append(line)
        elif in_test_frame and line.strip() and not line.startswith("---"):
            kept.append(line)
    errors = [line for line in kept if line.startswith("E ")]
    if len(kept) > limit:
        kept = [line for line in kept if not line.startswith("E ")][: max(2, limit - min(len(errors), 8))] + errors[:8]
    return kept
