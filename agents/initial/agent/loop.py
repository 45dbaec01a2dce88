"""The tool-use loop: ask the model, run the tool it calls, feed back the output, until done."""

import json
import time
from pathlib import Path
from string import Template

from . import llm, text_protocol, tools
from .limits import Limits, cost_of

PROMPTS = Path(__file__).parent / "prompts"
# How a failed model call ends the run: LLMError.kind -> (exit_status, step error).
FAILURES = {"context_overflow": ("context_overflow", "context_length_exceeded"),
            "budget": ("limits_exceeded", "budget"), "timeout": ("limits_exceeded", "time")}  # fmt: skip


class Trajectory:
    """What the run did, written to OUT_DIR/trajectory.json after every step (a crash loses little)."""

    def __init__(self, instance_id: str, out_dir: Path):
        self.path = Path(out_dir) / "trajectory.json"
        self.data = {"instance_id": instance_id, "exit_status": None, "messages": [], "steps": [], "error": None,
                     "usage": {"prompt_tokens": 0, "completion_tokens": 0, "calls": 0, "cost_usd": 0.0}}

    def add_usage(self, usage: dict) -> None:
        total = self.data["usage"]
        for key in ("prompt_tokens", "completion_tokens"):
            total[key] += usage.get(key) or 0
        total["calls"], total["cost_usd"] = total["calls"] + 1, total["cost_usd"] + cost_of(usage)

    def add_step(self, tool, arguments, observation: str, error: str | None, started: float) -> None:
        self.data["steps"].append({
            "index": len(self.data["steps"]), "tool": tool, "arguments": arguments,
            "observation": tools.truncate(observation, 2000), "error": error,
            "duration_s": round(time.monotonic() - started, 3),
        })  # fmt: skip

    def save(self, messages: list[dict], status: str | None = None, error: str | None = None):
        self.data["messages"] = messages
        if status:
            self.data["exit_status"], self.data["error"] = status, error
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self.data, indent=1))
        tmp.replace(self.path)
        return self.data


def first_messages(task: dict, repo: Path, tool_mode: str) -> list[dict]:
    system = (PROMPTS / "system.md").read_text()
    if tool_mode == "text":
        system += "\n\n" + text_protocol.instructions(tools.SCHEMAS)
    instance = Template((PROMPTS / "instance.md").read_text()).safe_substitute(
        problem_statement=task.get("problem_statement", ""),
        test_description=task.get("test_description", ""), repo=str(repo),
    )  # fmt: skip
    return [{"role": "system", "content": system}, {"role": "user", "content": instance}]


def next_actions(message: dict, tool_mode: str) -> list[tuple[str | None, str, dict | str]]:
    """(call id, tool, arguments) for every action in an assistant message; [] means it is done."""
    if tool_mode == "tools":
        calls = message.get("tool_calls") or []
        return [(c["id"], c["function"]["name"], c["function"]["arguments"]) for c in calls]
    action = text_protocol.parse_action(message.get("content") or "", [s["name"] for s in tools.SCHEMAS])
    return [(None, *action)] if action else []


def run(task: dict, repo: Path, out_dir: Path, client, model: str, tool_mode: str = "tools") -> dict:
    limits = Limits.from_task(task.get("limits"))
    trajectory = Trajectory(task.get("instance_id", "unknown"), out_dir)
    messages = first_messages(task, repo, tool_mode)
    started, format_errors = time.monotonic(), 0
    for _ in range(limits.max_steps):
        if time.monotonic() - started > limits.max_seconds:
            return trajectory.save(messages, "limits_exceeded", "time limit reached")
        if trajectory.data["usage"]["cost_usd"] > limits.max_cost_usd:
            return trajectory.save(messages, "limits_exceeded", "cost limit reached")
        call_started = time.monotonic()
        remaining = limits.max_seconds - (call_started - started)  # a slow answer must not outlive the limit
        try:
            response = llm.chat(client, model, messages, tool_mode == "tools" and tools.openai_tools(), remaining)
        except llm.LLMError as exc:
            if exc.kind == "tools_unsupported" and tool_mode == "tools":
                tool_mode, messages = "text", first_messages(task, repo, "text") + messages[2:]
                continue  # the same turn again, in the text protocol
            status, label = FAILURES.get(exc.kind, ("error", exc.kind))
            trajectory.add_step(None, None, str(exc), label, call_started)
            return trajectory.save(messages, status, str(exc))
        trajectory.add_usage(response.get("usage") or {})
        message, cut_off = response["choices"][0]["message"], response["choices"][0].get("finish_reason") == "length"
        assistant = {"role": "assistant", "content": message.get("content") or ""}
        if tool_mode == "tools" and message.get("tool_calls"):
            assistant["tool_calls"] = [{"id": c["id"], "type": "function", "function": c["function"]}
                                       for c in message["tool_calls"]]  # fmt: skip
        messages.append(assistant)
        try:
            actions = next_actions(assistant, tool_mode)
            if cut_off and not actions:
                raise text_protocol.FormatError("the reply hit the output token limit before any tool call; be brief")
        except text_protocol.FormatError as exc:
            format_errors += 1
            trajectory.add_step(None, None, str(exc), "format_error", call_started)
            if format_errors >= 3:
                return trajectory.save(messages, "format_error", str(exc))
            messages.append({"role": "user", "content": f"Format error: {exc}. Try again."})
            continue
        if not actions or any(name == "submit" for _, name, _ in actions):
            return trajectory.save(messages, "submitted", None if actions else "the reply had no tool call")
        for call_id, name, arguments in actions:
            step_started = time.monotonic()
            observation = tools.run_tool(repo, name, arguments)
            unreadable = observation.startswith(f"Error: arguments of {name}")  # weak models send broken JSON
            trajectory.add_step(name, arguments, observation, "format_error" if unreadable else None, step_started)
            if call_id is None:
                messages.append({"role": "user", "content": f"Output of {name}:\n{observation}"})
            else:
                messages.append({"role": "tool", "tool_call_id": call_id, "content": observation})
        trajectory.save(messages)
    return trajectory.save(messages, "limits_exceeded", f"step limit {limits.max_steps} reached")
