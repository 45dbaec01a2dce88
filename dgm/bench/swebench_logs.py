"""Grade a SWE-bench test log without Docker, exactly as the swebench 5.x harness grades it
(`swebench.harness.grading.get_eval_report`): parse it with the instance's log parser and apply
SWE-bench's status rules (grading_rules.py). Parity with the installed harness is tested log shape
by log shape in tests/test_bench_swebench_logs.py.

How a `test_output.txt` is read, in the harness's order:

1. a harness failure marker anywhere (patch apply failed, reset failed, tests errored, tests timed
   out) -> patch not applied;
2. either output marker (">>>>> Start Test Output" / ">>>>> End Test Output") missing -> not applied;
3. the text between the markers is parsed; if that yields nothing, the whole log is;
4. no results and no sign that a runner executed (SUITE_RAN) -> not applied. With a sign, the
   patch counts as applied and every listed test as failed (a suite that crashed after starting);
5. the test command exited non-zero but no test FAILED or ERRORed -> not applied (the log does not
   describe the run: a patch can print its own PASSED lines).

A log without test results also gets `infra_failure_reason` (and `infra_failure` for environment
faults) from the harness's signatures, as advice; it never changes `resolved`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .grading_rules import EVAL_TYPES, instance_report, tests_status

STATUSES = ("FAILED", "PASSED", "SKIPPED", "ERROR", "XFAIL")  # the harness's TestStatus values
START_MARKER = ">>>>> Start Test Output"
END_MARKER = ">>>>> End Test Output"
BAD_MARKERS = (">>>>> Patch Apply Failed", ">>>>> Reset Failed", ">>>>> Tests Errored", ">>>>> Tests Timed Out")
_EXIT_CODE = re.compile(r">>>>> Test Exit Code:\s*(-?\d+)")
_SKIP_COUNT = re.compile(r"^\[\d+\]$")
_COLOUR = re.compile(r"\[(\d+)m")
_CONTROL = str.maketrans("", "", "".join(chr(c) for c in range(1, 32)))

# Evidence that a runner executed although no result line was parsed; every count is non-zero, so a
# runner that reports "0 of 0" has not run.
SUITE_RAN = re.compile("|".join([
    r"Executed [1-9]\d* of \d+",
    r"TOTAL: [1-9]\d* (?:SUCCESS|FAILED)",
    r"[1-9]\d* passing",
    r"Tests:\s+[1-9]\d*",
    r"Test Suites:\s+(?:\d+ \w+, )*[1-9]\d* total",
    r"^# tests [1-9]\d*",
    r"[1-9]\d* specs?, \d+ failures?",
    r"': ok$",
]), re.M)

ENVIRONMENT, AMBIGUOUS = "environment", "ambiguous"
# (reason, tier, pattern): the first hit names why a log has no results.
INFRA_SIGNATURES = [(reason, tier, re.compile(pattern, re.M)) for reason, tier, pattern in [
    ("browser_launch_failed", ENVIRONMENT, r"Failed to launch|Failed to connect to the bus"),
    ("display_unavailable", ENVIRONMENT, r"cannot open display|Missing X server|unable to open X display"),
    ("out_of_memory", ENVIRONMENT, r"Cannot allocate memory|OutOfMemoryError|^Killed$"),
    ("container_unavailable", ENVIRONMENT, r"Error response from daemon|Cannot connect to the Docker daemon"),
    ("network_unreachable", ENVIRONMENT, r"Could not resolve host|Temporary failure in name resolution"),
    ("missing_module", AMBIGUOUS, r"Cannot find module|MODULE_NOT_FOUND|ModuleNotFoundError"),
    ("no_tests_collected", AMBIGUOUS, r"no tests ran|collected 0 items"),
    ("tests_timed_out", AMBIGUOUS, r"Timeout error: \d+ seconds exceeded"),
]]


class InstanceError(ValueError):
    """INSTANCE.json is missing a key or has a bad value; the message names it."""


# ---------------------------------------------------------------- parsers (one per log format)


def _status_line(line: str) -> list[str] | None:
    """The words of a line that starts with a status and names a test; None otherwise."""
    if not line.startswith(STATUSES):
        return None
    if line.startswith("FAILED"):
        line = line.replace(" - ", " ")
    words = line.split()
    if len(words) <= 1 or (words[0] == "SKIPPED" and _SKIP_COUNT.match(words[1])):
        return None  # "SKIPPED [2] file.py:10: reason" names no test
    return words


def parse_pytest(log: str) -> dict[str, str]:
    """`pytest -rA` short summary: STATUS test_id [- message]. The first word is the status as
    printed ("ERROR:" included, as the harness keeps it)."""
    out = {}
    for line in log.split("\n"):
        words = _status_line(line)
        if words:
            out[words[1]] = words[0]
    return out


def parse_pytest_options(log: str) -> dict[str, str]:
    """Like parse_pytest, but a parametrize option that is an absolute path keeps only its last part."""
    out = {}
    for line in log.split("\n"):
        words = _status_line(line)
        if not words:
            continue
        name = words[1]
        match = re.search(r"(.*?)\[(.*)\]", name)
        if match:
            head, option = match.groups()
            if option.startswith("/") and not option.startswith("//") and "*" not in option:
                option = "/" + option.split("/")[-1]
            name = f"{head}[{option}]"
        out[name] = words[0]
    return out


def parse_pytest_v2(log: str) -> dict[str, str]:
    """Newer pytest logs (astropy, sphinx, scikit-learn): colour codes, ids with spaces, and
    old-style 'test_id STATUS' progress lines."""
    out = {}
    for line in log.split("\n"):
        line = _COLOUR.sub("", line).translate(_CONTROL)
        if line.startswith(STATUSES):
            if line.startswith("FAILED"):
                line = line.split(" - ", 1)[0]
            words = line.split()
            if len(words) >= 2 and not (words[0] == "SKIPPED" and _SKIP_COUNT.match(words[1])):
                out[" ".join(words[1:])] = words[0]
        elif line.endswith(STATUSES):
            words = line.split()
            if len(words) >= 2:
                out[" ".join(words[:-1])] = words[-1]
    return out


def parse_matplotlib(log: str) -> dict[str, str]:
    return parse_pytest(log.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3"))


def parse_seaborn(log: str) -> dict[str, str]:
    out = {}
    for line in log.split("\n"):
        words = line.split()
        if len(words) < 2:
            continue
        if line.startswith("FAILED"):
            out[words[1]] = "FAILED"
        elif " PASSED " in line:
            if words[1] == "PASSED":
                out[words[0]] = "PASSED"
        elif line.startswith("PASSED"):
            out[words[1]] = "PASSED"
    return out


_DJANGO_PASSED = (" ... ok", " ... OK", " ...  OK")
# Django sometimes prints a message between "..." and the result; the result lands on the next line.
_DJANGO_INTERRUPTED = (
    r"^(.*?)\s\.\.\.\sTesting\ against\ Django\ installed\ in\ ((?s:.*?))\ silenced\)\.\nok$",
    r"^(.*?)\s\.\.\.\sInternal\ Server\ Error:\ \/(.*)\/\nok$",
    r"^(.*?)\s\.\.\.\sSystem check identified no issues \(0 silenced\)\nok$",
)


def parse_django(log: str) -> dict[str, str]:
    """Django's runner: 'test_x (app.tests.Case) ... ok|FAIL|ERROR|skipped ...', 'FAIL: ...' headers."""
    out = {}
    previous = None
    for raw in log.split("\n"):
        line = raw.strip()
        if "--version is equivalent to version" in line:
            out["--version is equivalent to version"] = "PASSED"
        if " ... " in line:
            previous = line.split(" ... ")[0]
        for suffix in _DJANGO_PASSED:
            if line.endswith(suffix):
                if line.startswith("Applying sites.0002_alter_domain_unique...test_no_migrations"):
                    line = line.split("...", 1)[-1].strip()
                out[line.rsplit(suffix, 1)[0]] = "PASSED"
                break
        if " ... skipped" in line:
            out[line.split(" ... skipped")[0]] = "SKIPPED"
        if line.endswith(" ... FAIL"):
            out[line.split(" ... FAIL")[0]] = "FAILED"
        if line.startswith("FAIL:"):
            out[line.split()[1].strip()] = "FAILED"
        if line.endswith(" ... ERROR"):
            out[line.split(" ... ERROR")[0]] = "ERROR"
        if line.startswith("ERROR:"):
            out[line.split()[1].strip()] = "ERROR"
        if line.startswith("ok") and previous is not None:
            out[previous] = "PASSED"
    for pattern in _DJANGO_INTERRUPTED:
        for match in re.finditer(pattern, log, re.MULTILINE):
            out[match.group(1)] = "PASSED"
    return out


