"""SWE-bench log grading without Docker (dgm.bench.swebench_logs) against the installed swebench harness.

Every log shape the harness's `get_eval_report` distinguishes is graded twice, by us and by the real
swebench function (no mock: the `swebench` extra is installed here and in CI), and the two per-instance
reports must be equal key for key. The fixture logs under fixtures/swebench_logs are hand-written in the
shape of real harness output; the inline shapes below are the edge cases.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from swebench.harness.grading import get_eval_report
from swebench.harness.utils import make_test_spec

from dgm.bench.swebench_logs import InstanceError, grade_log, load_instance, parse_pytest_v2

FIXTURES = Path(__file__).parent / "fixtures" / "swebench_logs"
START, END = ">>>>> Start Test Output", ">>>>> End Test Output"
PYTEST = {"instance_id": "pytest-dev__pytest-5227", "repo": "pytest-dev/pytest",
          "FAIL_TO_PASS": ["testing/test_a.py::test_fix"], "PASS_TO_PASS": ["testing/test_a.py::test_old"]}
DJANGO = {"instance_id": "django__django-11099", "repo": "django/django",
          "FAIL_TO_PASS": ["test_fix (app.tests.T)"], "PASS_TO_PASS": ["test_old (app.tests.T)"]}


def theirs(instance: dict, log: str, tmp_path: Path, patch: str | None = "diff") -> dict:
    """The installed harness's report for `log`; the TestSpec comes from swebench's own make_test_spec."""
    parser = instance.get("log_parser") or {
        "django/django": "parse_log_django", "sympy/sympy": "parse_log_sympy", "mwaskom/seaborn": "parse_log_seaborn",
        "astropy/astropy": "parse_log_astropy", "sphinx-doc/sphinx": "parse_log_sphinx"}.get(instance["repo"],
                                                                                              "parse_log_pytest")
    row = {**instance, "image": "img", "version": "1.0", "eval_script": "#!/bin/bash\necho", "log_parser": parser,
           "eval_type": instance.get("eval_type") or "pass_and_fail"}
    path = tmp_path / "test_output.txt"
    path.write_text(log)
    prediction = {"instance_id": instance["instance_id"], "model_name_or_path": "dgm", "model_patch": patch}
    return get_eval_report(make_test_spec(row), prediction, str(path), include_tests_status=True)


def both(instance: dict, log: str, tmp_path: Path, patch: str | None = "diff") -> dict:
    """Our report, after checking it equals the harness's."""
    ours = grade_log(instance, log, patch=patch)
    assert ours == theirs(instance, log, tmp_path, patch)
    return ours[instance["instance_id"]]


def marked(body: str, exit_code: int | None = None) -> str:
    code = "" if exit_code is None else f">>>>> Test Exit Code: {exit_code}\n"
    return f"+ pytest -rA\n{START}\n{body}\n{END}\n{code}"


# ---------------------------------------------------------------- the fixture logs (real harness shape)

# (instance file, log file, applied, resolved)
CASES = [
    ("django.json", "django_resolved.txt", True, True),
    ("django.json", "django_failed.txt", True, False),
    ("django.json", "django_apply_failed.txt", False, False),
    ("pytest.json", "pytest_markers_v5.txt", True, False),
    ("pytest.json", "pytest_no_markers_v2.txt", False, False),  # the harness needs both markers
    ("pytest.json", "pytest_collection_error.txt", True, False),
    ("pytest.json", "pytest_fake_pass.txt", False, False),
    ("sympy.json", "sympy_failed.txt", True, False),
    ("sphinx.json", "sphinx_tox_color.txt", True, True),
    ("seaborn.json", "seaborn_verbose.txt", True, True),
    ("astropy.json", "astropy_truncated_ids.txt", True, True),
]


@pytest.mark.parametrize("instance_file,log_file,applied,resolved", CASES, ids=[c[1] for c in CASES])
def test_fixture_logs_match_the_harness(tmp_path, instance_file, log_file, applied, resolved):
    instance = load_instance(FIXTURES / instance_file)
    entry = both(instance, (FIXTURES / log_file).read_text(), tmp_path)
    assert (entry["patch_successfully_applied"], entry["resolved"]) == (applied, resolved)


