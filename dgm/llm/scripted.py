"""The scripted model: a deterministic test-double upstream that acts only through the agent's own tools.

It answers OpenAI chat-completions requests (tool calls included) for three purposes:

- ``diagnosis``: proposes one improvement from the catalogue (``scripted_catalogue/*.yaml``) that is not yet
  present in the agent code shown between ``<agent_code>`` tags; a rare, switchable malformed first answer
  exercises the framework's retry.
- ``self_modify``: implements the catalogue item named in the problem statement (``Catalogue item: NAME``) by
  viewing the target files with the agent's editor, applying anchor-based edits to what it saw, and writing
  whole files back with the editor; then it runs the agent's tests and submits.
- ``task``: solves a benchmark task from a gold-patch oracle, but only through the agent's tools, and with a
  competence that depends only on what those tools return (see ``scripted_catalogue/README.md``).

It is stateless: each reply is computed by replaying the conversation (its own earlier actions and the
observations the agent returned) through a policy written as a generator. Output depends only on the request
and the call's purpose. It is a TEST DOUBLE: every response says so (model "scripted", fingerprint).
"""

from __future__ import annotations

import hashlib
import json
import re
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Generator

import yaml

from dgm.llm.base import CallContext, ContextOverflow, UpstreamError

CATALOGUE_DIR = Path(__file__).parent / "scripted_catalogue"
DIAGNOSIS_KEYS = ("log_summarization", "potential_improvements", "improvement_proposal",
                  "implementation_suggestion", "problem_description")  # fmt: skip
FINGERPRINT = "scripted-test-double"
MAX_PAGES = 10  # line-range views of one file it asks for, at most
NUMBERED_LINE = re.compile(r"^\s*(\d+)\t(.*)$")
ERROR_LINE = re.compile(r"^\s*error\b", re.I | re.M)
ITEM_LINE = re.compile(r"Catalogue item:\s*([A-Za-z_]\w*)")


# ---------------------------------------------------------------- actions the policies yield


@dataclass(frozen=True)
class Action:
    tool: str | None  # None: a plain reply without a tool call
    arguments: dict = field(default_factory=dict)
    text: str = ""


def bash(command: str, why: str = "") -> Action:
    return Action("bash", {"command": command}, why)


def editor(why: str = "", **arguments) -> Action:
    return Action("editor", arguments, why)


def say(text: str) -> Action:
    return Action(None, {}, text)


Policy = Generator[Action, str, None]


# ---------------------------------------------------------------- the catalogue


@dataclass(frozen=True)
class CatalogueItem:
    name: str
    weight: int
    present: re.Pattern
    diagnosis: dict
    edits: list[dict]
    source: Path

    def is_present(self, code: str) -> bool:
        return bool(self.present.search(code))


def load_catalogue(directory: Path = CATALOGUE_DIR) -> list[CatalogueItem]:
    """Every *.yaml item, sorted by name; a malformed file raises ValueError naming file and key."""
    items = []
    for path in sorted(Path(directory).glob("*.yaml")):
        raw = yaml.safe_load(path.read_text())
        for key in ("name", "weight", "present", "diagnosis", "edits"):
            if not isinstance(raw, dict) or key not in raw:
                raise ValueError(f"{path}: missing key {key!r}")
        for key in DIAGNOSIS_KEYS[1:]:
            if key not in raw["diagnosis"]:
                raise ValueError(f"{path}: missing key diagnosis.{key}")
        for index, edit in enumerate(raw["edits"]):
            if "path" not in edit or not ({"create", "replace", "append"} & set(edit)):
                raise ValueError(f"{path}: edits[{index}] needs a path and create/replace/append")
        if f"Catalogue item: {raw['name']}" not in raw["diagnosis"]["implementation_suggestion"]:
            raise ValueError(f"{path}: diagnosis.implementation_suggestion must name 'Catalogue item: {raw['name']}'")
        items.append(CatalogueItem(raw["name"], int(raw["weight"]), re.compile(raw["present"]),
                                   raw["diagnosis"], raw["edits"], path))  # fmt: skip
    return items


