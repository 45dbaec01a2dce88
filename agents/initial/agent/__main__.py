"""Entry point: python -m agent --task TASK.json --repo REPO_DIR --out OUT_DIR"""

import argparse
import json
import os
import sys
from pathlib import Path

from . import llm, loop


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent", description=__doc__)
    parser.add_argument("--task", required=True, type=Path, help="TASK.json")
    parser.add_argument("--repo", required=True, type=Path, help="repository to edit")
    parser.add_argument("--out", required=True, type=Path, help="directory for trajectory.json")
    args = parser.parse_args(argv)
    tool_mode, model = os.environ.get("DGM_TOOL_MODE") or "tools", os.environ.get("DGM_MODEL", "default")
    try:
        task = json.loads(args.task.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        parser.error(f"cannot read task file {args.task}: {exc}")
    if not isinstance(task, dict) or "problem_statement" not in task:
        parser.error(f"task file {args.task} must be a JSON object with a problem_statement")
    if tool_mode not in ("tools", "text"):
        parser.error(f"DGM_TOOL_MODE must be 'tools' or 'text', not {tool_mode!r}")
    try:
        client = llm.make_client()
    except llm.LLMError as exc:
        loop.Trajectory(task.get("instance_id", "unknown"), args.out).save([], "error", str(exc))
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    result = loop.run(task, args.repo.resolve(), args.out, client, model, tool_mode)
    print(f"agent: {result['exit_status']} after {len(result['steps'])} steps", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