# ---------------------------------------------------------------- every log shape the harness handles


def test_no_patch(tmp_path):
    entry = both(PYTEST, marked("PASSED testing/test_a.py::test_fix"), tmp_path, patch=None)
    assert entry["patch_is_None"] and not entry["patch_exists"] and "tests_status" not in entry


@pytest.mark.parametrize("marker", [">>>>> Patch Apply Failed", ">>>>> Reset Failed", ">>>>> Tests Errored",
                                    ">>>>> Tests Timed Out"])
def test_harness_failure_markers_mean_not_applied(tmp_path, marker):
    log = marked("PASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old") + marker + "\n"
    entry = both(PYTEST, log, tmp_path)
    assert not entry["patch_successfully_applied"] and "tests_status" not in entry


@pytest.mark.parametrize("log", [
    "PASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old\n",  # no markers at all
    f"{START}\nPASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old\n",  # killed mid-run
    f"PASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old\n{END}\n",
    "START_TEST_OUTPUT\nPASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old\nEND_TEST_OUTPUT\n",
], ids=["no-markers", "start-only", "end-only", "marker-names-not-values"])
def test_a_log_without_both_markers_is_not_applied(tmp_path, log):
    assert not both(PYTEST, log, tmp_path)["patch_successfully_applied"]


def test_timeout_written_by_run_instance(tmp_path):
    log = f"{START}\nPASSED testing/test_a.py::test_old\n\n\nTimeout error: 1800 seconds exceeded."
    entry = both(PYTEST, log, tmp_path)
    assert not entry["patch_successfully_applied"]
    assert (entry["infra_failure"], entry["infra_failure_reason"]) == (False, "tests_timed_out")


@pytest.mark.parametrize("exit_code,applied", [(None, True), (4, False)])
def test_pytest_crashed_before_any_test(tmp_path, exit_code, applied):
    """pytest stops before collecting (a bad path): no test ran, but the harness reads 'ERROR: ...' as a
    status line. Without a recorded exit code (logs of eval scripts that do not record it) the patch
    counts as applied and every listed test as failed; with one, the non-zero exit and no FAILED/ERROR
    status make the log untrustworthy: not applied."""
    log = marked("ERROR: file or directory not found: testing/test_a.py\n\nno tests ran in 0.01s", exit_code)
    entry = both(PYTEST, log, tmp_path)
    assert entry["patch_successfully_applied"] is applied and not entry["resolved"]
    if applied:
        assert entry["tests_status"]["FAIL_TO_PASS"]["failure"] == ["testing/test_a.py::test_fix"]
        assert entry["tests_status"]["PASS_TO_PASS"]["failure"] == ["testing/test_a.py::test_old"]
    else:
        assert entry["infra_failure_reason"] == "no_tests_collected"


def test_collection_error_fails_every_listed_test(tmp_path):
    log = marked("ERROR testing/test_a.py - ImportError: cannot import name 'x'\n"
                 "!!! Interrupted: 1 error during collection !!!", exit_code=2)
    entry = both(PYTEST, log, tmp_path)
    assert entry["patch_successfully_applied"] and entry["tests_status"]["PASS_TO_PASS"]["failure"]


def test_runner_crashed_without_results(tmp_path):
    """Django's runner dies on an import: no result line, no sign a suite ran -> not applied, and the
    harness names the likely cause (advice only)."""
    log = marked("Traceback (most recent call last):\nModuleNotFoundError: No module named 'app.missing'", exit_code=1)
    entry = both(DJANGO, log, tmp_path)
    assert not entry["patch_successfully_applied"]
    assert (entry["infra_failure"], entry["infra_failure_reason"]) == (False, "missing_module")


def test_environment_fault_is_flagged(tmp_path):
    entry = both(DJANGO, marked("Killed\nCannot allocate memory", exit_code=137), tmp_path)
    assert (entry["infra_failure"], entry["infra_failure_reason"]) == (True, "out_of_memory")


def test_log_without_results_or_known_cause(tmp_path):
    entry = both(DJANGO, marked("something went wrong", exit_code=1), tmp_path)
    assert not entry["patch_successfully_applied"] and "infra_failure_reason" not in entry