class AnchorMissing(ValueError):
    pass


def apply_edit(content: str, edit: dict) -> str:
    """One file's anchor-based edit applied to its current content (each anchor must occur exactly once)."""
    for op in edit.get("replace", []):
        pad = " " * int(op.get("indent", 0))
        old, new = textwrap.indent(op["old"], pad), textwrap.indent(op["new"], pad)
        if content.count(old) != 1:
            raise AnchorMissing(f"{edit['path']}: anchor found {content.count(old)} times: {old.strip()[:60]!r}")
        content = content.replace(old, new)
    return content + edit.get("append", "")


# ---------------------------------------------------------------- reading the agent's observations


@dataclass
class View:
    """What the model knows of one file: the lines an editor view showed it reliably, and where the file ends."""

    lines: dict[int, str] = field(default_factory=dict)
    last: int | None = None  # the file's last line number, once an observation showed the end of the file

    @property
    def complete(self) -> bool:
        return self.last is not None and all(n in self.lines for n in range(1, self.last + 1))

    def add(self, observation: str, shows_end: bool = True) -> int:
        """Learn from one view observation (`shows_end`: it was asked to run to the end of the file); returns how
        many lines it showed that were not seen before."""
        lines, cut_at_end = parse_numbered(observation)
        new = len(set(lines) - set(self.lines))
        self.lines.update(lines)
        if shows_end and lines and not cut_at_end:
            self.last = max(lines)
        return new

    def first_gap(self) -> list[int] | None:
        """[first, last] of the first run of unseen lines ([first, -1] when the end is unknown); None if none."""
        if not self.lines:
            return None
        end = self.last or max(self.lines)
        missing = next((n for n in range(1, end + 1) if n not in self.lines), None)
        if missing is None:
            return None if self.last else [end + 1, -1]
        return [missing, next(n for n in range(missing, end + 1) if n in self.lines) - 1]

    def shows(self, text: str) -> bool:
        """Did the model see `text` within one run of consecutive lines?"""
        runs: list[list[str]] = []
        for n in sorted(self.lines):
            if not runs or n - 1 not in self.lines:
                runs.append([])
            runs[-1].append(self.lines[n])
        return any(text in "\n".join(run) for run in runs)

    def text(self) -> str:
        return "".join(self.lines[n] + "\n" for n in sorted(self.lines))


def parse_numbered(observation: str) -> tuple[dict[int, str], bool]:
    """Numbered lines (`cat -n` style) of a view, and whether it ends in a truncation marker. Lines next to a
    marker are distrusted: a cut may fall inside them."""
    lines: dict[int, str] = {}
    after_marker, cut_at_end, last = False, False, None
    for raw in observation.splitlines():
        match = NUMBERED_LINE.match(raw)
        if not match:
            if "truncated" in raw.lower():
                after_marker = cut_at_end = True
                lines.pop(last, None)
            continue
        number = int(match.group(1))
        if not after_marker:
            lines[number] = match.group(2)
        after_marker, cut_at_end, last = False, False, number
    return lines, cut_at_end


def parse_view(observation: str) -> View:
    view = View()
    view.add(observation)
    return view


def is_error(observation: str) -> bool:
    """Did the tool report a failure? (In the text protocol the agent may put a header line before it.)"""
    return bool(ERROR_LINE.search(observation))


# ---------------------------------------------------------------- unified diffs (the task oracle's gold patch)


@dataclass
class Hunk:
    old_start: int
    old: list[str]
    new: list[str]


@dataclass
class FilePatch:
    path: str
    hunks: list[Hunk]
    created: bool = False
    deleted: bool = False


