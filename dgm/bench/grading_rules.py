"""SWE-bench's rules for turning a test-status map into a per-instance report (swebench 5.x).

* a test passed when its status is PASSED or XFAIL;
* a test failed when it is missing, FAILED, ERROR or SKIPPED (skipping is no fix);
* a FAIL_TO_PASS test goes to `success` if it passed, to `failure` if it failed, and to neither
  list otherwise (a status such as XPASS); a PASS_TO_PASS test is also a success when SKIPPED
  (a skip is no regression);
* fail-only grading (eval_type "fail_only", for runners that print only failures): a listed
  test fails only when the log says FAILED;
* resolved iff neither FAIL_TO_PASS nor PASS_TO_PASS has a failure.

Parametrized ids that the dataset stores truncated mid-parameter (``test_x[log(photon``)
match a logged id by prefix when all candidates agree on pass-vs-fail.
"""

from __future__ import annotations

PASSING = ("PASSED", "XFAIL")
FAILING = ("FAILED", "ERROR", "SKIPPED")
EVAL_TYPES = ("pass_and_fail", "fail_only")


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


def failed(case: str, statuses: dict[str, str]) -> bool:
    status = _lookup(case, statuses)
    return status is None or status in FAILING


def _split(cases: list[str], statuses: dict[str, str], ok, eval_type: str) -> dict:
    out = {"success": [], "failure": []}
    for case in cases:
        if eval_type == "fail_only":
            out["failure" if statuses.get(case) == "FAILED" else "success"].append(case)
        elif ok(case, statuses):
            out["success"].append(case)
        elif failed(case, statuses):
            out["failure"].append(case)
    return out


def tests_status(statuses: dict[str, str], fail_to_pass: list[str], pass_to_pass: list[str],
                 eval_type: str = "pass_and_fail") -> dict:
    """The `tests_status` block of a SWE-bench report."""
    if eval_type not in EVAL_TYPES:
        raise ValueError(f"unknown eval_type {eval_type!r}; expected one of {', '.join(EVAL_TYPES)}")
    return {
        "FAIL_TO_PASS": _split(fail_to_pass, statuses, passed, eval_type),
        "PASS_TO_PASS": _split(pass_to_pass, statuses, maintained, eval_type),
        "FAIL_TO_FAIL": {"success": [], "failure": []},
        "PASS_TO_FAIL": {"success": [], "failure": []},
    }


def is_resolved(status: dict) -> bool:
    return not status["FAIL_TO_PASS"]["failure"] and not status["PASS_TO_PASS"]["failure"]


def instance_report(instance_id: str, *, patch: str | None, applied: bool, status: dict | None,
                    infra_failure_reason: tuple[str, bool] | None = None) -> dict:
    """{instance_id: {patch_is_None, patch_exists, patch_successfully_applied, resolved, infra_failure,
    [infra_failure_reason], [tests_status]}}, key for key what the harness writes to report.json.

    `infra_failure_reason` is (reason, is an environment fault) for a log without test results.
    """
    entry = {
        "patch_is_None": patch is None,
        "patch_exists": patch is not None,
        "patch_successfully_applied": bool(patch is not None and applied),
        "resolved": bool(patch is not None and applied and status is not None and is_resolved(status)),
        "infra_failure": bool(infra_failure_reason and infra_failure_reason[1]),
    }
    if infra_failure_reason:
        entry["infra_failure_reason"] = infra_failure_reason[0]
    if status is not None and entry["patch_successfully_applied"]:
        entry["tests_status"] = status
    return {instance_id: entry}
