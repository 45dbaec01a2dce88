"""SWE-bench adapter: dataset files, DGM subsets, predictions, errors, and grading through the installed
swebench harness with a mocked Docker client (see the section below)."""

import io
import json
import tarfile
import threading
import time
from unittest import mock

import docker
import pytest
import swebench
from swebench.harness import run_evaluation

from dgm.bench import load_benchmark
from dgm.bench import swebench as swebench_adapter
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


# ---------------------------------------------------------------- grading through the real swebench harness
#
# These tests call the installed swebench's real make_test_spec, run_instance, copy_to_container,
# exec_run_with_timeout and get_eval_report. Only Docker is replaced: a unittest.mock client whose
# container answers `git apply` and "runs" /eval.sh by streaming a scripted test log, and the harness's
# cleanup_container (it shells out to the docker CLI). Real containers: the docker helper's end-to-end test.

HARNESS_ROW = {
    "instance_id": "django__django-11099", "repo": "django/django", "version": "3.0", "base_commit": "abc",
    "problem_statement": "UsernameValidator allows a trailing newline",
    "image": "swebench/sweb.eval.x86_64.django_1776_django-11099:latest",
    "FAIL_TO_PASS": json.dumps(["test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)"]),
    "PASS_TO_PASS": json.dumps(["test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest)"]),
    "log_parser": "parse_log_django", "eval_type": "pass_and_fail",
    "eval_script": "#!/bin/bash\nset -uxo pipefail\ncd /testbed\n: '>>>>> Start Test Output'\n"
                   "./tests/runtests.py auth_tests.test_validators\n: '>>>>> End Test Output'\n",
}
PASSING_LOG = (">>>>> Start Test Output\n"
               "test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests) ... ok\n"
               "test_help_text (auth_tests.test_validators.UserAttributeSimilarityValidatorTest) ... ok\n"
               ">>>>> End Test Output\n>>>>> Test Exit Code: 0\n")
FAILING_LOG = PASSING_LOG.replace("UsernameValidatorsTests) ... ok", "UsernameValidatorsTests) ... FAIL").replace(
    "Exit Code: 0", "Exit Code: 1")
MODEL_PATCH = ("diff --git a/django/contrib/auth/validators.py b/django/contrib/auth/validators.py\n"
               "--- a/django/contrib/auth/validators.py\n+++ b/django/contrib/auth/validators.py\n"
               "@@ -1 +1 @@\n-    regex = r'^[\\w.@+-]+$'\n+    regex = r'\\A[\\w.@+-]+\\Z'\n"
               "diff --git a/tests/auth_tests/test_validators.py b/tests/auth_tests/test_validators.py\n"
               "--- a/tests/auth_tests/test_validators.py\n+++ b/tests/auth_tests/test_validators.py\n"
               "@@ -1 +1 @@\n-old\n+new\n")


class FakeDocker:
    """A docker client mock: records the image asked for, container names and files copied in."""

    def __init__(self, test_log: str = PASSING_LOG, applies: bool = True, hang_s: float = 0):
        self.images, self.names, self.files = [], [], {}
        self.client = mock.MagicMock(name="docker_client")
        self.client.images.get.side_effect = self.images.append
        self.client.containers.get.side_effect = docker.errors.NotFound("none")
        self.client.containers.create.side_effect = self._create
        self.test_log, self.applies, self.hang_s = test_log, applies, hang_s

    def _create(self, image, name, **_kw):
        self.names.append(name)
        container = mock.MagicMock(name="container")
        container.id, container.name = f"cid-{len(self.names)}", name
        container.exec_run.side_effect = self._exec_run
        container.put_archive.side_effect = self._put_archive
        container.client.api.exec_create.return_value = {"Id": "exec-1"}
        container.client.api.exec_start.side_effect = lambda *_a, **_k: self._stream()
        container.client.api.exec_inspect.return_value = {"Pid": 4242}
        return container

    def _exec_run(self, cmd, **_kw):
        text = cmd if isinstance(cmd, str) else " ".join(cmd)
        ok = self.applies or not ("git apply" in text or "patch --batch" in text)
        return mock.Mock(exit_code=0 if ok else 1, output=b"" if ok else b"error: patch failed")

    def _put_archive(self, path, data):
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            for member in tar.getmembers():
                self.files[f"{path.rstrip('/')}/{member.name}"] = tar.extractfile(member).read().decode()
        return True

    def _stream(self):
        if self.hang_s:
            threading.Event().wait(self.hang_s)
        yield self.test_log.encode()


