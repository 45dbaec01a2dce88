"""The loop against a fake in-process client (no network, no LLM): replies are scripted per test."""

import json

import httpx2
import openai
import pytest

from agent import loop


class FakeClient:
    """Stands in for openai.OpenAI: `chat.completions.create` pops the next scripted reply."""

    def __init__(self, replies):
        self.replies, self.requests = list(replies), []
        self.chat = self.completions = self

    def create(self, **request):
        self.requests.append(json.loads(json.dumps(request)))  # a snapshot: the loop keeps appending
        reply = self.replies.pop(0) if self.replies else text_reply("nothing more")
        if isinstance(reply, Exception):
            raise reply
        return reply


def tool_reply(name, arguments):
    call = {"id": f"call_{name}", "type": "function",
            "function": {"name": name, "arguments": json.dumps(arguments)}}  # fmt: skip
    return {"choices": [{"message": {"content": "", "tool_calls": [call]}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5}}  # fmt: skip


def text_reply(content):
    return {"choices": [{"message": {"content": content}}], "usage": {"prompt_tokens": 1, "completion_tokens": 1}}


def api_error(status, code, message):
    response = httpx2.Response(status, request=httpx2.Request("POST", "http://gateway/v1/chat/completions"))
    return openai.BadRequestError(message, response=response, body={"code": code, "message": message})


TASK = {"instance_id": "demo-1", "problem_statement": "Fix it.", "test_description": "pytest"}


def run(tmp_path, replies, tool_mode="tools", **task):
    repo = tmp_path / "repo"
    repo.mkdir(exist_ok=True)
    (repo / "a.py").write_text("x = 1\n")
    client = FakeClient(replies)
    result = loop.run({**TASK, **task}, repo, tmp_path / "out", client, "m", tool_mode)
    assert json.loads((tmp_path / "out" / "trajectory.json").read_text()) == result
    return result, client, repo


def test_tool_calls_run_and_submit_ends(tmp_path):
    result, client, repo = run(tmp_path, [
        tool_reply("editor", {"command": "view", "path": "a.py"}),
        tool_reply("editor", {"command": "edit", "path": "a.py", "file_text": "x = 2\n"}),
        tool_reply("submit", {}),
    ])  # fmt: skip
    assert result["exit_status"] == "submitted"
    assert (repo / "a.py").read_text() == "x = 2\n"
    assert [s["tool"] for s in result["steps"]] == ["editor", "editor"]
    assert result["steps"][0]["observation"] == "     1\tx = 1"
    assert result["usage"] == {"prompt_tokens": 30, "completion_tokens": 15, "calls": 3,
                               "cost_usd": pytest.approx(30 * 3e-6 + 15 * 15e-6)}  # fmt: skip
    assert [t["function"]["name"] for t in client.requests[0]["tools"]] == ["bash", "editor", "submit"]
    assert client.requests[1]["messages"][-1] == {"role": "tool", "tool_call_id": "call_editor",
                                                  "content": "     1\tx = 1"}  # fmt: skip


def test_reply_without_tool_call_ends_the_run(tmp_path):
    result, _, _ = run(tmp_path, [text_reply("I think it is fine.")])
    assert result["exit_status"] == "submitted" and result["steps"] == []
    assert result["error"] == "the reply had no tool call"  # said plainly, for whoever reads the trajectory


def test_text_mode_parses_blocks_and_sends_no_tools(tmp_path):
    result, client, _ = run(tmp_path, [text_reply("```bash\necho hello\n```"), text_reply("done")], "text")
    assert result["exit_status"] == "submitted"
    assert "tools" not in client.requests[0]
    assert "plain-text protocol" in client.requests[0]["messages"][0]["content"]
    assert client.requests[1]["messages"][-1] == {"role": "user", "content": "Output of bash:\nhello\n"}


def test_step_limit_stops_with_limits_exceeded(tmp_path):
    replies = [tool_reply("bash", {"command": "true"})] * 10
    result, client, _ = run(tmp_path, replies, limits={"max_steps": 3})
    assert result["exit_status"] == "limits_exceeded" and "step limit 3" in result["error"]
    assert len(client.requests) == 3


def test_the_tasks_step_limit_applies_in_full(tmp_path):
    """paper.yaml's 150 self-modification steps are 150 model calls: the agent adds no cap of its own."""
    view = tool_reply("editor", {"command": "view", "path": "a.py"})
    result, client, _ = run(tmp_path, [view] * 200, limits={"max_steps": 150})
    assert result["exit_status"] == "limits_exceeded" and len(client.requests) == 150


def test_cost_limit(tmp_path):
    result, client, _ = run(tmp_path, [tool_reply("bash", {"command": "true"})] * 5, limits={"max_cost_usd": 1e-4})
    assert result["exit_status"] == "limits_exceeded" and result["error"] == "cost limit reached"


def test_context_overflow_is_recorded_as_a_structured_step(tmp_path):
    overflow = api_error(400, "context_length_exceeded", "maximum context length exceeded")
    result, _, _ = run(tmp_path, [tool_reply("bash", {"command": "true"}), overflow])
    assert result["exit_status"] == "context_overflow"
    assert result["steps"][-1]["error"] == "context_length_exceeded" and result["steps"][-1]["tool"] is None


def test_other_api_errors_end_with_error(tmp_path):
    result, _, _ = run(tmp_path, [api_error(400, "bad_request", "nonsense request")])
    assert result["exit_status"] == "error" and "nonsense request" in result["error"]


def test_tools_unsupported_switches_to_text_protocol(tmp_path):
    refusal = api_error(400, "tools_unsupported", "this model does not support tools")
    result, client, _ = run(tmp_path, [refusal, text_reply("```bash\necho hi\n```"), text_reply("done")])
    assert result["exit_status"] == "submitted"
    assert "tools" in client.requests[0] and "tools" not in client.requests[1]
    assert result["steps"][0]["tool"] == "bash"


def test_three_format_errors_end_the_run(tmp_path):
    bad = text_reply("```editor\nnot json\n```")
    result, _, _ = run(tmp_path, [bad, bad, bad], "text")
    assert result["exit_status"] == "format_error"
    assert [s["error"] for s in result["steps"]] == ["format_error"] * 3


# -- what a weak real model does (seen from llama.cpp with a 270M model) -------------------------
def test_every_request_caps_output_and_waits_no_longer_than_the_time_limit(tmp_path):
    _, client, _ = run(tmp_path, [tool_reply("bash", {"command": "true"})], limits={"max_seconds": 50})
    assert all(r["max_tokens"] > 0 for r in client.requests)
    assert all(0 < r["timeout"] <= 50 for r in client.requests)


def test_malformed_tool_arguments_are_a_recorded_format_error_and_the_run_goes_on(tmp_path):
    call = {"id": "c1", "type": "function", "function": {"name": "bash", "arguments": '{"command": "ls'}}
    broken = {"choices": [{"message": {"content": None, "tool_calls": [call]}}], "usage": {}}
    result, client, _ = run(tmp_path, [broken, tool_reply("submit", {})])
    assert result["exit_status"] == "submitted"
    assert result["steps"][0]["error"] == "format_error" and "not valid JSON" in result["steps"][0]["observation"]
    assert client.requests[1]["messages"][-1]["role"] == "tool"  # the model is told, with its call id


def test_a_reply_cut_off_at_the_token_limit_is_a_format_error_not_a_submission(tmp_path):
    runaway = {"choices": [{"message": {"content": "la " * 50}, "finish_reason": "length"}], "usage": {}}
    result, client, _ = run(tmp_path, [runaway] * 3)
    assert result["exit_status"] == "format_error" and len(client.requests) == 3
    assert "output token limit" in result["error"]


def test_a_call_that_outlives_the_time_limit_ends_the_run_with_the_edits_kept(tmp_path):
    slow = openai.APITimeoutError(request=httpx2.Request("POST", "http://gateway/v1/chat/completions"))
    edit = tool_reply("editor", {"command": "edit", "path": "a.py", "file_text": "x = 2\n"})
    result, _, repo = run(tmp_path, [edit, slow])
    assert result["exit_status"] == "limits_exceeded" and result["steps"][-1]["error"] == "time"
    assert (repo / "a.py").read_text() == "x = 2\n"  # what it did stays for the framework's diff
