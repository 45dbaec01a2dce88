"""`dgm grade swebench`: grade a SWE-bench test log without Docker, print the report JSON (the same
report the installed swebench harness writes to report.json for that log)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from dgm.cli import add_command


def register(subparsers) -> None:
    parser = subparsers.add_parser("grade", help="Grade test logs the way a benchmark harness does.",
                                   description="Grade test logs the way a benchmark harness does.",
                                   epilog="Example: dgm grade swebench --instance inst.json --log test_output.txt")
    sub = parser.add_subparsers(dest="grade_command", metavar="BENCH", required=True)
    p = add_command(sub, "swebench", _swebench,
                    "Print the SWE-bench per-instance report for a test_output.txt (no Docker needed). "
                    "INSTANCE.json needs instance_id, repo, FAIL_TO_PASS, PASS_TO_PASS; log_parser and eval_type "
                    "are read when present (swebench 5 datasets).",
                    "dgm grade swebench --instance django__django-11099.json --log test_output.txt")
    p.add_argument("--instance", required=True, type=Path, help="instance JSON (a dataset row)")
    p.add_argument("--log", required=True, type=Path, help="the harness's test_output.txt")
    p.add_argument("--no-patch", action="store_true", help="the model produced no patch (patch_is_None)")


def _swebench(args) -> int:
    from dgm.bench.swebench_logs import InstanceError, grade_log, load_instance

    try:
        instance = load_instance(args.instance)
        log = args.log.read_text(errors="replace")
    except (InstanceError, OSError) as exc:
        print(f"dgm grade swebench: {exc}", file=sys.stderr)
        return 2
    report = grade_log(instance, log, patch=None if args.no_patch else "<patch>")
    print(json.dumps(report, indent=2))
    return 0