def parse_sympy(log: str) -> dict[str, str]:
    """SymPy's bin/test: 'test_name ok|F|E' lines plus '____ path.py:test_name ____' failure headers."""
    out = {}
    for match in re.findall(r"(_*) (.*)\.py:(.*) (_*)", log):
        out[f"{match[1]}.py:{match[2]}"] = "FAILED"
    for raw in log.split("\n"):
        line = raw.strip()
        if not line.startswith("test_"):
            continue
        name = line.split()[0]
        if line.endswith(" E"):
            out[name] = "ERROR"
        if line.endswith(" F"):
            out[name] = "FAILED"
        if line.endswith(" ok"):
            out[name] = "PASSED"
    return out


# The harness's parser names (an instance's `log_parser`) -> ours.
PARSERS = {
    "parse_log_pytest": parse_pytest,
    "parse_log_pytest_options": parse_pytest_options,
    "parse_log_pytest_v2": parse_pytest_v2,
    "parse_log_matplotlib": parse_matplotlib,
    "parse_log_seaborn": parse_seaborn,
    "parse_log_django": parse_django,
    "parse_log_sympy": parse_sympy,
    **{f"parse_log_{name}": parse_pytest
       for name in ("astroid", "flask", "marshmallow", "pvlib", "pyvista", "sqlfluff", "xarray")},
    **{f"parse_log_{name}": parse_pytest_options for name in ("pydicom", "requests", "pylint")},
    **{f"parse_log_{name}": parse_pytest_v2 for name in ("astropy", "scikit", "sphinx")},
}