@pytest.fixture
def harness_bench(tmp_path, monkeypatch):
    monkeypatch.setattr(run_evaluation, "cleanup_container", lambda *a, **k: None)  # the docker CLI: not mocked
    path = tmp_path / "verified.jsonl"
    path.write_text(json.dumps(HARNESS_ROW) + "\n")

    def make(fake: FakeDocker):
        return load_benchmark("swebench", dataset=path, docker_client=fake.client)
    return make


def test_grading_calls_the_installed_run_instance_and_reads_its_report(harness_bench, tmp_path):
    fake = FakeDocker(PASSING_LOG)
    result = harness_bench(fake).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker", timeout=60,
                                       log_dir=tmp_path / "logs")
    assert result.outcome == "resolved", result.reason
    iid = HARNESS_ROW["instance_id"]
    assert result.report == json.loads((tmp_path / "logs" / "report.json").read_text())  # the harness's own file
    assert result.report[iid]["tests_status"]["FAIL_TO_PASS"]["success"] == json.loads(HARNESS_ROW["FAIL_TO_PASS"])
    assert "UsernameValidatorsTests) ... ok" in result.test_log
    # the image is the one the harness's TestSpec names (the dataset row's), nothing derived by dgm
    assert fake.images == [HARNESS_ROW["image"]]
    assert fake.client.containers.create.call_args.kwargs["image"] == HARNESS_ROW["image"]
    assert harness_bench(fake).agent_workspace(iid).image == HARNESS_ROW["image"]


def test_test_file_hunks_are_stripped_before_the_harness_sees_the_patch(harness_bench):
    fake = FakeDocker(FAILING_LOG)
    result = harness_bench(fake).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker", timeout=60)
    assert result.outcome == "unresolved"
    assert result.stripped_files == ["tests/auth_tests/test_validators.py"]
    applied = fake.files["/tmp/patch.diff"]
    assert "django/contrib/auth/validators.py" in applied and "tests/auth_tests" not in applied
    tests_only = MODEL_PATCH[MODEL_PATCH.index("diff --git a/tests"):]
    assert harness_bench(fake).grade(HARNESS_ROW["instance_id"], tests_only, backend="docker",
                                     timeout=60).outcome == "empty_patch"


def test_each_grading_gets_its_own_run_id(harness_bench):
    """Two gradings of one instance in the same second: with a shared run id the harness would return
    the first report for the second patch (and reuse the container name)."""
    first, second = FakeDocker(PASSING_LOG), FakeDocker(FAILING_LOG)
    assert harness_bench(first).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker",
                                      timeout=60).outcome == "resolved"
    assert harness_bench(second).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker",
                                       timeout=60).outcome == "unresolved"
    assert first.names[0] != second.names[0]


def test_a_patch_that_does_not_apply_and_a_timeout(harness_bench):
    result = harness_bench(FakeDocker(applies=False)).grade(HARNESS_ROW["instance_id"], MODEL_PATCH,
                                                            backend="docker", timeout=60)
    assert (result.outcome, result.reason) == ("error", "model patch does not apply")
    assert not result.report[HARNESS_ROW["instance_id"]]["patch_successfully_applied"]
    started = time.monotonic()
    result = harness_bench(FakeDocker(hang_s=3)).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker",
                                                       timeout=1)
    assert result.outcome == "timeout" and time.monotonic() - started < 3


def test_unsupported_harness_version_and_incomplete_rows_are_named(harness_bench, monkeypatch, tmp_path):
    monkeypatch.setattr(swebench, "__version__", "4.1.0")
    with pytest.raises(SWEBenchUnavailable, match=r"swebench 4\.1\.0 is installed.*swebench 5"):
        harness_bench(FakeDocker()).grade(HARNESS_ROW["instance_id"], MODEL_PATCH, backend="docker", timeout=60)
    monkeypatch.undo()
    path = tmp_path / "old.jsonl"
    path.write_text(json.dumps(ROW) + "\n")  # a pre-swebench-5 row: no image, eval_script, log_parser...
    bench = load_benchmark("swebench", dataset=path, docker_client=FakeDocker().client)
    with pytest.raises(SWEBenchUnavailable, match="lacks image, version, log_parser, eval_type, eval_script"):
        bench.grade(ROW["instance_id"], MODEL_PATCH, backend="docker", timeout=60)
    with pytest.raises(SWEBenchUnavailable, match="has no 'image'"):
        bench.agent_workspace(ROW["instance_id"])
    assert swebench_adapter.new_run_id() != swebench_adapter.new_run_id()