def parse_patch(patch: str) -> list[FilePatch]:
    files: list[FilePatch] = []
    old_path = None
    for line in patch.splitlines():
        if line.startswith("--- "):
            old_path = line[4:].split("\t")[0]
        elif line.startswith("+++ ") and old_path is not None:
            new_path = line[4:].split("\t")[0]
            path = (new_path if new_path != "/dev/null" else old_path).removeprefix("b/").removeprefix("a/")
            files.append(FilePatch(path, [], old_path == "/dev/null", new_path == "/dev/null"))
            old_path = None
        elif line.startswith("@@") and files:
            start = int(re.match(r"@@ -(\d+)", line).group(1))
            files[-1].hunks.append(Hunk(start, [], []))
        elif files and files[-1].hunks and line[:1] in (" ", "-", "+", ""):
            hunk, body = files[-1].hunks[-1], line[1:]
            if line[:1] in (" ", "", "-"):
                hunk.old.append(body)
            if line[:1] in (" ", "", "+"):
                hunk.new.append(body)
    return files


def apply_hunks(lines: list[str], hunks: list[Hunk]) -> list[str] | None:
    out, pos = [], 0
    for hunk in hunks:
        start = hunk.old_start - 1 if hunk.old else hunk.old_start
        if lines[start : start + len(hunk.old)] != hunk.old or start < pos:
            return None
        out += lines[pos:start] + hunk.new
        pos = start + len(hunk.old)
    return out + lines[pos:]


# ---------------------------------------------------------------- policies
#
# The policies never read the tool schemas: what a tool offers shows only in what it returns. A `view` with a
# `view_range` argument that the editor ignores returns the same cut view again; an editor command it lacks
# returns an error. dgm/llm/scripted_catalogue/README.md sums up what makes a task succeed or fail.


def read_file(path: str) -> Generator[Action, str, View]:
    """View a file with the editor. When the view was cut, ask for the unseen lines with `view_range`, for as
    long as that shows new lines."""
    view = View()
    view.add((yield editor(f"Viewing {path}.", command="view", path=path)))
    for _ in range(MAX_PAGES):
        gap = view.first_gap()
        if gap is None:
            break
        observation = yield editor(f"Viewing lines {gap[0]}..{gap[1]} of {path}, which I have not seen.",
                                   command="view", path=path, view_range=gap)  # fmt: skip
        if not view.add(observation, shows_end=gap[1] == -1):
            break  # the editor showed nothing new: it cannot show line ranges
    return view


def finish(text: str) -> Policy:
    yield Action("submit", {}, text)
    yield say(text)  # the call came back (no `submit` tool): a reply without a tool call ends the run


def task_policy(patch: str) -> Policy:
    """Solve a task from its gold patch, only through the agent's tools. On a multi-file patch it stops after the
    first file (a reply without a tool call) and goes on only if the agent answers that reply."""
    files = parse_patch(patch)
    yield bash("git status --short && ls", "Let me look at the repository.")
    for index, file in enumerate(files):
        if index == 1:
            yield say(f"I have changed {files[0].path}; the issue should be fixed now.")
        if file.created:
            yield editor(f"Creating {file.path}.", command="create", path=file.path,
                         file_text="".join(line + "\n" for line in file.hunks[0].new if file.hunks))  # fmt: skip
        elif file.deleted:
            yield bash(f"rm -f -- '{file.path}'", f"Removing {file.path}.")
        else:
            yield from edit_file(file)
    yield bash("git diff --stat", "Checking my change.")
    yield from finish("I have resolved the issue.")


def edit_file(file: FilePatch) -> Policy:
    """Targeted edits (`str_replace`) of hunks it saw; if the editor refuses them, a rewrite of the whole file,
    which needs every line of it."""
    view = yield from read_file(file.path)
    olds = ["\n".join(hunk.old) for hunk in file.hunks]
    if all(old and view.shows(old) for old in olds):
        for hunk, old in zip(file.hunks, olds):
            observation = yield editor(f"Editing {file.path}.", command="str_replace", path=file.path,
                                       old_str=old, new_str="\n".join(hunk.new))  # fmt: skip
            if is_error(observation):
                break
        else:
            return
    if not view.complete:
        return  # it cannot reproduce lines it never saw
    new = apply_hunks([view.lines[n] for n in sorted(view.lines)], file.hunks)
    if new is not None:
        yield editor(f"Rewriting {file.path}.", command="edit", path=file.path,
                     file_text="".join(line + "\n" for line in new))  # fmt: skip


