"""The synth benchmark: mutation operators on real code, synthesis from a real release end to end,
and the shipped task specifications (fetched from PyPI into the cache when missing, as CI does)."""

import ast
import inspect
import json
import os
import subprocess
import sys
import textwrap
import textwrap as real_module  # a real module with every kind of mutation site

import pytest

from dgm.bench import load_benchmark
from dgm.bench.mutate import OPERATORS, apply_mutations, find_mutations
from dgm.bench.synth import difficulty, excerpt_from_tests
from dgm.bench.synth_suite import (SynthBenchmark, assign_subsets, default_cache_dir, default_spec_dir, fetch,
                                   load_packages, load_rows, summary, synth_package)
from dgm.bench.validate import validate

SNIPPET = textwrap.dedent('''\
    def window(items, size=3, strict=False):
        """Docstring constants (1, 2) are never mutated."""
        out = []
        for i in range(len(items) - size):
            if strict and i > 0:
                out.append(items[i:i + size])
            total = items[0] * 2
            out.append(max(total, size))
        return out
    ''')


def _mutants(source: str, operator: str) -> set[str]:
    """The changed line(s) of every mutant of one operator."""
    lines = set()
    for mutation in find_mutations("m.py", source):
        if mutation.operator == operator:
            mutated = apply_mutations(source, [mutation])
            changed = [b.strip() for a, b in zip(source.splitlines(), mutated.splitlines()) if a != b]
            lines.add(" / ".join(changed) if changed else "<dropped line>")
    return lines


def test_each_operator_changes_exactly_its_tokens():
    assert "if strict and i >= 0:" in _mutants(SNIPPET, "compare_swap")
    assert "for i in range(len(items) + size):" in _mutants(SNIPPET, "arith_swap")
    assert "out.append(items[i:i - size])" in _mutants(SNIPPET, "arith_swap")
    assert "total = items[1] * 2" in _mutants(SNIPPET, "off_by_one")
    assert "for i in range(len(items) - size + 1):" in _mutants(SNIPPET, "off_by_one")
    assert "if not (strict and i > 0):" in _mutants(SNIPPET, "negate_condition")
    assert {"if i > 0:", "if strict:"} <= _mutants(SNIPPET, "drop_condition")
    assert "total = items[0] * 3" in _mutants(SNIPPET, "change_constant")
    assert {"def window(items, size=4, strict=False):", "def window(items, size=3, strict=True):"} \
        <= _mutants(SNIPPET, "change_default")
    assert "out.append(max(size, total))" in _mutants(SNIPPET, "swap_arguments")
    assert "<dropped line>" in _mutants(SNIPPET, "drop_statement")
    # the docstring's constants are not code
    assert not any("Docstring" in line for op in OPERATORS for line in _mutants(SNIPPET, op))


def test_mutations_of_a_real_module_parse_and_revert_cleanly():
    source = inspect.getsource(real_module)
    sites = find_mutations("textwrap.py", source)
    assert {m.operator for m in sites} == set(OPERATORS)
    for mutation in sites[::7]:
        mutated = apply_mutations(source, [mutation])
        ast.parse(mutated)
        assert mutated != source
        # a one-site bug touches one line, or removes one statement's lines
        changed = sum(a != b for a, b in zip(source.splitlines(), mutated.splitlines()))
        assert changed <= 1 or mutation.operator == "drop_statement"
    far = [m for m in sites if m.line > sites[0].line + 50][0]
    both = apply_mutations(source, [sites[0], far])  # two edits apply independently of their order
    assert both == apply_mutations(apply_mutations(source, [far]), [sites[0]])


def test_excerpt_keeps_test_frames_and_drops_the_library_line():
    section = ["tests/test_x.py:12: in test_window", "    assert window([1, 2]) == []",
               "pkg/mod.py:4: in window", "    for i in range(len(items) + size):",
               "E   TypeError: boom"]
    excerpt = excerpt_from_tests(section)
    assert excerpt == ["tests/test_x.py:12: in test_window", "    assert window([1, 2]) == []", "E   TypeError: boom"]


def test_difficulty_counts_lines_hunks_files():
    gold = ("diff --git a/p/a.py b/p/a.py\n--- a/p/a.py\n+++ b/p/a.py\n@@ -1,3 +1,3 @@\n x\n-a\n+b\n"
            "@@ -20,3 +20,3 @@\n y\n-c\n+d\n")
    assert difficulty(gold) == {"lines": 4, "hunks": 2, "files": 1, "level": "multi_hunk"}


@pytest.fixture(scope="module")
def synth_bench():
    """The shipped suite over the cache; fetched (pip, sha256 checked) when the cache lacks an sdist."""
    fetch(default_spec_dir(), default_cache_dir())
    return SynthBenchmark()


