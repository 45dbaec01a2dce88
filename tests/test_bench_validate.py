"""Validation of the whole local suite (runs once per test session, 2 workers) and of a broken task."""

import json
import shutil
import subprocess
import sys

import pytest

from dgm.bench import load_benchmark
from dgm.bench.local import LocalBenchmark
from dgm.bench.validate import validate


def test_every_task_validates(backend):
    bench = load_benchmark("local")
    results = validate(bench, bench.task_ids(), backend=backend, workers=2, timeout=120)
    bad = {r.instance_id: r.problems for r in results if not r.ok}
    assert not bad


def test_broken_task_is_named_with_the_reason(tmp_path):
    root = tmp_path / "bench"
    shutil.copytree(load_benchmark("local").root, root, ignore=shutil.ignore_patterns("__pycache__"))
    task = "structs__structs-13"
    tests_json = root / "tasks" / task / "tests.json"
    tests = json.loads(tests_json.read_text())
    tests["FAIL_TO_PASS"].append("tests/test_intervals.py::test_merge_overlapping")  # passes before gold
    tests_json.write_text(json.dumps(tests))
    proc = subprocess.run([sys.executable, "-m", "dgm", "tasks", "validate", f"local:{root}", "--backend", "local",
                           "--task", task, "--task", "structs__structs-16"],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"FAILED {task}" in proc.stdout and "F2P pass before the gold patch" in proc.stdout
    assert "FAILED structs__structs-16" not in proc.stdout
    assert isinstance(load_benchmark(f"local:{root}"), LocalBenchmark)
