"""Step 3 of a generation: a diagnosis model reads the parent's code and evidence and proposes one
improvement, as JSON with exactly five keys. Unparsable answers are retried (up to 4 calls)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from dgm.config import DiagnosisSection
from dgm.entries import TaskRecord
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


def build_prompt(entry: str, evidence: ParentEvidence, problem_statement: Callable[[str], str],
                 test_patch: Callable[[str], str | None], cfg: DiagnosisSection, max_chars: int | None = None) -> str:
    """The diagnosis prompt; with `max_chars` (the model's window is small) trimmed logs first, then code."""
    # The system prompt and a retry request share the window with this prompt.
    room = max_chars - len(render("diagnose_system.md")) - len(render("diagnose_retry.md", problem="")) if max_chars else None
    limits = {"max_log_chars": cfg.max_log_chars, "max_code_chars": cfg.max_code_chars}
    return fit(lambda cut: _render_prompt(entry, evidence, problem_statement, test_patch, cfg.model_copy(update=cut)),
               limits, room)


def _render_prompt(entry: str, evidence: ParentEvidence, problem_statement: Callable[[str], str],
                   test_patch: Callable[[str], str | None], cfg: DiagnosisSection) -> str:
    code = source_listing(evidence.agent_dir, cfg.max_code_chars)
    records = evidence.records
    log = lambda task_id: render_trajectory(evidence.trajectory(task_id), cfg.max_log_chars)
    if entry == "solve_empty_patches":
        empty = [r.task_id for r in records if r.outcome == "empty_patch"]
        return render(
            "diagnose_empty_patches.md", agent_code=code, empty_count=len(empty), total_count=len(records),
            empty_percent=round(100 * len(empty) / len(records)), empty_ids=", ".join(empty),
            trajectory=log(empty[0]) if empty else "",
        )
    if entry == "solve_stochasticity":
        resolved = sum(r.outcome == "resolved" for r in records)
        return render("diagnose_stochasticity.md", agent_code=code, resolved_count=resolved, total_count=len(records))
    if entry == "solve_contextlength":
        overflowed = [r.task_id for r in records if r.exit_status == "context_overflow" or r.overflow_streak]
        return render("diagnose_contextlength.md", agent_code=code, trajectory=log(overflowed[0]) if overflowed else "")
    outcome = next((r.outcome for r in records if r.task_id == entry), "unknown")
    report = evidence.text(entry, "report.json")
    test_output = head_tail(evidence.text(entry, "test_output.txt"), cfg.max_log_chars // 3)
    return render(
        "diagnose_task.md", agent_code=code, problem_statement=problem_statement(entry), trajectory=log(entry),
        model_patch=head_tail(evidence.text(entry, "model_patch.diff"), cfg.max_log_chars // 3),
        outcome=outcome, test_results=f"{report}\n{test_output}".strip() or "(no test output)",
        test_patch=test_patch(entry) if cfg.include_test_patch else None,
    )


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
