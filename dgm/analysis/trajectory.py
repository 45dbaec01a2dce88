"""Turn a trajectory.json (the agent contract's output) into readable text."""

from __future__ import annotations

import json
from pathlib import Path

from dgm.store import StoreError


def trajectory_path(run_dir: Path, node_id: str, task: str) -> Path:
    """nodes/<id>/self_modify/trajectory.json or nodes/<id>/tasks/<task>/trajectory.json, or a clear error."""
    node_dir = Path(run_dir) / "nodes" / node_id
    if not node_dir.is_dir():
        raise StoreError(f"node {node_id!r} has no artifact directory {node_dir}")
    path = node_dir / "self_modify" / "trajectory.json" if task == "self_modify" else node_dir / "tasks" / task / "trajectory.json"
    if not path.is_file():
        tasks = sorted(p.name for p in (node_dir / "tasks").glob("*") if (p / "trajectory.json").is_file())
        has_self = (node_dir / "self_modify" / "trajectory.json").is_file()
        available = (["self_modify"] if has_self else []) + tasks
        raise StoreError(
            f"node {node_id!r} has no trajectory for task {task!r} ({path} missing); "
            f"available: {', '.join(available) or 'none'}"
        )
    return path


def load_trajectory(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise StoreError(f"{path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise StoreError(f"{path} holds a {type(data).__name__}, expected a trajectory object")
    return data


def _content_text(content) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(str(p.get("text", p)) if isinstance(p, dict) else str(p) for p in content)
    return str(content)


def _clip(text: str, limit: int) -> str:
    if limit and len(text) > limit:
        half = limit // 2
        return f"{text[:half]}\n… [{len(text) - limit} characters cut] …\n{text[-half:]}"
    return text


def render_trajectory(data: dict, *, clip: int = 4000) -> list[tuple[str, str]]:
    """[(heading, body), ...]: a header, then each message (or each step when there are no messages)."""
    usage = data.get("usage") or {}
    header = (
        f"instance: {data.get('instance_id', '?')}   exit: {data.get('exit_status', '?')}   "
        f"LLM calls: {usage.get('calls', '?')}   tokens: {usage.get('prompt_tokens', 0)} in / "
        f"{usage.get('completion_tokens', 0)} out"
    )
    if data.get("error"):
        header += f"\nerror: {data['error']}"
    blocks = [("trajectory", header)]
    messages = data.get("messages") or []
    for i, m in enumerate(messages):
        role = m.get("role", "?")
        body = _content_text(m.get("content"))
        for call in m.get("tool_calls") or []:
            fn = call.get("function", {})
            body += f"\n→ {fn.get('name', '?')}({_pretty_args(fn.get('arguments'))})"
        title = f"[{i}] {role}" + (f" ({m['tool_call_id']})" if m.get("tool_call_id") else "")
        blocks.append((title, _clip(body.strip(), clip)))
    if not messages:
        for s in data.get("steps") or []:
            body = f"→ {s.get('tool', '?')}({_pretty_args(s.get('arguments'))})\n{_content_text(s.get('observation'))}"
            if s.get("error"):
                body += f"\nerror: {s['error']}"
            blocks.append((f"step {s.get('index', '?')} ({s.get('duration_s', 0):.1f}s)", _clip(body, clip)))
    return blocks


def _pretty_args(args) -> str:
    if isinstance(args, str):
        try:
            args = json.loads(args)
        except json.JSONDecodeError:
            return args
    if isinstance(args, dict):
        return ", ".join(f"{k}={v!r}" for k, v in args.items())
    return repr(args)
