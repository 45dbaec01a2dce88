"""The scripted test-double model: diagnosis JSON, self-modification through the agent's own tools (real
subprocess agent, real Unix-socket HTTP, real git), and determinism."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dgm.llm.base import CallContext
from dgm.llm.scripted import DIAGNOSIS_KEYS, ScriptedUpstream, load_catalogue, parse_view
from test_seed_agent import (LONG, LONG_FIXED, LONG_ISSUE, MULTI, MULTI_FIXED, MULTI_ISSUE, SEED, git, gold_patch,
                             make_repo, run_agent)

CONTEXT = {p: CallContext("run", "node", "attempt", p) for p in ("diagnosis", "self_modify", "task")}


def agent_code(agent_dir: Path) -> str:
    files = sorted(p for p in agent_dir.rglob("*") if p.is_file() and "__pycache__" not in p.parts
                   and ".pytest_cache" not in p.parts and ".git" not in p.parts)  # fmt: skip
    return "\n".join(f"=== {p.relative_to(agent_dir)} ===\n{p.read_text()}" for p in files)


def diagnosis_request(code: str, log: str) -> dict:
    prompt = f"Diagnose this agent.\n<agent_code>\n{code}\n</agent_code>\nTask log:\n{log}"
    return {"model": "o1", "messages": [{"role": "user", "content": prompt}]}


def parse_diagnosis(response: dict) -> dict:
    content = response["choices"][0]["message"]["content"]
    return json.loads(re.sub(r"^```json\n|\n```$", "", content))


def test_diagnosis_is_valid_json_and_proposes_only_missing_items():
    model = ScriptedUpstream(malformed_rate=0)
    seed_code = agent_code(SEED)
    chosen = set()
    for n in range(30):
        answer = parse_diagnosis(model.complete(diagnosis_request(seed_code, f"run {n}: FAILED"), CONTEXT["diagnosis"]))
        assert tuple(answer) == DIAGNOSIS_KEYS
        chosen.add(re.search(r"Catalogue item: (\w+)", answer["implementation_suggestion"]).group(1))
    assert chosen == {item.name for item in load_catalogue()}  # every item is reachable from the seed
    evolved = seed_code + '\n"enum": ["view", "create", "edit", "str_replace"]\nnudge.md\n'
    for n in range(30):
        answer = parse_diagnosis(model.complete(diagnosis_request(evolved, f"log {n}"), CONTEXT["diagnosis"]))
        assert not re.search(r"Catalogue item: (editor_str_replace|keep_going)\b", answer["implementation_suggestion"])


def test_malformed_first_answers_are_rare_switchable_and_retried_fine():
    code = agent_code(SEED)
    rates = [ScriptedUpstream().complete(diagnosis_request(code, f"log {n}"), CONTEXT["diagnosis"])
             for n in range(100)]  # fmt: skip
    bad = [r for r in rates if not r["choices"][0]["message"]["content"].startswith("```json")]
    assert 1 <= len(bad) <= 20
    always = ScriptedUpstream(malformed_rate=1.0)
    request = diagnosis_request(code, "log")
    first = always.complete(request, CONTEXT["diagnosis"])["choices"][0]["message"]["content"]
    with pytest.raises(json.JSONDecodeError):
        json.loads(first)
    request["messages"] += [{"role": "assistant", "content": first},
                            {"role": "user", "content": "That was not valid JSON; answer again."}]  # fmt: skip
    assert tuple(parse_diagnosis(always.complete(request, CONTEXT["diagnosis"]))) == DIAGNOSIS_KEYS


def test_same_request_same_response():
    model = ScriptedUpstream(lambda text: None)
    request = {"model": "scripted", "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
               "tools": [{"type": "function", "function": {"name": "bash", "parameters": {}}}]}  # fmt: skip
    first = model.complete(request, CONTEXT["task"])
    assert first == model.complete(json.loads(json.dumps(request)), CONTEXT["task"])
    assert first["model"] == "scripted" and "test-double" in first["system_fingerprint"]
    assert first["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "bash"


def test_truncated_views_hide_lines_next_to_the_cut():
    view = parse_view("     1\ta\n     2\tb\n<<< 50 characters truncated >>>\n     9\ti\n    10\tj")
    assert view.lines == {1: "a", 10: "j"} and view.last == 10 and not view.complete
    assert view.first_gap() == [2, 9]  # what it asks a line-range view for
    head_only = parse_view("     1\ta\n     2\tb\n<<< 50 characters truncated >>>")
    assert head_only.last is None and head_only.first_gap() == [2, -1]  # where the file ends is unknown
    assert parse_view("     1\tx = 'truncated'\n     2\ty").complete  # a numbered line is code, not a marker


def test_a_bad_catalogue_file_is_named(tmp_path):
    (tmp_path / "oops.yaml").write_text("name: oops\nweight: 1\npresent: x\n")
    with pytest.raises(ValueError, match=r"oops\.yaml: missing key 'diagnosis'"):
        load_catalogue(tmp_path)


def self_modify(tmp_path: Path, agent_copy: Path, item: str, runner: Path = SEED) -> dict:
    """The runner agent works on `agent_copy` (a git repo of agent source) to implement a catalogue item."""
    work = tmp_path / f"run-{item}"
    work.mkdir()
    statement = f"# To Implement\nCatalogue item: {item}\n"
    return run_agent(work, ScriptedUpstream(), agent_copy, statement, agent_dir=runner, purpose="self_modify")


def own_tests(agent_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
                          cwd=agent_dir, capture_output=True, text=True, timeout=120)  # fmt: skip


@pytest.fixture
def agent_copy(tmp_path):
    copy = tmp_path / "agent-copy"
    shutil.copytree(SEED, copy, ignore=shutil.ignore_patterns("__pycache__", ".pytest_cache"))
    return make_repo(copy, {})


def test_self_modify_str_replace_and_view_ranges_unlock_long_files(tmp_path, agent_copy):
    trajectory = self_modify(tmp_path, agent_copy, "editor_str_replace")
    assert trajectory["exit_status"] == "submitted"
    git(agent_copy, "add", "-A")
    diff = git(agent_copy, "diff", "--cached")
    assert "def str_replace" in diff and "tests/test_editor_str_replace.py" in diff
    assert own_tests(agent_copy).returncode == 0
    # A second item, implemented by the child itself, on its own drifted source.
    self_modify(tmp_path, agent_copy, "view_line_ranges", runner=agent_copy)
    assert "def view_range" in (agent_copy / "agent" / "editor.py").read_text()
    assert own_tests(agent_copy).returncode == 0
    # The grandchild now resolves the long-file task that the seed gives up on, with a targeted edit.
    repo = solve(tmp_path, agent_copy, LONG, LONG_FIXED, LONG_ISSUE)
    assert (repo / "big.py").read_text() == LONG_FIXED["big.py"]
    edits = [s for s in json.loads((tmp_path / "solve" / "out" / "trajectory.json").read_text())["steps"]
             if s["tool"] == "editor" and json.loads(s["arguments"])["command"] in ("edit", "str_replace")]
    assert [json.loads(s["arguments"])["command"] for s in edits] == ["str_replace"]


def solve(tmp_path: Path, agent_dir: Path, base: dict, fixed: dict, issue: str) -> Path:
    """The scripted model solves a fixture task (gold patch from a real git diff) through `agent_dir`."""
    for name in ("gold", "task-repo", "solve"):
        (tmp_path / name).mkdir()
    oracle = {issue: gold_patch(base, fixed, tmp_path / "gold")}.get
    repo = make_repo(tmp_path / "task-repo", base)
    run_agent(tmp_path / "solve", ScriptedUpstream(oracle), repo, issue, agent_dir=agent_dir)
    return repo


def test_line_range_views_alone_let_it_read_and_rewrite_a_long_file(tmp_path, agent_copy):
    """The seed's view of big.py is cut in the middle; `view_range` shows the hidden lines, so the model has seen
    every line and can rewrite the file whole, with no targeted edit."""
    self_modify(tmp_path, agent_copy, "view_line_ranges")
    assert own_tests(agent_copy).returncode == 0
    repo = solve(tmp_path, agent_copy, LONG, LONG_FIXED, LONG_ISSUE)
    assert (repo / "big.py").read_text() == LONG_FIXED["big.py"]


def test_keep_going_lets_it_finish_a_multi_file_fix(tmp_path, agent_copy):
    self_modify(tmp_path, agent_copy, "keep_going")
    assert own_tests(agent_copy).returncode == 0
    repo = solve(tmp_path, agent_copy, MULTI, MULTI_FIXED, MULTI_ISSUE)
    assert {name: (repo / name).read_text() for name in MULTI} == MULTI_FIXED


def test_an_advertised_but_missing_command_gains_nothing(tmp_path, agent_copy):
    """The model never reads the tool schemas: an editor whose schema lists `str_replace` and `view_range` but
    which implements neither does no better than the seed on a long file."""
    editor_py = agent_copy / "agent" / "editor.py"
    source = editor_py.read_text().replace('"edit"]', '"edit", "str_replace"]')
    source = source.replace('"file_text": {', '"view_range": {"type": "array"}, "old_str": {"type": "string"}, '
                            '"new_str": {"type": "string"}, "file_text": {')
    editor_py.write_text(source)
    schema = json.dumps(subprocess.run([sys.executable, "-c", "from agent import tools; print(tools.openai_tools())"],
                                       cwd=agent_copy, capture_output=True, text=True, check=True).stdout)
    assert "str_replace" in schema and "view_range" in schema
    repo = solve(tmp_path, agent_copy, LONG, LONG_FIXED, LONG_ISSUE)
    assert git(repo, "diff") == ""


def test_broken_refactor_makes_the_agents_own_tests_fail(tmp_path, agent_copy):
    self_modify(tmp_path, agent_copy, "broken_refactor")
    assert "the head alone carries what matters" in (agent_copy / "agent" / "tools.py").read_text()
    result = own_tests(agent_copy)
    assert result.returncode != 0 and "test_truncate_keeps_head_and_tail" in result.stdout


def test_unknown_item_produces_no_change(tmp_path, agent_copy):
    trajectory = self_modify(tmp_path, agent_copy, "teleportation")
    assert trajectory["exit_status"] == "submitted"
    assert git(agent_copy, "status", "--porcelain") == ""
