"""SWE-bench log grading without Docker (dgm.bench.swebench_logs), on logs written for these tests."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from dgm.bench.swebench_logs import InstanceError, grade_log, load_instance, parse_pytest_v2

FIXTURES = Path(__file__).parent / "fixtures" / "swebench_logs"

# (instance file, log file, applied, resolved, F2P failures, P2P failures)
CASES = [
    ("django.json", "django_resolved.txt", True, True, [], []),
    ("django.json", "django_failed.txt", True, False,
     ["test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests)"], []),
    ("django.json", "django_apply_failed.txt", False, False, None, None),
    ("pytest.json", "pytest_markers_v5.txt", True, False,
     ["testing/logging/test_reporting.py::test_log_cli_enabled_disabled[True]"], []),
    ("pytest.json", "pytest_no_markers_v2.txt", True, True, [], []),
    ("pytest.json", "pytest_collection_error.txt", True, False,
     ["testing/logging/test_reporting.py::test_log_cli_enabled_disabled[True]",
      "testing/logging/test_formatter.py::test_coloredlogformatter"],
     ["testing/logging/test_reporting.py::test_nothing_logged", "testing/logging/test_reporting.py::test_skipped_case",
      "testing/logging/test_reporting.py::test_xfail_case"]),
    ("pytest.json", "pytest_fake_pass.txt", False, False, None, None),
    ("sympy.json", "sympy_failed.txt", True, False, ["test_immutable"], []),
    ("sphinx.json", "sphinx_tox_color.txt", True, True, [], []),
    ("seaborn.json", "seaborn_verbose.txt", True, True, [], []),
    ("astropy.json", "astropy_truncated_ids.txt", True, True, [], []),
]


def _grade(instance_file, log_file, patch="diff"):
    instance = load_instance(FIXTURES / instance_file)
    return instance["instance_id"], grade_log(instance, (FIXTURES / log_file).read_text(), patch=patch)


@pytest.mark.parametrize("instance_file,log_file,applied,resolved,f2p_fail,p2p_fail", CASES,
                         ids=[c[1] for c in CASES])
def test_grade_fixture_logs(instance_file, log_file, applied, resolved, f2p_fail, p2p_fail):
    iid, report = _grade(instance_file, log_file)
    entry = report[iid]
    assert entry["patch_exists"] and not entry["patch_is_None"]
    assert entry["patch_successfully_applied"] is applied
    assert entry["resolved"] is resolved
    if applied:
        status = entry["tests_status"]
        assert status["FAIL_TO_PASS"]["failure"] == f2p_fail
        assert status["PASS_TO_PASS"]["failure"] == p2p_fail
        assert set(status) == {"FAIL_TO_PASS", "PASS_TO_PASS", "FAIL_TO_FAIL", "PASS_TO_FAIL"}
    else:
        assert "tests_status" not in entry


def test_no_patch_is_reported_as_none():
    iid, report = _grade("django.json", "django_resolved.txt", patch=None)
    assert report[iid]["patch_is_None"] and not report[iid]["resolved"]


def test_skip_counts_as_maintained_for_p2p_but_not_as_a_fix():
    instance = {"instance_id": "x", "repo": "pytest-dev/pytest", "FAIL_TO_PASS": ["t.py::a"], "PASS_TO_PASS": ["t.py::b"]}
    log = ">>>>> Start Test Output\nSKIPPED t.py::a\nSKIPPED t.py::b\n>>>>> End Test Output\n"
    status = grade_log(instance, log)["x"]["tests_status"]
    assert status["FAIL_TO_PASS"]["failure"] == ["t.py::a"]
    assert status["PASS_TO_PASS"]["success"] == ["t.py::b"]


def test_v2_parser_strips_colour_and_keeps_spaced_ids():
    log = "\x1b[32mPASSED\x1b[0m tests/t.py::test_a[x y]\nFAILED tests/t.py::test_b - boom\n"
    assert parse_pytest_v2(log) == {"tests/t.py::test_a[x y]": "PASSED", "tests/t.py::test_b": "FAILED"}


def test_bare_marker_names_are_accepted():
    """Some harness forks print the constants' names (START_TEST_OUTPUT) instead of their values."""
    instance = load_instance(FIXTURES / "pytest.json")
    log = (FIXTURES / "pytest_markers_v5.txt").read_text()
    log = log.replace(">>>>> Start Test Output", "START_TEST_OUTPUT").replace(">>>>> End Test Output", "END_TEST_OUTPUT")
    entry = grade_log(instance, "PASSED testing/logging/test_reporting.py::test_log_cli_enabled_disabled[True]\n" + log)
    # The PASSED line before START_TEST_OUTPUT is outside the test section and must be ignored.
    assert entry[instance["instance_id"]]["tests_status"]["FAIL_TO_PASS"]["failure"] == [
        "testing/logging/test_reporting.py::test_log_cli_enabled_disabled[True]"]