# For instances without a `log_parser` field (SWE-bench datasets before swebench 5).
REPO_PARSERS = {
    "astropy/astropy": "parse_log_astropy",
    "django/django": "parse_log_django",
    "marshmallow-code/marshmallow": "parse_log_marshmallow",
    "matplotlib/matplotlib": "parse_log_matplotlib",
    "mwaskom/seaborn": "parse_log_seaborn",
    "pallets/flask": "parse_log_flask",
    "psf/requests": "parse_log_requests",
    "pvlib/pvlib-python": "parse_log_pvlib",
    "pydata/xarray": "parse_log_xarray",
    "pydicom/pydicom": "parse_log_pydicom",
    "pylint-dev/astroid": "parse_log_astroid",
    "pylint-dev/pylint": "parse_log_pylint",
    "pytest-dev/pytest": "parse_log_pytest",
    "pyvista/pyvista": "parse_log_pyvista",
    "scikit-learn/scikit-learn": "parse_log_scikit",
    "sqlfluff/sqlfluff": "parse_log_sqlfluff",
    "sphinx-doc/sphinx": "parse_log_sphinx",
    "sympy/sympy": "parse_log_sympy",
}


def parser_for(instance: dict):
    """The instance's log parser: its `log_parser` field, else the one for its repository."""
    name = instance.get("log_parser") or REPO_PARSERS.get(instance["repo"])
    if name is None:
        raise InstanceError(f"instance {instance['instance_id']}: no log_parser and no known parser for repo "
                            f"{instance['repo']!r}")
    if name not in PARSERS:
        raise InstanceError(f"instance {instance['instance_id']}: log_parser {name!r} is not supported by dgm's log "
                            f"grader (supported: the Python ones, {', '.join(sorted(PARSERS))})")
    return PARSERS[name]