def test_shipped_specs_meet_the_benchmark_contract(synth_bench):
    packages = load_packages(default_spec_dir())
    rows = load_rows(default_spec_dir())
    assert len(packages) >= 5 and all(p.license and p.license != "unknown" and p.sha256 for p in packages)
    assert len({p.kind for p in packages}) >= 5
    figures = summary(rows)
    assert figures["multi_share"] >= 0.2
    assert len({r["patch"] for r in rows}) == len(rows)  # duplicates removed
    subsets = synth_bench.subsets()
    assert set(subsets) == {"small", "medium", "heldout"}
    members = [i for ids in subsets.values() for i in ids]
    assert len(members) == len(set(members))  # disjoint
    assert {r["package"] for r in rows if r["instance_id"] in subsets["heldout"]} == {p.name for p in packages}
    assert assign_subsets(rows) == subsets  # reproducible from the rows
    for row in rows:
        assert row["FAIL_TO_PASS"] and row["sdist_sha256"] == {p.name: p.sha256 for p in packages}[row["package"]]


def test_agent_never_sees_the_tests_that_grade_it(synth_bench, tmp_path):
    rows = load_rows(default_spec_dir())
    row = next(r for r in rows if r["difficulty"]["level"] != "single")
    info = synth_bench.prepare_workspace(row["instance_id"], tmp_path / "ws")
    for test_file in row["test_files"]:
        assert not (tmp_path / "ws" / test_file).exists()
    removed = [line[1:].strip() for line in row["patch"].splitlines()
               if line.startswith("-") and not line.startswith("---")]
    assert removed and not any(line and line in info.problem_statement for line in removed)
    assert row["FAIL_TO_PASS"][0] in info.problem_statement


def test_a_sample_of_shipped_tasks_validates(synth_bench, backend):
    rows = load_rows(default_spec_dir())
    sample = [next(r for r in rows if r["difficulty"]["level"] == level)["instance_id"]
              for level in ("single", "multi_hunk")]
    results = validate(synth_bench, sample, backend=backend, workers=2)
    assert {r.instance_id: r.problems for r in results if not r.ok} == {}
    assert isinstance(load_benchmark("synth"), SynthBenchmark)


def test_synthesis_from_a_real_release_end_to_end(tmp_path, backend):
    report = synth_package("inflection==0.5.1", spec_dir=tmp_path, cache=default_cache_dir(), max_tasks=2,
                           backend=backend, workers=2)
    assert report.stats.baseline_tests > 400 and report.valid and not report.invalid
    rows = load_rows(tmp_path)
    assert [r["instance_id"] for r in rows] == sorted(r["instance_id"] for r in report.valid)
    bench = SynthBenchmark(spec_dir=tmp_path)
    for row in rows:
        assert row["license"] == "MIT License" and row["test_files"] == ["test_inflection.py"]
        assert "inflection/__init__.py" in row["patch"] and row["FAIL_TO_PASS"][0] in row["problem_statement"]
        assert "test_patch" not in row  # the release's own test file: rebuilt from the sdist, never stored
        assert bench.test_patch(row["instance_id"]).startswith("diff --git a/test_inflection.py")
    # the CLI lists them from the scratch spec directory (fetch is a no-op for a cached sdist)
    proc = subprocess.run([sys.executable, "-m", "dgm", "tasks", "fetch", "synth", "--spec-dir", str(tmp_path),
                           "--json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["packages"][0]["state"] == "cached"


def test_cli_lists_and_exports_the_suite(synth_bench, tmp_path):
    out = tmp_path / "synth.jsonl"
    proc = subprocess.run([sys.executable, "-m", "dgm", "tasks", "export-swebench", "synth", "--subset", "small",
                           "--out", str(out), "--no-images"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == len(synth_bench.task_ids("small"))
    assert all(r["repo"].startswith("dgm-synth/") and r["dgm_subsets"] == ["small"] for r in rows)
    proc = subprocess.run([sys.executable, "-m", "dgm", "tasks", "list", "synth", "--subset", "heldout"],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 0 and all(i in proc.stdout for i in synth_bench.task_ids("heldout"))


@pytest.mark.docker(images=("eval",))
def test_a_shipped_task_validates_under_docker(synth_bench):
    """The eval image has python3 + pytest only: the packages' tests need nothing else."""
    rows = load_rows(default_spec_dir())
    task = next(r for r in rows if r["src_root"])["instance_id"] if any(r["src_root"] for r in rows) \
        else rows[0]["instance_id"]
    results = validate(synth_bench, [task], backend="docker", workers=1)
    assert results[0].problems == []