def test_half_marked_log_is_not_applied():
    instance = load_instance(FIXTURES / "pytest.json")
    log = ">>>>> Start Test Output\nPASSED testing/logging/test_formatter.py::test_coloredlogformatter\n"
    assert not grade_log(instance, log)[instance["instance_id"]]["patch_successfully_applied"]


def test_bad_instance_names_the_key(tmp_path):
    path = tmp_path / "inst.json"
    path.write_text(json.dumps({"instance_id": "a", "repo": "r/r", "FAIL_TO_PASS": "not json"}))
    with pytest.raises(InstanceError, match="FAIL_TO_PASS"):
        load_instance(path)
    path.write_text(json.dumps({"instance_id": "a", "repo": "r/r", "FAIL_TO_PASS": []}))
    with pytest.raises(InstanceError, match="PASS_TO_PASS"):
        load_instance(path)


def test_cli_prints_report():
    proc = subprocess.run([sys.executable, "-m", "dgm", "grade", "swebench", "--instance",
                           str(FIXTURES / "django.json"), "--log", str(FIXTURES / "django_failed.txt")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["django__django-11099"]["resolved"] is False


# ---------------------------------------------------------------- conformance with swebench itself

MARKED = [c for c in CASES if c[1] != "pytest_no_markers_v2.txt"]  # swebench 5 needs the markers


@pytest.mark.parametrize("instance_file,log_file", [(c[0], c[1]) for c in MARKED], ids=[c[1] for c in MARKED])
def test_conformance_with_swebench(instance_file, log_file):
    """Our report must match swebench's own grading of the same log (skipped without swebench)."""
    pytest.importorskip("swebench", reason="swebench is not installed (optional extra: pip install -e .[swebench])")
    from swebench.harness.grading import get_eval_report
    from swebench.harness.log_parsers.python import MAP_REPO_TO_PARSER_PY
    from swebench.types import TestSpec

    instance = load_instance(FIXTURES / instance_file)
    spec = TestSpec(instance_id=instance["instance_id"], image="", eval_script_list=[], repo=instance["repo"],
                    version="", FAIL_TO_PASS=instance["FAIL_TO_PASS"], PASS_TO_PASS=instance["PASS_TO_PASS"],
                    log_parser=MAP_REPO_TO_PARSER_PY[instance["repo"]].__name__, eval_type="pass_and_fail")
    theirs = get_eval_report(spec, {"instance_id": instance["instance_id"], "model_patch": "diff"},
                             str(FIXTURES / log_file), include_tests_status=True)[instance["instance_id"]]
    ours = grade_log(instance, (FIXTURES / log_file).read_text(), patch="diff")[instance["instance_id"]]
    for key in ("patch_is_None", "patch_exists", "patch_successfully_applied", "resolved"):
        assert ours[key] == theirs[key], key
    assert ours.get("tests_status") == theirs.get("tests_status")
