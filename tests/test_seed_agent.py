"""The seed agent end to end: `python -m agent` as a subprocess, talking over a real Unix-socket HTTP server
to the scripted model, editing a real git fixture repository. Nothing is mocked; the server below is a
minimal test-only stand-in for the gateway (dgm/llm/gateway.py is tested on its own)."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socketserver
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from dgm.llm.base import CallContext, UpstreamError
from dgm.llm.scripted import ScriptedUpstream

ROOT = Path(__file__).resolve().parents[1]
SEED = ROOT / "agents" / "initial"


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class ScriptedServer:
    """POST /v1/chat/completions -> upstream.complete(); UpstreamError -> OpenAI-style error JSON."""

    def __init__(self, upstream, socket_path: Path, purpose: str):
        self.requests: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output quiet
                pass

            def address_string(self):
                return "unix-socket"

            def do_POST(self):
                request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.requests.append(request)
                try:
                    status, body = 200, upstream.complete(request, CallContext("test", None, None, purpose))
                except UpstreamError as exc:
                    error = {"message": str(exc), "type": "invalid_request_error", "code": exc.code}
                    status, body = exc.status, {"error": error}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = _UnixHTTPServer(str(socket_path), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def git(repo: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_DATE": "2025-01-01T00:00:00", "GIT_COMMITTER_DATE": "2025-01-01T00:00:00"}
    cmd = ["git", "-c", "user.email=t@example.com", "-c", "user.name=t", *args]
    return subprocess.run(cmd, cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


def make_repo(path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text(text)
    git(path, "init", "-q")
    git(path, "add", "-A")
    git(path, "commit", "-qm", "base")
    return path


def gold_patch(base: dict[str, str], fixed: dict[str, str], tmp: Path) -> str:
    """A real `git diff` between two versions of a fixture repo."""
    repo = make_repo(tmp, base)
    for name, text in fixed.items():
        (repo / name).write_text(text)
    return git(repo, "diff")


SHORT = {"calc.py": "def add(a, b):\n    return a - b\n\n\ndef mul(a, b):\n    return a * b\n"}
SHORT_FIXED = {"calc.py": SHORT["calc.py"].replace("a - b", "a + b")}
SHORT_ISSUE = "add(2, 3) returns -1 instead of 5."
LONG_LINES = [f"def f{i}(x):\n    return x + {i}\n\n" for i in range(300)]
LONG = {"big.py": "".join(LONG_LINES)}
LONG_FIXED = {"big.py": LONG["big.py"].replace("return x + 150\n", "return x + 1500\n")}
LONG_ISSUE = "f150 must add 1500, not 150."
MEDIUM = {"table.py": "".join(f"ROW_{i} = {i}\n" for i in range(100))}  # 100 lines, ~2 KB as a numbered view
MEDIUM_FIXED = {"table.py": MEDIUM["table.py"].replace("ROW_50 = 50\n", "ROW_50 = 500\n")}
MEDIUM_ISSUE = "ROW_50 must be 500."
MULTI = {"a.py": "A = 1\n", "b.py": "B = 1\n"}
MULTI_FIXED = {"a.py": "A = 2\n", "b.py": "B = 2\n"}
MULTI_ISSUE = "Both A and B must be 2."


@pytest.fixture
def oracle(tmp_path):
    """Problem statement -> gold patch, like LocalBenchmark.find_by_problem_statement + gold_patch."""
    patches = {}
    for issue, base, fixed in [(SHORT_ISSUE, SHORT, SHORT_FIXED), (LONG_ISSUE, LONG, LONG_FIXED),
                               (MEDIUM_ISSUE, MEDIUM, MEDIUM_FIXED), (MULTI_ISSUE, MULTI, MULTI_FIXED)]:  # fmt: skip
        where = tmp_path / f"gold-{len(patches)}"
        where.mkdir()
        patches[issue] = gold_patch(base, fixed, where)
    return lambda text: next((p for issue, p in patches.items() if issue in text), None)


def run_agent(tmp_path: Path, upstream, repo: Path, issue: str, *, agent_dir: Path = SEED,
              purpose: str = "task", env: dict | None = None, limits: dict | None = None) -> dict:  # fmt: skip
    """Run `python -m agent` against the scripted model; returns the trajectory."""
    socket_path = tmp_path / "llm.sock"
    server = ScriptedServer(upstream, socket_path, purpose)
    task = {"instance_id": "fixture-1", "problem_statement": issue, "test_description": "python -m pytest -q",
            "limits": limits or {"max_steps": 50, "max_seconds": 120, "max_cost_usd": 5}}  # fmt: skip
    (tmp_path / "task.json").write_text(json.dumps(task))
    out = tmp_path / "out"
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "agent", "--task", str(tmp_path / "task.json"), "--repo", str(repo),
             "--out", str(out)],
            env={**os.environ, "PYTHONPATH": str(agent_dir), "DGM_LLM_SOCKET": str(socket_path),
                 "OPENAI_API_KEY": "attempt-token", "DGM_MODEL": "scripted", **(env or {})},
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    finally:
        server.close()
        socket_path.unlink(missing_ok=True)
    assert proc.returncode == 0, proc.stderr
    return json.loads((out / "trajectory.json").read_text())


def repo_for(tmp_path: Path, files: dict[str, str]) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    return make_repo(repo, files)


def test_tool_mode_resolves_a_short_file_task(tmp_path, oracle):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle), repo, SHORT_ISSUE)
    assert trajectory["exit_status"] == "submitted"
    assert (repo / "calc.py").read_text() == SHORT_FIXED["calc.py"]
    steps = [(s["tool"], json.loads(s["arguments"]).get("command")) for s in trajectory["steps"]]
    # It tries a targeted edit first; the seed's editor has none, so it rewrites the file it saw whole.
    assert steps[1:4] == [("editor", "view"), ("editor", "str_replace"), ("editor", "edit")]
    assert trajectory["steps"][2]["observation"].startswith("Error: unknown editor command")
    assert trajectory["usage"]["calls"] == 6 and trajectory["usage"]["prompt_tokens"] > 0


def test_text_mode_resolves_the_same_task(tmp_path, oracle):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle), repo, SHORT_ISSUE, env={"DGM_TOOL_MODE": "text"})
    assert trajectory["exit_status"] == "submitted"
    assert (repo / "calc.py").read_text() == SHORT_FIXED["calc.py"]
    assert all(m["role"] != "tool" for m in trajectory["messages"])


def test_model_without_tools_triggers_the_text_fallback(tmp_path, oracle):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle, supports_tools=False), repo, SHORT_ISSUE)
    assert trajectory["exit_status"] == "submitted"
    assert (repo / "calc.py").read_text() == SHORT_FIXED["calc.py"]


def copy_of_seed(where: Path) -> Path:
    shutil.copytree(SEED, where, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return where


def test_a_whole_file_rewrite_succeeds_exactly_when_the_view_was_complete(tmp_path, oracle):
    """No line-count threshold: the 100-line file is shown whole, so the model can reproduce it; an agent whose
    output limit cuts the same view makes the same model fail."""
    repo = repo_for(tmp_path, MEDIUM)
    run_agent(tmp_path, ScriptedUpstream(oracle), repo, MEDIUM_ISSUE)
    assert (repo / "table.py").read_text() == MEDIUM_FIXED["table.py"]
    stingy = copy_of_seed(tmp_path / "stingy")
    limits_py = stingy / "agent" / "limits.py"
    limits_py.write_text(limits_py.read_text().replace("MAX_OUTPUT_CHARS = 8000", "MAX_OUTPUT_CHARS = 1000"))
    (tmp_path / "again").mkdir()
    repo = repo_for(tmp_path / "again", MEDIUM)
    run_agent(tmp_path / "again", ScriptedUpstream(oracle), repo, MEDIUM_ISSUE, agent_dir=stingy)
    assert git(repo, "diff") == ""


def test_seed_fails_long_and_multi_file_tasks(tmp_path, oracle):
    """Seed competence: a long file's view is cut, so it cannot be rewritten whole; on a multi-file task the model
    stops after the first file (a reply without a tool call), which ends the seed's run."""
    long_repo = repo_for(tmp_path, LONG)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle), long_repo, LONG_ISSUE)
    assert trajectory["exit_status"] == "submitted"
    assert git(long_repo, "diff") == ""  # the middle of big.py was never visible: it gave up
    multi = tmp_path / "multi"
    multi.mkdir()
    multi_repo = repo_for(multi, MULTI)
    run_agent(multi, ScriptedUpstream(oracle), multi_repo, MULTI_ISSUE)
    assert (multi_repo / "a.py").read_text() == "A = 2\n" and (multi_repo / "b.py").read_text() == "B = 1\n"


