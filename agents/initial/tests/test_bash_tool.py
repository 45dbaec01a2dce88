import inspect
import time

from agent import tools


def test_bash_runs_in_repo_and_reports_failures(tmp_path):
    (tmp_path / "marker.txt").write_text("here")
    assert "marker.txt" in tools.run_bash(tmp_path, "ls")
    assert "[exit code 3]" in tools.run_bash(tmp_path, "echo oops; exit 3")


def test_bash_each_command_is_a_fresh_process(tmp_path):
    tools.run_bash(tmp_path, "export FOO=1; cd /")
    assert tools.run_bash(tmp_path, "echo ${FOO:-unset}; pwd").split() == ["unset", str(tmp_path)]


def test_bash_timeout_kills_the_command_and_its_children(tmp_path):
    started = time.monotonic()
    out = tools.run_bash(tmp_path, "sleep 30 & sleep 30; echo never", timeout=0.5)
    assert time.monotonic() - started < 10
    assert "timed out" in out and "never" not in out


def test_truncate_keeps_head_and_tail():
    text = "".join(f"line {i}\n" for i in range(1000))
    out = tools.truncate(text, 200)
    assert len(out) < 300
    assert out.startswith("line 0\n") and out.endswith("line 999\n")
    assert "characters truncated" in out
    assert tools.truncate("short", 200) == "short"


def test_truncate_cuts_at_line_boundaries():
    out = tools.truncate("".join(f"{i:04}\n" for i in range(100)), 60)
    kept = [line for line in out.splitlines() if "truncated" not in line]
    assert all(len(line) == 4 for line in kept)


def test_run_tool_turns_bad_calls_into_error_observations(tmp_path):
    assert tools.run_tool(tmp_path, "bash", "{not json").startswith("Error: arguments of bash")
    assert tools.run_tool(tmp_path, "bash", {}).startswith("Error: bad arguments for bash")
    assert tools.run_tool(tmp_path, "teleport", {}).startswith("Error: unknown tool")
    assert tools.run_tool(tmp_path, "bash", '{"command": "echo hi"}').strip() == "hi"


def test_openai_tool_schemas_name_every_tool():
    names = [t["function"]["name"] for t in tools.openai_tools()]
    assert names == ["bash", "editor", "submit"]



def test_a_command_gets_the_papers_two_minutes_by_default():
    """Test suites and builds routinely take over a minute; DGM's bash tool allows 120 s per command."""
    assert inspect.signature(tools.run_bash).parameters["timeout"].default == 120
