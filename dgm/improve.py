"""Step 4: self-modification. The modifying agent's own code runs, inside a sandbox, as a coding agent
whose repository is a copy of the target agent's source (the parent's, i.e. itself, in the DGM; the
parent's with the initial agent as modifier in the "w/o self-improve" ablation). The git diff of that
copy is the child's patch; the child is the target's code with the patch applied."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from dgm.agent_run import AgentRun, SandboxPolicy, run_agent
from dgm.config import AgentLimits
from dgm.patches import apply_patch, make_git_repo
from dgm.prompt_budget import fit
from dgm.prompts import render
from dgm.textutil import head_tail

AGENT_SUMMARY_FILE = "AGENT.md"


def problem_statement(target_dir: Path, diagnosis: dict[str, str], max_chars: int | None = None) -> str:
    """The self-modification task; with `max_chars`, trimmed (summary first) to fit the model's window."""
    summary_file = target_dir / AGENT_SUMMARY_FILE
    summary = summary_file.read_text() if summary_file.is_file() else "A coding agent written in Python."
    parts = {"agent_summary": summary.strip(), "problem_description": diagnosis["problem_description"].strip(),
             "implementation_suggestion": diagnosis["implementation_suggestion"].strip()}
    return fit(lambda cut: render("self_modify_problem.md", **{k: head_tail(v, cut[k]) for k, v in parts.items()}),
               {k: len(v) for k, v in parts.items()}, max_chars)


@dataclass
class SelfModification:
    patch: str
    run: AgentRun


def self_modify(*, policy: SandboxPolicy, llm_env: dict[str, str], modifier_dir: Path, target_dir: Path,
                statement: str, limits: AgentLimits, timeout: float, out_dir: Path) -> SelfModification:
    """`timeout`: the harness's, beyond the agent's own `limits.max_seconds` (config checks it is longer)."""
    task = {
        "instance_id": "self_modify",
        "problem_statement": statement,
        "test_description": render("self_modify_tests.md").strip(),
        "limits": limits.model_dump(),
    }
    with tempfile.TemporaryDirectory(prefix=".self-", dir=out_dir.parent) as tmp:  # inside the attempt dir
        repo = Path(tmp) / "repo"
        shutil.copytree(target_dir, repo, symlinks=True)
        make_git_repo(repo, "agent source")
        run = run_agent(policy=policy, agent_dir=modifier_dir, repo_dir=repo, task=task, out_dir=out_dir,
                        llm_env=llm_env, timeout=timeout)
    return SelfModification(run.patch, run)


def build_child(target_dir: Path, patch: str, child_dir: Path) -> Path:
    """The child's code: the target's code with the patch applied (PatchError if it does not apply)."""
    shutil.copytree(target_dir, child_dir, symlinks=True)
    apply_patch(child_dir, patch)
    return child_dir
