"""Step 3 of a generation: a diagnosis model reads the parent's code and evidence and proposes one
improvement, as JSON with exactly five keys. Unparsable answers are retried (up to 4 calls).

Two modes (`diagnosis.include_test_patch`):
- off (default): the diagnosis is blind to the hidden tests. It sees the agent's code, the task, the
  agent's log and patch, and the outcome (resolved / unresolved / ...), but no hidden test patch, no
  hidden test names (the grading report's FAIL_TO_PASS / PASS_TO_PASS lists) and no grading log (the
  hidden tests' output and tracebacks).
- on (the paper's setting): it also sees the hidden test patch, the grading report and the grading log.

Sizes follow the official code: each log up to `max_log_chars` (250,000 characters), the agent's code
whole unless `max_code_chars` is set.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from dgm.config import DiagnosisSection, EntriesSection
from dgm.entries import TaskRecord, polyglot_prompt_kind
from dgm.prompt_budget import fit
from dgm.prompts import render
from dgm.textutil import head_tail, read_json, render_trajectory, source_listing

DIAGNOSIS_KEYS = (
    "log_summarization",
    "potential_improvements",
    "improvement_proposal",
    "implementation_suggestion",
    "problem_description",
)

ChatFn = Callable[[list[dict]], str]  # messages -> assistant text


class DiagnosisError(RuntimeError):
    pass


@dataclass
class ParentEvidence:
    """What the diagnosis may look at: the parent's code and its evaluation artifacts."""

    node_id: str
    agent_dir: Path
    node_dir: Path  # nodes/<parent>/, holding tasks/<task_id>/{trajectory.json, model_patch.diff, ...}
    records: list[TaskRecord]

    def task_file(self, task_id: str, name: str) -> Path:
        return self.node_dir / "tasks" / task_id / name

    def trajectory(self, task_id: str) -> dict | None:
        return read_json(self.task_file(task_id, "trajectory.json"))

    def text(self, task_id: str, name: str) -> str:
        path = self.task_file(task_id, name)
        return path.read_text(errors="replace") if path.is_file() else ""


@dataclass
class DiagnosisPrompt:
    """A diagnosis prompt before rendering: a template and its named parts.

    `sections` hold the large evidence (agent_code, trajectory, model_patch, test_results, test_patch),
    each already within its configured limit; `values` hold small facts (counts, the outcome). A caller
    that must fit the prompt into a small context window trims sections (logs first), then renders.
    """

    template: str
    sections: dict[str, str | None]
    values: dict[str, object] = field(default_factory=dict)

    def render(self) -> str:
        return render(self.template, **self.values, **self.sections)


def build_prompt(entry: str, evidence: ParentEvidence, problem_statement: Callable[[str], str],
                 test_patch: Callable[[str], str | None], cfg: DiagnosisSection, *,
                 entries: EntriesSection = EntriesSection(), rng: random.Random | None = None) -> DiagnosisPrompt:
    """The prompt for one entry. Hidden-test evidence (the test patch, the grading report with the hidden
    tests' names, the grading log with their tracebacks) is included only if `cfg.include_test_patch`.
    With `entries.variant == "polyglot"` the official code's Polyglot prompts are used; `rng` picks which."""
    code = {"agent_code": source_listing(evidence.agent_dir, cfg.max_code_chars)}
    records = evidence.records
    log = lambda task_id: render_trajectory(evidence.trajectory(task_id), cfg.max_log_chars)
    if entries.variant == "polyglot":
        kind = polyglot_prompt_kind(_outcome(entry, records), rng or random.Random(0), entries)
        if kind == "task":
            return DiagnosisPrompt("diagnose_polyglot_task.md", code | _task_sections(entry, evidence, test_patch, cfg),
                                   {"problem_statement": problem_statement(entry), "outcome": _outcome(entry, records)})
        template = {"solve_stochasticity": "diagnose_polyglot_stochasticity.md",
                    "solve_empty_patches": "diagnose_polyglot_empty_patch.md"}[kind]
        return DiagnosisPrompt(template, code | {"trajectory": log(entry)})
    if entry == "solve_empty_patches":
        empty = [r.task_id for r in records if r.outcome == "empty_patch"]
        return DiagnosisPrompt("diagnose_empty_patches.md", code | {"trajectory": log(empty[0]) if empty else ""}, {
            "empty_count": len(empty), "total_count": len(records),
            "empty_percent": round(100 * len(empty) / len(records)), "empty_ids": ", ".join(empty)})
    if entry == "solve_stochasticity":
        resolved = sum(r.outcome == "resolved" for r in records)
        return DiagnosisPrompt("diagnose_stochasticity.md", code, {"resolved_count": resolved, "total_count": len(records)})
    if entry == "solve_contextlength":
        overflowed = [r.task_id for r in records if r.exit_status == "context_overflow" or r.overflow_streak]
        return DiagnosisPrompt("diagnose_contextlength.md", code | {"trajectory": log(overflowed[0]) if overflowed else ""})
    return DiagnosisPrompt("diagnose_task.md", code | _task_sections(entry, evidence, test_patch, cfg),
                           {"problem_statement": problem_statement(entry), "outcome": _outcome(entry, records)})