# ---------------------------------------------------------------- grading


def statuses_from_log(log: str, parse) -> tuple[dict[str, str], bool]:
    """(test statuses, whether the log shows the patch applied and the tests run)."""
    if any(marker in log for marker in BAD_MARKERS):
        return {}, False
    if START_MARKER not in log or END_MARKER not in log:
        return {}, False
    statuses = parse(log.split(START_MARKER)[1].split(END_MARKER)[0]) or parse(log)
    if not statuses and not SUITE_RAN.search(log):
        return {}, False
    exit_code = _EXIT_CODE.search(log)
    if (exit_code and int(exit_code.group(1)) != 0 and statuses
            and not any(status in ("FAILED", "ERROR") for status in statuses.values())):
        return {}, False
    return statuses, True


def infra_failure(log: str) -> tuple[str, bool] | None:
    """(reason, is an environment fault) for the first signature the log shows; None if none does."""
    for reason, tier, pattern in INFRA_SIGNATURES:
        if log and pattern.search(log):
            return reason, tier == ENVIRONMENT
    return None


def _test_list(instance: dict, key: str, source: str) -> list[str]:
    if key not in instance:
        raise InstanceError(f"{source}: missing key {key!r}")
    value = instance[key]
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise InstanceError(f"{source}: {key} is a string but not a JSON list: {value[:60]!r}") from None
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InstanceError(f"{source}: {key} must be a list of test ids")
    return value


def load_instance(path: Path) -> dict:
    """An instance as a dict with instance_id, repo, the two test lists (decoded), log_parser and
    eval_type (None / "pass_and_fail" when the file has none)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InstanceError(f"{path}: cannot read instance JSON ({exc})") from None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if not isinstance(data, dict):
        raise InstanceError(f"{path}: expected one JSON object")
    for key in ("instance_id", "repo"):
        if not isinstance(data.get(key), str):
            raise InstanceError(f"{path}: missing or non-string key {key!r}")
    eval_type = data.get("eval_type") or "pass_and_fail"
    if eval_type not in EVAL_TYPES:
        raise InstanceError(f"{path}: eval_type {eval_type!r} is not one of {', '.join(EVAL_TYPES)}")
    instance = {"instance_id": data["instance_id"], "repo": data["repo"],
                "FAIL_TO_PASS": _test_list(data, "FAIL_TO_PASS", str(path)),
                "PASS_TO_PASS": _test_list(data, "PASS_TO_PASS", str(path)),
                "log_parser": data.get("log_parser"), "eval_type": eval_type}
    parser_for(instance)  # an unsupported parser is an error now, not after the log was read
    return instance


def grade_log(instance: dict, log: str, patch: str | None = "") -> dict:
    """SWE-bench per-instance report for `log`; `patch=None` means the model produced no patch."""
    iid = instance["instance_id"]
    if patch is None:
        return instance_report(iid, patch=None, applied=False, status=None)
    statuses, applied = statuses_from_log(log, parser_for(instance))
    if not applied:
        return instance_report(iid, patch=patch, applied=False, status=None, infra_failure_reason=infra_failure(log))
    status = tests_status(statuses, instance["FAIL_TO_PASS"], instance["PASS_TO_PASS"],
                          instance.get("eval_type") or "pass_and_fail")
    return instance_report(iid, patch=patch, applied=True, status=status)