def test_a_suite_that_ran_without_parsable_results_fails_every_test(tmp_path):
    entry = both(PYTEST, marked("Test Suites: 1 failed, 1 total\nTests:       3 failed, 3 total", exit_code=1), tmp_path)
    assert entry["patch_successfully_applied"]
    assert entry["tests_status"]["FAIL_TO_PASS"]["failure"] == ["testing/test_a.py::test_fix"]


def test_results_printed_outside_the_markers_are_used(tmp_path):
    log = f"PASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old\n{START}\n(no output)\n{END}\n"
    assert both(PYTEST, log, tmp_path)["resolved"]


@pytest.mark.parametrize("exit_code,resolved", [(None, True), (0, True), (1, None)])
def test_exit_code_cross_check(tmp_path, exit_code, resolved):
    """All PASSED with a non-zero exit is a log that lies (e.g. a conftest printing PASSED): not applied."""
    entry = both(PYTEST, marked("PASSED testing/test_a.py::test_fix\nPASSED testing/test_a.py::test_old", exit_code),
                 tmp_path)
    assert entry["resolved"] is bool(resolved) and entry["patch_successfully_applied"] is (resolved is not None)


def test_non_zero_exit_with_a_failure_is_graded(tmp_path):
    entry = both(PYTEST, marked("PASSED testing/test_a.py::test_fix\nFAILED testing/test_a.py::test_old - boom", 1),
                 tmp_path)
    assert entry["patch_successfully_applied"] and entry["tests_status"]["PASS_TO_PASS"]["failure"]


def test_skip_xfail_and_xpass(tmp_path):
    """SKIPPED is no fix but no regression; XFAIL passes; XPASS is no status the harness knows."""
    instance = dict(PYTEST, FAIL_TO_PASS=["t.py::skipped", "t.py::xfail", "t.py::xpass"],
                    PASS_TO_PASS=["t.py::skipped_old"])
    log = marked("SKIPPED t.py::skipped\nXFAIL t.py::xfail\nXPASS t.py::xpass\nSKIPPED t.py::skipped_old\n"
                 "SKIPPED [2] t.py:10: no network")
    status = both(instance, log, tmp_path)["tests_status"]
    assert status["FAIL_TO_PASS"] == {"success": ["t.py::xfail"], "failure": ["t.py::skipped", "t.py::xpass"]}
    assert status["PASS_TO_PASS"]["success"] == ["t.py::skipped_old"]


def test_fail_only_grading(tmp_path):
    instance = dict(PYTEST, eval_type="fail_only", FAIL_TO_PASS=["t.py::a", "t.py::b"], PASS_TO_PASS=["t.py::c"])
    status = both(instance, marked("FAILED t.py::b\nERROR t.py::c"), tmp_path)["tests_status"]
    assert status["FAIL_TO_PASS"] == {"success": ["t.py::a"], "failure": ["t.py::b"]}
    assert status["PASS_TO_PASS"]["success"] == ["t.py::c"]


def test_colour_codes_as_the_v2_parser_strips_them(tmp_path):
    instance = dict(PYTEST, repo="sphinx-doc/sphinx", log_parser="parse_log_sphinx")
    log = marked("\x1b[32mPASSED\x1b[0m testing/test_a.py::test_fix\n\x1b[1;31mFAILED\x1b[0m testing/test_a.py::test_old")
    both(instance, log, tmp_path)
    assert parse_pytest_v2("\x1b[32mPASSED\x1b[0m t.py::a[x y]\nFAILED t.py::b - boom\n") == {
        "t.py::a[x y]": "PASSED", "t.py::b": "FAILED"}


def test_options_parser_shortens_absolute_path_parameters(tmp_path):
    instance = dict(PYTEST, repo="psf/requests", log_parser="parse_log_requests",
                    FAIL_TO_PASS=["t.py::test_x[/file.txt]"], PASS_TO_PASS=[])
    assert both(instance, marked("PASSED t.py::test_x[/tmp/a/file.txt]"), tmp_path)["resolved"]


# ---------------------------------------------------------------- instance files and the CLI


