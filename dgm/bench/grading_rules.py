"""SWE-bench's rules for turning a test-status map into a per-instance report (5.x semantics).

* a test passed when its status is PASSED or XFAIL;
* FAIL_TO_PASS fails when the test is missing, FAILED, ERROR or SKIPPED (skipping is no fix);
* PASS_TO_PASS is maintained when the test passed or was SKIPPED (a skip is no regression);
* resolved iff every FAIL_TO_PASS and every PASS_TO_PASS test succeeded.

Parametrized ids that the dataset stores truncated mid-parameter (``test_x[log(photon``)
match a logged id by prefix when all candidates agree on pass-vs-fail.
"""

from __future__ import annotations

PASSING = ("PASSED", "XFAIL")


def _lookup(case: str, statuses: dict[str, str]) -> str | None:
    if case in statuses:
        return statuses[case]
    if case.count("[") > case.count("]"):
        hits = [status for name, status in statuses.items() if name.startswith(case)]
        if hits and len({status in PASSING for status in hits}) == 1:
            return hits[0]
    return None


def passed(case: str, statuses: dict[str, str]) -> bool:
    return _lookup(case, statuses) in PASSING


def maintained(case: str, statuses: dict[str, str]) -> bool:
    return _lookup(case, statuses) in (*PASSING, "SKIPPED")


def tests_status(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str]) -> dict:
    """The `tests_status` block of a SWE-bench report."""

    def split(cases, ok):
        return {"success": [c for c in cases if ok(c, statuses)], "failure": [c for c in cases if not ok(c, statuses)]}

    return {
        "FAIL_TO_PASS": split(fail_to_pass, passed),
        "PASS_TO_PASS": split(pass_to_pass, maintained),
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }


def is_resolved(status: dict) -> bool:
    return not status["FAIL_TO_PASS"]["failure"] and not status["PASS_TO_PASS"]["failure"]


def instance_report(instance_id: str, *, patch: str | None, applied: bool, status: dict | None) -> dict:
    """{instance_id: {patch_is_None, patch_exists, patch_successfully_applied, resolved, tests_status}}."""
    entry = {
        "patch_is_None": patch is None,
        "patch_exists": patch is not None,
        "patch_successfully_applied": applied,
        "resolved": bool(applied and status is not None and is_resolved(status)),
    }
    if status is not None:
        entry["tests_status"] = status
    return {instance_id: entry}
