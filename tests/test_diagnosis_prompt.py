"""What the diagnosis model is shown: the official code's sizes, nothing of the hidden tests unless the paper's
mode is on, the Polyglot prompts for the Polyglot variant. The evidence is real: a wrong patch graded by the
real local benchmark in a real sandbox, leaving the report and test log a run leaves."""

import json
import random
import subprocess
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.config import DiagnosisSection, EntriesSection
from dgm.diagnose import ParentEvidence, build_prompt
from dgm.entries import TaskRecord

REPO = Path(__file__).resolve().parents[1]
TASK = "confparse__confparse-11"
BENCH = load_benchmark("local")


def _trajectory(text: str = "I looked at confparse/ini.py and added a comment.") -> dict:
    return {"exit_status": "submitted", "steps": [],
            "messages": [{"role": "user", "content": "fix the issue"}, {"role": "assistant", "content": text}]}


@pytest.fixture(scope="module")
def graded_parent(tmp_path_factory, backend):
    """nodes/<parent>/tasks/<TASK>/ as a run leaves it after a wrong patch was graded."""
    root = tmp_path_factory.mktemp("parent")
    workspace = root / "ws"
    BENCH.prepare_workspace(TASK, workspace)
    source = workspace / "confparse" / "ini.py"
    source.write_text(source.read_text() + "\n# a change that fixes nothing\n")
    patch = subprocess.run(["git", "diff"], cwd=workspace, capture_output=True, text=True, check=True).stdout
    task_dir = root / "node" / "tasks" / TASK
    result = BENCH.grade(TASK, patch, backend=backend, timeout=300, log_dir=task_dir)
    assert result.outcome == "unresolved"
    (task_dir / "model_patch.diff").write_text(patch)
    (task_dir / "trajectory.json").write_text(json.dumps(_trajectory()))
    return ParentEvidence("g001s0", REPO / "agents" / "initial", root / "node", [TaskRecord(TASK, "unresolved")])


def _hidden_strings() -> list[str]:
    """What only the hidden tests reveal: the failing tests' names, their assertion, the test patch itself."""
    task = BENCH.task(TASK)
    names = [t.split("::")[-1] for t in task.fail_to_pass]
    added_asserts = [line[1:].strip() for line in BENCH.test_patch(TASK).splitlines()
                     if line.startswith("+") and "assert" in line]
    return names + added_asserts + ["AssertionError", "FAILED", "FAIL_TO_PASS"]


def _prompt(evidence, **diagnosis) -> str:
    return build_prompt(TASK, evidence, lambda t: BENCH.task_info(t).problem_statement, BENCH.test_patch,
                        DiagnosisSection(**diagnosis)).render()


def test_without_the_test_patch_the_prompt_is_blind_to_hidden_tests(graded_parent):
    prompt = _prompt(graded_parent, include_test_patch=False)
    leaked = [s for s in _hidden_strings() if s in prompt]
    assert not leaked, leaked
    assert "Evaluation result: unresolved" in prompt and "a change that fixes nothing" in prompt


def test_the_papers_mode_shows_the_hidden_tests_their_names_and_results(graded_parent):
    prompt = _prompt(graded_parent, include_test_patch=True)
    missing = [s for s in _hidden_strings() if s not in prompt]
    assert not missing, missing


def test_sizes_are_the_official_ones(tmp_path):
    cfg = DiagnosisSection()
    assert (cfg.max_log_chars, cfg.max_code_chars) == (250_000, None)
    long_step = "".join(f"step {i:06d} output\n" for i in range(10_000))  # ~190k characters
    task_dir = tmp_path / "node" / "tasks" / TASK
    task_dir.mkdir(parents=True)
    (task_dir / "trajectory.json").write_text(json.dumps(_trajectory(long_step)))
    agent = tmp_path / "agent"
    (agent / "agent").mkdir(parents=True)
    big_module = "".join(f"CONSTANT_{i:06d} = {i}\n" for i in range(6_000))  # ~120k characters of code
    (agent / "agent" / "big.py").write_text(big_module)
    evidence = ParentEvidence("n", agent, tmp_path / "node", [TaskRecord(TASK, "unresolved")])
    parts = build_prompt(TASK, evidence, lambda t: "the task", lambda t: None, cfg)
    assert long_step in parts.sections["trajectory"] and big_module in parts.sections["agent_code"]

    over = DiagnosisSection(max_log_chars=100_000, max_code_chars=50_000)
    parts = build_prompt(TASK, evidence, lambda t: "the task", lambda t: None, over)
    assert len(parts.sections["trajectory"]) < 101_000 and len(parts.sections["agent_code"]) < 51_000


def test_the_prompt_is_built_from_named_sections(graded_parent):
    parts = build_prompt(TASK, graded_parent, lambda t: "the task", BENCH.test_patch, DiagnosisSection())
    assert {"agent_code", "trajectory", "model_patch"} <= set(parts.sections)
    full = parts.render()
    parts.sections["agent_code"] = "(code left out)"
    trimmed = parts.render()
    assert "(code left out)" in trimmed and len(trimmed) < len(full)


def test_the_polyglot_variant_uses_the_polyglot_prompts(graded_parent):
    polyglot = EntriesSection(variant="polyglot")
    templates = {build_prompt(TASK, graded_parent, lambda t: "the exercise", BENCH.test_patch, DiagnosisSection(),
                              entries=polyglot, rng=random.Random(seed)).template for seed in range(60)}
    # an unresolved task: the failure prompt, or (probability 0.25) the stochasticity prompt, never empty-patch
    assert templates == {"diagnose_polyglot_task.md", "diagnose_polyglot_stochasticity.md"}
    prompt = build_prompt(TASK, graded_parent, lambda t: "the exercise", BENCH.test_patch, DiagnosisSection(),
                          entries=polyglot, rng=random.Random(0))
    text = prompt.render()
    assert "Rust" in text and "a change that fixes nothing" in text

    empty = ParentEvidence(graded_parent.node_id, graded_parent.agent_dir, graded_parent.node_dir,
                           [TaskRecord(TASK, "empty_patch")])
    kinds = {build_prompt(TASK, empty, lambda t: "x", BENCH.test_patch, DiagnosisSection(), entries=polyglot,
                          rng=random.Random(seed)).template for seed in range(60)}
    assert kinds == {"diagnose_polyglot_empty_patch.md", "diagnose_polyglot_stochasticity.md"}


def test_the_polyglot_prompt_is_blind_too(graded_parent):
    for seed in range(20):
        text = build_prompt(TASK, graded_parent, lambda t: "the exercise", BENCH.test_patch, DiagnosisSection(),
                            entries=EntriesSection(variant="polyglot"), rng=random.Random(seed)).render()
        assert not [s for s in _hidden_strings() if s in text]
