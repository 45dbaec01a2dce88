"""Running Ray in tests without touching the network (issue 13 item 6): every Ray process of a test
runs in fresh network + PID namespaces with only loopback (dgm/executor/loopback.py), configured
explicitly (own temp dir, no usage statistics, token authentication), and dies with its command."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from dgm.executor.loopback import loopback_only_argv, ray_environment

REPO = Path(__file__).resolve().parents[1]


@contextmanager
def ray_env():
    """Environment for the Ray processes of one test (dgm.executor.loopback.ray_environment)."""
    env = {**os.environ, **ray_environment(), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    try:
        yield env
    finally:
        shutil.rmtree(env["RAY_TMPDIR"], ignore_errors=True)


def run_isolated(argv: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(loopback_only_argv(argv), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def scenario(name: str, *args: str, env: dict, timeout: float = 900) -> dict:
    """Run tests/ray_scenarios.py NAME ARGS in the loopback-only namespace; its JSON answer."""
    proc = run_isolated([sys.executable, str(REPO / "tests" / "ray_scenarios.py"), name, *args], env, timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


SMALL_RUN = ["loop.generations=1", "evaluation.stages=[{tasks: [textkit__textkit-14, unitlib__unitlib-9]}]"]


def sets(overrides: list[str]) -> list[str]:
    return [a for s in overrides for a in ("--set", s)]


def the_run(archive: Path) -> Path:
    (run_dir,) = [p for p in archive.iterdir() if (p / "run.db").exists()]
    return run_dir


@pytest.fixture(scope="session")
def reference_run(tmp_path_factory) -> tuple[dict, int]:
    """The small run with the in-process executor (no Ray at all): its archive and its paid LLM calls."""
    archive = tmp_path_factory.mktemp("inprocess")
    proc = subprocess.run([sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml",
                           *sets(SMALL_RUN + [f"run.archive_dir={archive}"])], cwd=REPO, capture_output=True,
                          text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run_dir = the_run(archive)
    return archive_summary(run_dir), upstream_calls(run_dir)


def archive_summary(run_dir: Path) -> dict:
    """What must be identical between two runs of one config: nodes, scores, outcomes, patches."""
    from dgm.store import RunStore

    store = RunStore.open(run_dir, read_only=True)
    nodes = {}
    for n in store.nodes():
        patch = run_dir / "nodes" / n.node_id / "patch.diff"
        nodes[n.node_id] = {"parent": n.parent_id, "status": n.status, "score": n.score, "compiled": n.compiled,
                            "admitted": n.admitted, "patch": patch.read_text() if patch.exists() else None,
                            "outcomes": sorted((r.task_id, r.outcome) for r in store.task_results(n.node_id))}
    return nodes


def upstream_calls(run_dir: Path) -> int:
    """LLM calls that reached the model (not served from the gateway's record)."""
    with sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True) as db:
        return db.execute("SELECT COUNT(*) FROM llm_calls WHERE cache_hit = 0 AND error IS NULL").fetchone()[0]