def test_step_limit_ends_with_limits_exceeded(tmp_path, oracle):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle), repo, SHORT_ISSUE, limits={"max_steps": 2})
    assert trajectory["exit_status"] == "limits_exceeded"
    assert trajectory["usage"]["calls"] == 2 and len(trajectory["steps"]) == 2


def test_context_overflow_gives_a_structured_trajectory(tmp_path, oracle):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle, context_window=50), repo, SHORT_ISSUE)
    assert trajectory["exit_status"] == "context_overflow"
    assert trajectory["steps"][-1]["error"] == "context_length_exceeded"


def test_a_child_with_a_broken_editor_fails_the_task_for_real(tmp_path, oracle):
    child = copy_of_seed(tmp_path / "child")
    editor_py = child / "agent" / "editor.py"
    editor_py.write_text(editor_py.read_text().replace("target.write_text(file_text)", "pass"))
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(oracle), repo, SHORT_ISSUE, agent_dir=child)
    assert trajectory["exit_status"] == "submitted"  # the agent believes it is done...
    assert git(repo, "diff") == ""  # ...but nothing was written: an empty patch


def test_unknown_task_does_something_harmless_then_gives_up(tmp_path):
    repo = repo_for(tmp_path, SHORT)
    trajectory = run_agent(tmp_path, ScriptedUpstream(lambda text: None), repo, "Some issue nobody knows.")
    assert trajectory["exit_status"] == "submitted"
    assert [json.loads(s["arguments"])["command"] for s in trajectory["steps"]] == ["git status --short"]
    assert git(repo, "diff") == ""