def self_modify_policy(item: CatalogueItem | None) -> Policy:
    """Implement a catalogue item in the agent's own source, through the agent's own editor."""
    yield bash("find . -path ./.git -prune -o -type f -print | sort", "Let me look at my own code.")
    if item is None:
        yield say("The problem statement names no improvement I know how to implement.")
        return
    originals = {}
    for edit in item.edits:
        if "create" in edit:
            continue
        view = yield from read_file(edit["path"])
        if not view.complete:
            yield say(f"I could not read {edit['path']} in full, so I cannot edit it safely.")
            return
        originals[edit["path"]] = view.text()
    if originals and item.is_present("".join(originals.values())):
        yield say(f"{item.name} is already implemented.")
        return
    try:
        updated = {e["path"]: apply_edit(originals[e["path"]], e) for e in item.edits if "create" not in e}
    except AnchorMissing as exc:
        yield say(f"I could not find where to make the change ({exc}).")
        return
    for path, content in updated.items():
        yield editor(f"Updating {path}.", command="edit", path=path, file_text=content)
    for edit in item.edits:
        if "create" in edit:
            yield editor(f"Creating {edit['path']}.", command="create", path=edit["path"], file_text=edit["create"])
    yield bash("python -m pytest -q tests 2>&1 | tail -n 5", "Running my own tests.")
    yield from finish(f"Implemented {item.name}.")


def idle_policy() -> Policy:
    yield bash("git status --short", "Let me look at the repository.")
    yield say("I could not find a fix for this issue.")


# ---------------------------------------------------------------- the upstream


def digest(*parts: object) -> int:
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(blob).digest()[:8], "big")


def observations(messages: list[dict]) -> list[str]:
    """For each assistant turn after the first user message, what came back (tool/user messages) after it."""
    first_user = next((i for i, m in enumerate(messages) if m.get("role") == "user"), len(messages))
    seen: list[str] = []
    for message in messages[first_user + 1 :]:
        if message.get("role") == "assistant":
            seen.append("")
        elif seen:
            seen[-1] += str(message.get("content") or "")
    return seen


def replay(policy: Policy, messages: list[dict]) -> Action:
    """The policy's next action after re-feeding every earlier observation (the model keeps no state)."""
    try:
        action = next(policy)
        for observation in observations(messages):
            action = policy.send(observation)
    except StopIteration:
        return say("I am done.")
    return action