def test_bad_instance_names_the_key(tmp_path):
    path = tmp_path / "inst.json"
    path.write_text(json.dumps({"instance_id": "a", "repo": "r/r", "FAIL_TO_PASS": "not json"}))
    with pytest.raises(InstanceError, match="FAIL_TO_PASS"):
        load_instance(path)
    path.write_text(json.dumps({"instance_id": "a", "repo": "r/r", "FAIL_TO_PASS": []}))
    with pytest.raises(InstanceError, match="PASS_TO_PASS"):
        load_instance(path)
    path.write_text(json.dumps({"instance_id": "a", "repo": "r/r", "FAIL_TO_PASS": [], "PASS_TO_PASS": [],
                                "log_parser": "parse_log_jest"}))
    with pytest.raises(InstanceError, match="parse_log_jest"):
        load_instance(path)


def test_cli_prints_the_harness_report(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "dgm", "grade", "swebench", "--instance",
                           str(FIXTURES / "django.json"), "--log", str(FIXTURES / "django_failed.txt")],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    instance = load_instance(FIXTURES / "django.json")
    assert json.loads(proc.stdout) == theirs(instance, (FIXTURES / "django_failed.txt").read_text(), tmp_path,
                                             patch="<patch>")


# ---------------------------------------------------------------- generated logs, every parser

TESTS = ["t.py::test_a", "t.py::test_b[1-2]", "t.py::test_c[/abs/path/file.txt]", "t.py::test_d[log(photon",
         "test_e (app.tests.T)", "test_f", "sympy/core/tests/test_x.py:test_g", "t.py::test_h[MouseButton.LEFT]"]
LINES = [
    "{status} {test}", "{status} {test}", "FAILED {test} - AssertionError: a - b", "{test} {status}",
    "{test} {status} [ 50%]", "\x1b[31m{status}\x1b[0m {test}", "[1m{status}[0m {test}", "SKIPPED [2] t.py:3: why",
    "PASSED [100%]", "ERROR: file or directory not found: {test}", "{test} ... ok", "{test} ... FAIL",
    "{test} ... ERROR", "{test} ... skipped 'no db'", "FAIL: {test}", "ERROR: {test}", "ok", "{test} ...",
    "{test} ok", "{test} F", "{test} E", "________ {test} ________", "collected 0 items", "Tests:       3 passed",
    "ModuleNotFoundError: No module named 'x'", "Killed", "", "   indented {status} {test}",
]
PARSER_NAMES = ["parse_log_pytest", "parse_log_pytest_options", "parse_log_pytest_v2", "parse_log_matplotlib",
                "parse_log_seaborn", "parse_log_django", "parse_log_sympy"]


def _generated_log(rng) -> str:
    body = []
    for _ in range(rng.randint(0, 12)):
        template = rng.choice(LINES)
        body.append(template.format(status=rng.choice(["PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS"]),
                                    test=rng.choice(TESTS)))
    text = "\n".join(body)
    shape = rng.random()
    if shape < 0.6:
        text = f"{START}\n{text}\n{END}\n"
    elif shape < 0.7:
        text = f"{START}\n{text}\n"
    elif shape < 0.8:
        text = f"{rng.choice(body) if body else ''}\n{START}\n{END}\n{text}\n"
    if rng.random() < 0.4:
        text += f">>>>> Test Exit Code: {rng.choice([0, 1, 2, 4])}\n"
    if rng.random() < 0.05:
        text += rng.choice([">>>>> Patch Apply Failed", ">>>>> Tests Timed Out", "Timeout error: 60 seconds exceeded."])
    return text


@pytest.mark.parametrize("parser", PARSER_NAMES)
def test_generated_logs_match_the_harness(tmp_path, parser):
    """300 seeded random logs per parser, mixing the line shapes each parser reads (and ones that fool a
    lenient reading), graded by us and by the harness: the reports must be equal."""
    import random

    rng = random.Random(parser)
    for _ in range(300):
        instance = {"instance_id": "x__y-1", "repo": "x/y", "log_parser": parser,
                    "eval_type": rng.choice(["pass_and_fail", "pass_and_fail", "fail_only"]),
                    "FAIL_TO_PASS": rng.sample(TESTS, rng.randint(0, 3)), "PASS_TO_PASS": rng.sample(TESTS, rng.randint(0, 3))}
        log = _generated_log(rng)
        assert grade_log(instance, log, patch="diff") == theirs(instance, log, tmp_path), log
