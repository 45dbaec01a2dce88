"""Small text helpers shared by the framework."""

from __future__ import annotations

import json
from pathlib import Path

TEXT_SUFFIXES = {".py", ".md", ".txt", ".toml", ".yaml", ".yml", ".json", ".cfg", ".ini", ".jinja", ""}
SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache"}


def head_tail(text: str, limit: int, marker: str = "\n... [{n} characters omitted] ...\n") -> str:
    """Keep the beginning and the end of a long text: failures usually show at the end."""
    if len(text) <= limit:
        return text
    half = limit // 2
    return text[:half] + marker.format(n=len(text) - 2 * half) + text[-half:]


def source_listing(root: Path, limit: int | None) -> str:
    """All text files of a directory as `=== path ===` sections, bounded in size (None: whole)."""
    parts = []
    for path in sorted(root.rglob("*")):
        if not path.is_file() or path.is_symlink() or SKIP_DIRS & set(path.relative_to(root).parts):
            continue
        if path.suffix not in TEXT_SUFFIXES:
            continue
        try:
            parts.append(f"=== {path.relative_to(root)} ===\n{path.read_text()}")
        except UnicodeDecodeError:
            continue
    listing = "\n".join(parts)
    return listing if limit is None else head_tail(listing, limit)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def render_trajectory(trajectory: dict | None, limit: int) -> str:
    """A readable, bounded transcript of an agent trajectory."""
    if not trajectory:
        return "(no trajectory was recorded)"
    lines = [f"exit status: {trajectory.get('exit_status')}"]
    for message in trajectory.get("messages", []):
        content = message.get("content")
        if isinstance(content, list):
            content = " ".join(str(part.get("text", part)) for part in content)
        calls = message.get("tool_calls") or []
        call_text = "".join(
            f"\n[tool call] {c.get('function', {}).get('name')}: {c.get('function', {}).get('arguments')}" for c in calls
        )
        lines.append(f"## {message.get('role')}\n{content or ''}{call_text}")
    if trajectory.get("error"):
        lines.append(f"## error\n{trajectory['error']}")
    return head_tail("\n".join(lines), limit)
