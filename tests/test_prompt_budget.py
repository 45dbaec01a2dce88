"""Prompts the framework builds fit the model's context window: logs are cut first, then code."""

import json

import pytest

from dgm.config import DiagnosisSection
from dgm.diagnose import DIAGNOSIS_KEYS, DiagnosisError, ParentEvidence, diagnose, fitted_prompt
from dgm.entries import TaskRecord
from dgm.improve import problem_statement
from dgm.llm.upstream import ModelSettings, Route
from dgm.llm_access import LLMAccess
from dgm.prompt_budget import CHARS_PER_TOKEN, MIN_PART_CHARS, fit, prompt_chars


def _evidence(tmp_path, log_lines=3000, code_lines=400):
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "loop.py").write_text("".join(f"def step_{i}(): return {i}  # CODE\n" for i in range(code_lines)))
    task_dir = tmp_path / "node" / "tasks" / "t1"
    task_dir.mkdir(parents=True)
    messages = [{"role": "user", "content": f"LOG line {i}: the model repeats itself"} for i in range(log_lines)]
    (task_dir / "trajectory.json").write_text(json.dumps({"exit_status": "submitted", "messages": messages}))
    (task_dir / "model_patch.diff").write_text("")
    record = TaskRecord(task_id="t1", outcome="unresolved")
    return ParentEvidence("n1", agent, tmp_path / "node", [record])


def _prompt(evidence, max_chars=None):
    return fitted_prompt("t1", evidence, lambda t: "Fix the bug.", lambda t: None, DiagnosisSection(),
                         max_chars=max_chars)[1]


def test_without_a_known_window_nothing_is_cut(tmp_path):
    evidence = _evidence(tmp_path, log_lines=50, code_lines=20)
    assert _prompt(evidence) == _prompt(evidence, max_chars=None)
    assert prompt_chars(None, 1000) is None


def test_a_diagnosis_prompt_is_cut_to_the_window_logs_first(tmp_path):
    evidence = _evidence(tmp_path)
    full = _prompt(evidence)
    # The case: a 10k-token prompt for an 8k window, with 2 answers of 512 tokens reserved.
    budget = prompt_chars(8192, 2 * 512 + 300)
    fitted = _prompt(evidence, budget)
    assert len(full) > budget >= len(fitted)
    assert fitted.count("# CODE") == full.count("# CODE")  # the code survived whole: the log paid
    assert fitted.count("LOG line") < full.count("LOG line") // 4


def test_a_tiny_window_cuts_code_too_and_still_fits(tmp_path):
    evidence = _evidence(tmp_path)
    budget = prompt_chars(2048, 2 * 256 + 300)
    fitted = _prompt(evidence, budget)
    assert len(fitted) <= budget and "# CODE" in fitted and "LOG line" in fitted


def test_fit_cuts_parts_in_order_and_keeps_a_minimum():
    rendered = []

    def render(limits):
        rendered.append(dict(limits))
        return "a" * limits["log"] + "b" * limits["code"]

    text = fit(render, {"log": 4000, "code": 4000}, 4600)
    assert len(text) <= 4600 and rendered[-1]["code"] == 4000 and rendered[-1]["log"] == 500
    text = fit(render, {"log": 4000, "code": 4000}, 900)  # parts at their minimum, the middle goes
    assert len(text) <= 900 and rendered[-1] == {"log": MIN_PART_CHARS, "code": MIN_PART_CHARS}


def test_problem_statement_keeps_the_task_and_cuts_the_agent_summary_first(tmp_path):
    (tmp_path / "AGENT.md").write_text("summary line\n" * 2000)
    diagnosis = {k: "x" for k in DIAGNOSIS_KEYS} | {"implementation_suggestion": "Add a retry.",
                                                   "problem_description": "Empty patches."}
    full = problem_statement(tmp_path, diagnosis)
    fitted = problem_statement(tmp_path, diagnosis, 3000)
    assert len(full) > 3000 >= len(fitted)
    assert "Add a retry." in fitted and "Empty patches." in fitted and "summary line" in fitted


def test_retries_show_only_the_last_bad_answer_so_the_conversation_stays_bounded():
    seen = []
    with pytest.raises(DiagnosisError):
        diagnose("prompt", lambda messages: seen.append(messages) or f"nonsense {len(seen)}", max_attempts=4)
    assert [len(m) for m in seen] == [2, 4, 4, 4]  # system + prompt, then + the last answer + a retry request
    assert seen[3][2] == {"role": "assistant", "content": "nonsense 3"}


class _Gateway:
    def __init__(self, route):
        self.routes = {"diagnosis": route}


def test_the_window_comes_from_the_route_and_reserves_the_answers():
    route = Route("diagnosis", upstream=object(), model="m",
                  settings=ModelSettings(max_context_tokens=4096, max_output_tokens=512))
    access = LLMAccess(_Gateway(route), "run")
    assert access.prompt_chars("diagnosis", answers=2) == int((4096 - 1024 - 300) * CHARS_PER_TOKEN)
    learnt = Route("diagnosis", upstream=type("U", (), {"learnt_context_tokens": 2048})(), model="m")
    assert LLMAccess(_Gateway(learnt), "run").prompt_chars("diagnosis") is not None
    assert LLMAccess(_Gateway(Route("diagnosis", upstream=object(), model="m")), "run").prompt_chars("diagnosis") is None