class ScriptedUpstream:
    """Deterministic test double speaking the OpenAI chat-completions protocol (see module docstring)."""

    name = "scripted"
    is_scripted = True

    def __init__(
        self,
        solutions: Callable[[str], str | None] | None = None,
        *,
        malformed_rate: float = 0.08,
        supports_tools: bool = True,
        context_window: int | None = None,
        catalogue_dir: Path = CATALOGUE_DIR,
        latency_s: float = 0.0,
    ):
        if latency_s < 0:
            raise TypeError(f"latency_s must be >= 0 (got {latency_s})")
        self.latency_s = latency_s  # a real model's answer takes seconds: `dgm bench scale` sets this
        self.solutions = solutions or (lambda text: None)
        self.malformed_rate = malformed_rate
        self.supports_tools = supports_tools
        self.context_window = context_window  # in estimated tokens; None = unlimited
        self.catalogue = load_catalogue(catalogue_dir)

    def complete(self, request: dict, context: CallContext) -> dict:
        messages = request.get("messages")
        if not isinstance(messages, list) or not messages:
            raise UpstreamError("request has no messages", status=400, code="invalid_request")
        if request.get("tools") and not self.supports_tools:
            raise UpstreamError("model 'scripted' does not support tools", status=400, code="tools_unsupported")
        prompt_tokens = len(json.dumps(messages)) // 4 + len(json.dumps(request.get("tools") or [])) // 4
        if self.context_window and prompt_tokens > self.context_window:
            raise ContextOverflow(f"maximum context length is {self.context_window} tokens, got {prompt_tokens}")
        if context.purpose == "diagnosis":
            action = say(self.diagnose(messages))
        elif context.purpose in ("self_modify", "task"):
            action = replay(self.policy(request, context.purpose), messages)
        else:
            action = say("OK")
        if self.latency_s:
            time.sleep(self.latency_s)
        return self.response(request, action, prompt_tokens)

    # -- purposes

    def diagnose(self, messages: list[dict]) -> str:
        prompt = "\n".join(str(m.get("content") or "") for m in messages if m.get("role") != "assistant")
        match = re.search(r"<agent_code>(.*?)</agent_code>", prompt, re.S)
        code = match.group(1) if match else prompt
        log = prompt[match.end() :] if match else prompt
        first_try = not any(m.get("role") == "assistant" for m in messages)
        if first_try and digest("malformed", prompt) % 10_000 < self.malformed_rate * 10_000:
            return "Here is my analysis: {log_summarization: the agent failed, improvement_proposal: ..."
        candidates = [item for item in self.catalogue if not item.is_present(code)]
        item = self.pick(candidates, digest("diagnosis", prompt))
        texts = item.diagnosis if item else {
            "potential_improvements": [], "improvement_proposal": "No further improvement is known.",
            "implementation_suggestion": "Catalogue item: none", "problem_description": "Nothing to implement.",
        }  # fmt: skip
        failures = len(re.findall(r"error|fail|traceback", log, re.I))
        summary = f"The log ({len(log.splitlines())} lines) mentions errors or failures {failures} times."
        return "```json\n" + json.dumps({"log_summarization": summary, **texts}, indent=2) + "\n```"

    @staticmethod
    def pick(items: list[CatalogueItem], seed: int) -> CatalogueItem | None:
        total = sum(item.weight for item in items)
        if not total:
            return None
        point = seed % total
        for item in items:
            point -= item.weight
            if point < 0:
                return item
        return None

    def policy(self, request: dict, purpose: str) -> Policy:
        user_text = "\n".join(str(m.get("content") or "") for m in request["messages"] if m.get("role") == "user")
        if purpose == "self_modify":
            match = ITEM_LINE.search(user_text)
            item = next((i for i in self.catalogue if match and i.name == match.group(1)), None)
            return self_modify_policy(item)
        first_user = next(str(m.get("content") or "") for m in request["messages"] if m.get("role") == "user")
        inner = re.search(r"<problem_statement>\s*(.*?)\s*</problem_statement>", first_user, re.S)
        patch = (self.solutions(inner.group(1)) if inner else None) or self.solutions(first_user)
        return task_policy(patch) if patch else idle_policy()

    # -- the wire format

    def response(self, request: dict, action: Action, prompt_tokens: int) -> dict:
        tool_mode = bool(request.get("tools"))
        message: dict = {"role": "assistant", "content": action.text}
        if action.tool and tool_mode:
            call_id = f"call_{digest(request.get('messages'), action.tool, action.arguments) % 10**12:012d}"
            message["tool_calls"] = [{"id": call_id, "type": "function", "function": {
                "name": action.tool, "arguments": json.dumps(action.arguments)}}]  # fmt: skip
        elif action.tool:  # the seed's plain-text protocol: a fenced block named by the tool
            body = action.arguments["command"] if action.tool == "bash" else json.dumps(action.arguments)
            message["content"] = f"{action.text}\n```{action.tool}\n{body}\n```"
        completion_tokens = len(json.dumps(message)) // 4
        return {
            "id": f"scripted-{digest(request.get('messages'), request.get('tools')) % 10**12:012d}",
            "object": "chat.completion",
            "created": 0,
            "model": "scripted",
            "system_fingerprint": FINGERPRINT,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if message.get("tool_calls") else "stop"}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens},
        }  # fmt: skip