def fitted_prompt(entry: str, evidence: ParentEvidence, problem_statement: Callable[[str], str],
                  test_patch: Callable[[str], str | None], cfg: DiagnosisSection, *,
                  entries: EntriesSection = EntriesSection(), rng: random.Random | None = None,
                  max_chars: int | None = None) -> tuple[str, str]:
    """(template, rendered prompt); with `max_chars` (the model's window is small) logs trimmed first, then code."""
    seed = (rng or random.Random(0)).random()  # one draw, however often it is rendered: the same prompt each time
    parts = lambda cfg: build_prompt(entry, evidence, problem_statement, test_patch, cfg, entries=entries,
                                     rng=random.Random(seed))
    # The system prompt and a retry request share the window with this prompt.
    room = max_chars - len(render("diagnose_system.md")) - len(render("diagnose_retry.md", problem="")) if max_chars else None
    limits = {"max_log_chars": cfg.max_log_chars,
              "max_code_chars": cfg.max_code_chars or len(source_listing(evidence.agent_dir, None))}
    text = fit(lambda cut: parts(cfg.model_copy(update=cut)).render(), limits, room)
    return parts(cfg).template, text


def _outcome(task_id: str, records: list[TaskRecord]) -> str:
    return next((r.outcome for r in records if r.task_id == task_id), "unknown")


def _task_sections(task_id: str, evidence: ParentEvidence, test_patch: Callable[[str], str | None],
                   cfg: DiagnosisSection) -> dict[str, str | None]:
    """The task's log and patch; its hidden tests and their results only in the paper's mode."""
    sections = {
        "trajectory": render_trajectory(evidence.trajectory(task_id), cfg.max_log_chars),
        "model_patch": head_tail(evidence.text(task_id, "model_patch.diff"), cfg.max_log_chars),
        "test_results": None,
        "test_patch": None,
    }
    if cfg.include_test_patch:
        report = evidence.text(task_id, "report.json")
        test_output = head_tail(evidence.text(task_id, "test_output.txt"), cfg.max_log_chars)
        sections["test_results"] = f"{report}\n{test_output}".strip() or "(no test output)"
        sections["test_patch"] = test_patch(task_id)
    return sections


_FENCE = re.compile(r"```(?:json)?\s*(\{.*?\})\s*```", re.DOTALL)


def _as_text(value) -> str:
    """A key's value as text; models often give `potential_improvements` as a list of strings."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = "\n".join(f"- {v}" for v in value)
    return value.strip() if isinstance(value, str) else ""


def parse_diagnosis(text: str) -> dict[str, str]:
    """The five-key JSON object, from a bare answer or a ```json fence; DiagnosisError otherwise."""
    candidates = [m.group(1) for m in _FENCE.finditer(text or "")]
    start, end = (text or "").find("{"), (text or "").rfind("}")
    if start != -1 and end > start:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            data = json.loads(candidate)
        except json.JSONDecodeError:
            continue
        if isinstance(data, dict):
            values = {k: _as_text(data.get(k)) for k in DIAGNOSIS_KEYS}
            if all(values.values()):
                return values
    raise DiagnosisError(f"no JSON object with the keys {', '.join(DIAGNOSIS_KEYS)} in the answer: {head_tail(text or '', 300)!r}")


def diagnose(prompt: str, chat: ChatFn, max_attempts: int) -> tuple[dict[str, str], list[str]]:
    """Ask until the answer parses; returns the diagnosis and every raw answer (for the record)."""
    messages = [{"role": "system", "content": render("diagnose_system.md")}, {"role": "user", "content": prompt}]
    answers: list[str] = []
    for _ in range(max_attempts):
        answer = chat(messages)
        answers.append(answer)
        try:
            return parse_diagnosis(answer), answers
        except DiagnosisError as exc:
            error = exc
            # Show the model its last unusable answer, so a retry is a new request (and a new cache
            # entry); only the last, so the conversation stays within the window the prompt was fitted to.
            messages = messages[:2] + [
                {"role": "assistant", "content": answer or ""},
                {"role": "user", "content": render("diagnose_retry.md", problem=str(exc))},
            ]
    raise DiagnosisError(f"diagnosis failed after {max_attempts} answers; last problem: {error}")
