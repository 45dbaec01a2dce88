"""The offline suite exported as a SWE-bench dataset (dgm/bench/swebench_export.py), its images built
here, graded by the installed swebench harness (real make_test_spec, real run_instance, real daemon)."""

from __future__ import annotations

import json

import pytest

from dgm.bench import load_benchmark, swebench_export
from dgm.sandbox.docker import _client

TASKS = ["confparse__confparse-11", "textkit__textkit-14"]


@pytest.fixture(scope="module")
def local():
    return load_benchmark("local")


def test_rows_are_what_the_harness_reads(local):
    from swebench.harness.utils import make_test_spec

    row = swebench_export.export_row(local, TASKS[0])
    task = local.task(TASKS[0])
    assert row["image"] == "sweb.eval.x86_64.confparse__confparse-11:latest"
    assert json.loads(row["FAIL_TO_PASS"]) == task.fail_to_pass and row["patch"] == local.gold_patch(TASKS[0])
    assert row["eval_script"].startswith("#!/bin/bash\nsource /opt/miniconda3/bin/activate\nconda activate testbed\n")
    assert "rc=$?" not in row["eval_script"] and "small" in row["dgm_subsets"]
    spec = make_test_spec(row)
    assert spec.image == row["image"] and spec.log_parser == "parse_log_pytest"
    # the harness records the status of the test command itself, right after it
    lines = spec.eval_script_list
    end = lines.index('echo ">>>>> End Test Output"')
    assert lines[end - 1] == "SWEBENCH_TEST_EXIT_CODE=$?" and "python3 -m pytest" in lines[end - 2]


def test_an_eval_script_of_another_shape_is_refused_by_name(local):
    with pytest.raises(ValueError, match="task t1: eval.sh does not end with the expected exit-status lines"):
        swebench_export.eval_script("t1", "#!/bin/bash\necho hi\n")


@pytest.fixture(scope="module")
def exported(local, tmp_path_factory):
    """Two exported instances with their images (kept when unchanged: a second build is a no-op)."""
    out = tmp_path_factory.mktemp("swebench") / "local.jsonl"
    rows = swebench_export.export_rows(local, TASKS)
    swebench_export.write_dataset(rows, out)
    swebench_export.build_images(local, rows)
    return out, rows


@pytest.mark.docker(images=("eval",))
def test_images_are_laid_out_like_swebench_ones(exported, local):
    _, rows = exported
    again = swebench_export.build_images(local, rows)
    assert not any(image.built for image in again)
    client = _client()
    script = ("source /opt/miniconda3/bin/activate && conda activate testbed && cd /testbed && "
              "git rev-parse HEAD && command -v python && python -m pytest --version")
    out = client.containers.run(rows[0]["image"], ["/bin/bash", "-c", script], remove=True, network_mode="none",
                                user="root").decode()
    lines = out.split()
    assert lines[0] == rows[0]["base_commit"] and lines[1] == "/opt/miniconda3/envs/testbed/bin/python"
    assert client.images.get(swebench_export.env_image_name())


@pytest.mark.docker(images=("eval",))
def test_the_harness_run_instance_grades_the_exported_instances(exported, tmp_path, monkeypatch):
    """swebench's own pipeline: make_test_spec -> run_instance -> report; gold resolves, a wrong patch does not."""
    from swebench.harness import run_evaluation
    from swebench.harness.utils import make_test_spec

    monkeypatch.chdir(tmp_path)  # run_instance writes logs/ under the working directory
    _, rows = exported
    for row in rows:
        spec = make_test_spec(row)
        for name, patch, resolved in (("gold", row["patch"], True), ("wrong", swebench_export.WRONG_PATCH, False)):
            pred = {"instance_id": row["instance_id"], "model_name_or_path": "dgm-test", "model_patch": patch}
            result = run_evaluation.run_instance(spec, pred, _client(), f"dgm-test-{name}", timeout=300)
            assert result is not None, (tmp_path / "logs").glob("**/run_instance.log")
            report = result[1][row["instance_id"]]
            assert report["patch_successfully_applied"] and report["resolved"] is resolved, (name, report)


@pytest.mark.docker(images=("eval",))
def test_dgm_validates_the_dataset_through_the_harness_like_the_local_suite(exported, local):
    """`dgm tasks validate swebench:FILE`: gold / empty / wrong through the benchmark's grading (the harness),
    each verdict and test status the same as the local grading of the same patch."""
    from dgm.sandbox import default_backend

    path, rows = exported
    bench = load_benchmark(f"swebench:{path}")
    assert bench.task_ids("small") == [t for t in TASKS if t in local.task_ids("small")]
    for row in rows:
        result = swebench_export.validate_with_harness(bench, row["instance_id"], timeout=300, local=local,
                                                       local_backend=default_backend())
        assert result.ok, result.problems
        assert result.outcomes == {"gold": "resolved", "empty": "empty_patch", "wrong": "unresolved"}
