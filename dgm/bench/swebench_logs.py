"""Grade a SWE-bench test log without Docker: parse it with the repository's log format and
apply SWE-bench's status rules (see grading_rules.py).

Accepted logs: swebench 2.x-5.x `test_output.txt` files, with the start/end test-output markers
(">>>>> Start Test Output" / ">>>>> End Test Output", or bare START_TEST_OUTPUT / END_TEST_OUTPUT
lines) or without them (then the whole log is parsed, as early harness logs require). A log
that records a failed patch application, a failed reset, a harness error or a timeout is graded
as "patch not applied", as the harness does.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .grading_rules import instance_report, tests_status

STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")
START_MARKERS = (">>>>> Start Test Output", "START_TEST_OUTPUT")
END_MARKERS = (">>>>> End Test Output", "END_TEST_OUTPUT")
BAD_MARKERS = (">>>>> Patch Apply Failed", ">>>>> Reset Failed", ">>>>> Tests Errored", ">>>>> Tests Timed Out")
_EXIT_CODE = re.compile(r">>>>> Test Exit Code:\s*(-?\d+)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]|\[\d+m")
_SKIP_COUNT = re.compile(r"^\[\d+\]$")


class InstanceError(ValueError):
    """INSTANCE.json is missing a key or has a bad value; the message names it."""


# ---------------------------------------------------------------- parsers (one per log format)


def _summary_line(line: str) -> tuple[str, list[str]] | None:
    """('FAILED', words) for a pytest short-summary line; None otherwise."""
    status = next((s for s in STATUSES if line.startswith(s)), None)
    if status is None:
        return None
    words = line.split()
    if len(words) < 2 or words[0] != status:
        return None
    if status == "SKIPPED" and _SKIP_COUNT.match(words[1]):
        return None  # "SKIPPED [2] file.py:10: reason" names no test
    return status, words


def parse_pytest(log: str) -> dict[str, str]:
    """`pytest -rA` short summary: STATUS test_id [- message]."""
    out = {}
    for line in log.split("\n"):
        if line.startswith("FAILED"):
            line = line.replace(" - ", " ")
        hit = _summary_line(line)
        if hit:
            out[hit[1][1]] = hit[0]
    return out


def parse_pytest_options(log: str) -> dict[str, str]:
    """Like parse_pytest, but a parametrize option that is an absolute path keeps only its last part."""
    out = {}
    for test_id, status in parse_pytest(log).items():
        match = re.match(r"(.*?)\[(.*)\]$", test_id)
        if match:
            head, option = match.groups()
            if option.startswith("/") and not option.startswith("//") and "*" not in option:
                option = "/" + option.split("/")[-1]
            test_id = f"{head}[{option}]"
        out[test_id] = status
    return out


def parse_pytest_v2(log: str) -> dict[str, str]:
    """Newer pytest logs (astropy, sphinx, scikit-learn): colour codes, ids with spaces, and
    old-style 'test_id STATUS' progress lines."""
    control = {i: None for i in range(1, 32)}
    out = {}
    for line in log.split("\n"):
        line = _ANSI.sub("", line).translate(control)
        status = next((s for s in STATUSES if line.startswith(s)), None)
        if status is not None:
            if status == "FAILED":
                line = line.split(" - ", 1)[0]
            words = line.split()
            if len(words) >= 2 and not (words[0] == "SKIPPED" and _SKIP_COUNT.match(words[1])):
                out[" ".join(words[1:])] = words[0]
        elif any(line.endswith(s) for s in STATUSES):
            words = line.split()
            if len(words) >= 2:
                out[" ".join(words[:-1])] = words[-1]
    return out


def parse_matplotlib(log: str) -> dict[str, str]:
    log = log.replace("MouseButton.LEFT", "1").replace("MouseButton.RIGHT", "3")
    return parse_pytest(log)


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


_DJANGO_RESULTS = ((" ... ok", "PASSED"), (" ... OK", "PASSED"), (" ...  OK", "PASSED"))
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
        for suffix, status in _DJANGO_RESULTS:
            if line.endswith(suffix):
                if line.startswith("Applying sites.0002_alter_domain_unique...test_no_migrations"):
                    line = line.split("...", 1)[-1].strip()
                out[line.rsplit(suffix, 1)[0]] = status
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


PARSERS = {
    "pytest": parse_pytest,
    "pytest_options": parse_pytest_options,
    "pytest_v2": parse_pytest_v2,
    "matplotlib": parse_matplotlib,
    "seaborn": parse_seaborn,
    "django": parse_django,
    "sympy": parse_sympy,
}

REPO_PARSERS = {
    "astropy/astropy": "pytest_v2",
    "django/django": "django",
    "marshmallow-code/marshmallow": "pytest",
    "matplotlib/matplotlib": "matplotlib",
    "mwaskom/seaborn": "seaborn",
    "pallets/flask": "pytest",
    "psf/requests": "pytest_options",
    "pvlib/pvlib-python": "pytest",
    "pydata/xarray": "pytest",
    "pydicom/pydicom": "pytest_options",
    "pylint-dev/astroid": "pytest",
    "pylint-dev/pylint": "pytest_options",
    "pytest-dev/pytest": "pytest",
    "pyvista/pyvista": "pytest",
    "scikit-learn/scikit-learn": "pytest_v2",
    "sqlfluff/sqlfluff": "pytest",
    "sphinx-doc/sphinx": "pytest_v2",
    "sympy/sympy": "sympy",
}


def parser_for(repo: str):
    """The log parser of a repository; unknown repositories get the plain pytest parser."""
    return PARSERS[REPO_PARSERS.get(repo, "pytest")]


# ---------------------------------------------------------------- grading


def _test_section(log: str) -> str | None:
    """Text between the start and end markers; the whole log when it has none; None if half-marked."""
    start = next((m for m in START_MARKERS if m in log), None)
    end = next((m for m in END_MARKERS if m in log), None)
    if start is None and end is None:
        return log
    if start is None or end is None:
        return None  # the run stopped between the markers (crash, kill): no trustworthy results
    return log.split(start, 1)[1].split(end, 1)[0]


def statuses_from_log(log: str, repo: str) -> tuple[dict[str, str], bool, str]:
    """(test statuses, applied-and-ran?, reason when not)."""
    bad = [m for m in BAD_MARKERS if m in log]
    if bad:
        return {}, False, f"log records {bad[0]!r}"
    section = _test_section(log)
    if section is None:
        return {}, False, "log has only one of the start/end test-output markers"
    parse = parser_for(repo)
    statuses = parse(section) or parse(log)
    if not statuses:
        return {}, False, "no test results found in the log"
    exit_match = _EXIT_CODE.search(log)
    if exit_match and int(exit_match.group(1)) != 0 and not any(s in ("FAILED", "ERROR") for s in statuses.values()):
        # Non-zero exit but no failure in the log: the log does not describe the run (a patch
        # can print its own PASSED lines).
        return {}, False, f"tests exited {exit_match.group(1)} but the log reports no failure"
    return statuses, True, ""


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
    """An instance as a dict with instance_id, repo and the two test lists (lists, decoded)."""
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
    return {"instance_id": data["instance_id"], "repo": data["repo"],
            "FAIL_TO_PASS": _test_list(data, "FAIL_TO_PASS", str(path)),
            "PASS_TO_PASS": _test_list(data, "PASS_TO_PASS", str(path))}


def grade_log(instance: dict, log: str, patch: str | None = "") -> dict:
    """SWE-bench per-instance report for `log`; `patch=None` means the model produced no patch."""
    iid = instance["instance_id"]
    if patch is None:
        return instance_report(iid, patch=None, applied=False, status=None)
    statuses, applied, _ = statuses_from_log(log, instance["repo"])
    if not applied:
        return instance_report(iid, patch=patch, applied=False, status=None)
    status = tests_status(statuses, instance["FAIL_TO_PASS"], instance["PASS_TO_PASS"])
    return instance_report(iid, patch=patch, applied=True, status=status)
