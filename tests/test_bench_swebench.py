"""SWE-bench adapter parts that run without Docker: dataset files, DGM subsets, predictions, errors.
Docker-backed preparation/grading is not exercised here (no daemon on this machine)."""

import json

import pytest

from dgm.bench import load_benchmark
from dgm.bench.swebench import SWEBenchUnavailable, dgm_subset, load_dataset_file, predictions_jsonl

ROW = {"instance_id": "django__django-10973", "repo": "django/django", "base_commit": "abc",
       "problem_statement": "Use subprocess.run in the postgres client", "FAIL_TO_PASS": "[]", "PASS_TO_PASS": "[]"}


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "verified.jsonl"
    path.write_text(json.dumps(ROW) + "\n" + json.dumps(dict(ROW, instance_id="x__y-1")) + "\n")
    return path


def test_dataset_from_jsonl_and_json(dataset, tmp_path):
    bench = load_benchmark("swebench", dataset=dataset)
    assert bench.task_ids() == ["django__django-10973", "x__y-1"]
    assert "subprocess.run" in bench.task_info("django__django-10973").problem_statement
    as_json = tmp_path / "d.json"
    as_json.write_text(json.dumps([ROW]))
    assert len(load_dataset_file(as_json)) == 1


def test_dgm_subsets_shipped():
    assert (len(dgm_subset("small")), len(dgm_subset("medium")), len(dgm_subset("big"))) == (10, 50, 140)
    assert not set(dgm_subset("small")) & set(dgm_subset("medium"))
    with pytest.raises(KeyError, match="huge"):
        dgm_subset("huge")


def test_subset_missing_from_dataset_is_named(dataset):
    with pytest.raises(KeyError, match="not in dataset"):
        load_benchmark("swebench", dataset=dataset).task_ids("small")


def test_predictions_format():
    line = json.loads(predictions_jsonl({"a__b-1": "diff"}).strip())
    assert line == {"instance_id": "a__b-1", "model_name_or_path": "dgm", "model_patch": "diff"}


def test_clear_errors(dataset, tmp_path):
    with pytest.raises(SWEBenchUnavailable, match="needs a dataset"):
        load_benchmark("swebench")
    with pytest.raises(SWEBenchUnavailable, match="not found"):
        load_benchmark("swebench", dataset=tmp_path / "missing.jsonl")
    bad = tmp_path / "bad.json"
    bad.write_text('{"no": "list"}')
    with pytest.raises(ValueError, match="bad.json"):
        load_benchmark("swebench", dataset=bad)
    bench = load_benchmark("swebench", dataset=dataset)
    with pytest.raises(SWEBenchUnavailable, match="Docker image"):
        bench.grade("x__y-1", "diff --git a/x b/x\n", backend="bwrap", timeout=10)
    assert bench.grade("x__y-1", "", backend="docker", timeout=10).outcome == "empty_patch"
    with pytest.raises(KeyError, match="nope"):
        bench.task_info("nope")
