"""Read test statuses out of a pytest log (the `-rA` short summary and `-v` progress lines).

Statuses use SWE-bench's vocabulary: PASSED, FAILED, SKIPPED, ERROR, XFAIL, XPASS. How a
status counts (pass, fail, neither) is decided by the grading rules, not here.
"""

from __future__ import annotations

import re

STATUSES = ("PASSED", "FAILED", "SKIPPED", "ERROR", "XFAIL", "XPASS")

# "PASSED tests/test_x.py::test_a", "FAILED tests/test_x.py::test_b - AssertionError: ..."
_SUMMARY = re.compile(r"^(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)\s+(\S+)(?:\s+-\s.*)?$")
# "tests/test_x.py::test_a PASSED  [ 50%]"  (pytest -v progress lines)
_VERBOSE = re.compile(r"^(\S+::\S+(?:\[.*?\])?)\s+(PASSED|FAILED|SKIPPED|ERROR|XFAIL|XPASS)(?:\s|$)")
_ANSI = re.compile(r"\x1b\[[0-9;]*[mK]")


def parse_pytest_log(log: str) -> dict[str, str]:
    """Map test id -> status. Summary lines win over progress lines (they come last)."""
    results: dict[str, str] = {}
    for raw in log.splitlines():
        line = _ANSI.sub("", raw).strip()
        match = _VERBOSE.match(line)
        if match:
            results[match.group(1)] = match.group(2)
            continue
        match = _SUMMARY.match(line)
        if match:
            # "ERROR tests/test_x.py - ..." with no "::" is a collection error of a whole file.
            results[match.group(2)] = match.group(1)
    return results
