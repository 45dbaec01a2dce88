"""The agent's tools: their OpenAI schemas, the bash tool, output truncation and dispatch."""

import json
import os
import signal
import subprocess
from pathlib import Path

from . import editor
from .limits import BASH_TIMEOUT_S, MAX_OUTPUT_CHARS


def truncate(text: str, limit: int | None = None) -> str:
    """Keep the head and the tail of a long text, cut at line boundaries, with a marker between."""
    limit = limit or MAX_OUTPUT_CHARS
    if len(text) <= limit:
        return text
    half = limit // 2
    head, tail = text[:half], text[-half:]
    head, tail = head[: head.rfind("\n") + 1] or head, tail[tail.find("\n") + 1 :] or tail
    cut = len(text) - len(head) - len(tail)
    return f"{head}<<< {cut} characters truncated >>>\n{tail}"


def run_bash(repo: Path, command: str, timeout: float = BASH_TIMEOUT_S) -> str:
    """Run one command in a fresh bash process in the repository; kill its whole group on timeout."""
    # start_new_session: the command gets its own process group, so its children die with it.
    proc = subprocess.Popen(["bash", "-c", command], cwd=repo, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, errors="replace", start_new_session=True)
    try:
        output, _ = proc.communicate(timeout=timeout)
        note = f"\n[exit code {proc.returncode}]" if proc.returncode else ""
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        note = f"\n[command timed out after {timeout:g}s and was killed]"
    return truncate(output) + note


BASH_SCHEMA = {
    "name": "bash",
    "description": "Run a shell command in a fresh bash process (cwd = the repository). "
    "Output (stdout+stderr) is truncated to its head and tail when long.",
    "parameters": {"type": "object", "properties": {"command": {"type": "string"}}, "required": ["command"]},
}
SUBMIT_SCHEMA = {"name": "submit", "description": "Call when the issue is resolved: ends the run.",
                 "parameters": {"type": "object", "properties": {}}}  # fmt: skip
SCHEMAS = [BASH_SCHEMA, editor.SCHEMA, SUBMIT_SCHEMA]


def openai_tools() -> list[dict]:  # the `tools` parameter of a chat completion
    return [{"type": "function", "function": schema} for schema in SCHEMAS]


def run_tool(repo: Path, name: str, arguments: str | dict) -> str:
    """Execute one tool call; bad calls become error observations the model can read."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments or "{}")
        except json.JSONDecodeError as exc:
            return f"Error: arguments of {name} are not valid JSON ({exc})"
    if not isinstance(arguments, dict):
        return f"Error: arguments of {name} must be a JSON object"
    try:
        if name == "bash":
            return run_bash(repo, str(arguments["command"]))
        if name == "editor":
            return truncate(editor.run(repo, **arguments))
        return f"Error: unknown tool {name!r}"
    except (KeyError, TypeError) as exc:
        return f"Error: bad arguments for {name}: {exc!r}"
