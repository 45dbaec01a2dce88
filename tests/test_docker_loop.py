"""The whole loop on the docker backend: `python -m dgm.run experiments/quickstart.yaml --set
sandbox.backend=docker` completes (one generation on three tasks here; the full quickstart is in the
README's figures), `dgm replay` of it is identical, and a run SIGKILLed while its
containers run is resumed to the end with no container of it left behind.

Real everything: dgm.run subprocesses, the gateway, the scripted model, containers of this
checkout's dgm-agent image (the agent runs with the image's own Python)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.sandbox.docker import LABEL, _client
from dgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.docker, pytest.mark.slow, pytest.mark.timeout(1500)]
# Three tasks and a cached initial evaluation (as tests/test_resume.py does) keep a run to minutes.
TASKS = load_benchmark("local").subsets()["small"][:3]


def small_run(root: Path) -> list[str]:
    initial = root / "initial_results.json"
    initial.write_text(json.dumps(dict(zip(TASKS, ["resolved", "unresolved", "empty_patch"]))))
    return ["experiments/quickstart.yaml", "--set", f"run.archive_dir={root / 'archive'}",
            "--set", "sandbox.backend=docker", "--set", "loop.generations=1", "--set", "loop.children_per_generation=2",
            "--set", f"evaluation.stages=[{{tasks: {json.dumps(TASKS)}}}]", "--set", f"evaluation.initial_results={initial}"]


def dgm_run(args: list[str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", "dgm.run", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, "PYTHONPATH": str(REPO)})


def containers_of(run_id: str) -> list:
    return _client().containers.list(all=True, filters={"label": [f"{LABEL}=1", f"dgm.run={run_id}"]})


def the_run_dir(archive: Path) -> Path:
    found = [p for p in archive.glob("*") if (p / "run.db").exists()] if archive.exists() else []
    return found[0] if len(found) == 1 else None


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("docker-loop")
    proc = dgm_run(small_run(root), root / "run.log")
    assert proc.wait(timeout=1200) == 0, (root / "run.log").read_text()[-3000:]
    return the_run_dir(root / "archive")


def test_quickstart_completes_on_docker(finished_run: Path):
    store = RunStore(finished_run, read_only=True)
    assert store.run_info()["status"] == "finished"
    nodes = store.nodes()
    assert len(nodes) == 3  # the initial agent and two children, each evaluated in containers
    assert containers_of(finished_run.name) == []


def test_replay_on_docker_is_identical(finished_run: Path):
    out = finished_run.with_name(finished_run.name + "-replay")
    r = subprocess.run([sys.executable, "-m", "dgm", "replay", str(finished_run), "--out", str(out)], cwd=REPO,
                       capture_output=True, text=True, timeout=1200, env={**os.environ, "PYTHONPATH": str(REPO)})
    assert r.returncode == 0 and "identical: every node, patch and score" in r.stdout, r.stdout[-3000:] + r.stderr


def test_killed_run_resumes_and_leaves_no_container(tmp_path):
    archive = tmp_path / "archive"
    proc = dgm_run(small_run(tmp_path), tmp_path / "run.log")
    deadline = time.monotonic() + 600
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            run_dir = the_run_dir(archive)
            if run_dir is not None and containers_of(run_dir.name):
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the run ended before any container started: " + (tmp_path / "run.log").read_text()[-2000:]
    finally:
        os.kill(proc.pid, signal.SIGKILL)  # only the run itself: its containers stay behind
        proc.wait()
    run_dir = the_run_dir(archive)
    assert containers_of(run_dir.name), "a SIGKILLed run's containers stay until someone removes them"
    resumed = dgm_run(["--resume", str(run_dir)], tmp_path / "run.log")
    assert resumed.wait(timeout=1200) == 0, (tmp_path / "run.log").read_text()[-3000:]
    assert RunStore(run_dir, read_only=True).run_info()["status"] == "finished"
    assert containers_of(run_dir.name) == []
    resume = [e for e in RunStore(run_dir, read_only=True).events.read() if e["event"] == "resume"]
    assert resume and resume[0]["removed_containers"] >= 1
