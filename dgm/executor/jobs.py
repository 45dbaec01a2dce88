"""The jobs of an attempt that run agent code: self-modification and own tests (task evaluation
jobs are built in dgm/evaluate.py). Each is a module-level function plus a constructor that names
its inputs, so any executor can ship it."""

from __future__ import annotations

from pathlib import Path

from dgm.agent_run import run_own_tests
from dgm.config import AgentLimits
from dgm.improve import SelfModification, self_modify
from dgm.sandbox.base import ExecResult

from .base import Job, Workplace

# Slack on top of a sandbox's own timeout before the executor gives up on a job (copying, start-up).
JOB_GRACE_S = 300.0


def _self_modify(place: Workplace, *, out_dir: Path, modifier_dir: Path, target_dir: Path, llm_env: dict[str, str],
                 statement: str, limits: AgentLimits, timeout: float) -> SelfModification:
    return self_modify(policy=place.policy, llm_env=llm_env, modifier_dir=modifier_dir, target_dir=target_dir,
                       statement=statement, limits=limits, timeout=timeout, out_dir=out_dir)


def self_modify_job(node_id: str, *, llm_env: dict[str, str], modifier_dir: Path, target_dir: Path, statement: str,
                    limits: AgentLimits, timeout: float, out_dir: Path) -> Job:
    """`timeout`: the harness's, beyond the agent's own limits.max_seconds."""
    return Job(f"{node_id} self_modify", _self_modify,
               kwargs={"statement": statement, "limits": limits, "timeout": timeout}, llm_env=llm_env,
               inputs={"modifier_dir": modifier_dir, "target_dir": target_dir}, out_dir=out_dir,
               timeout_s=timeout + JOB_GRACE_S)


def _own_tests(place: Workplace, *, out_dir: None, agent_dir: Path, command: str, timeout: float) -> ExecResult:
    return run_own_tests(policy=place.policy, agent_dir=agent_dir, command=command, timeout=timeout)


def own_tests_job(node_id: str, *, agent_dir: Path, command: str, timeout: float) -> Job:
    return Job(f"{node_id} own tests", _own_tests, kwargs={"command": command, "timeout": timeout},
               inputs={"agent_dir": agent_dir}, timeout_s=timeout + JOB_GRACE_S)
