"""The human approval gate in a real run (experiments/quickstart-approval.yaml, offline: bwrap sandboxes, the real
gateway, the scripted test-double model): the run stops before a generation while a child waits
(admission.max_pending: 1), another process decides with `dgm approve` (one approved, one rejected), and the
run picks the decisions up from the store and goes on."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dgm.bench import load_benchmark
from dgm.store import RunStore

REPO = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run_status(archive: Path) -> tuple[Path | None, str | None]:
    dirs = [p for p in archive.iterdir() if (p / "run.db").exists()]
    if not dirs:
        return None, None
    store = RunStore.open(dirs[0], read_only=True)
    try:
        return dirs[0], store.run_info()["status"]
    finally:
        store.close()


def test_a_waiting_run_continues_after_dgm_approve_from_another_process(tmp_path):
    tasks = load_benchmark("local").subsets()["small"][:4]
    run = subprocess.Popen(
        [sys.executable, "-m", "dgm.run", "experiments/quickstart-approval.yaml",
         "--set", f"run.archive_dir={tmp_path}", "--set", "loop.generations=2", "--set", f"evaluation.stages=[{{tasks: {json.dumps(tasks)}}}]",
         "--set", "admission.approval_poll_s=0.5"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "COLUMNS": "200"})
    try:
        deadline, run_dir, status = time.time() + 900, None, None
        while status != "waiting_for_approval":
            assert run.poll() is None, f"the run ended without waiting:\n{run.stdout.read()}"
            assert time.time() < deadline, "the run never waited for approval"
            time.sleep(1)
            run_dir, status = _run_status(tmp_path)
        time.sleep(2)  # still waiting: nothing decides but a person
        assert _run_status(tmp_path)[1] == "waiting_for_approval" and run.poll() is None
        dgm = lambda *a: subprocess.run([sys.executable, "-m", "dgm", *a], cwd=REPO, capture_output=True, text=True)
        pending = [p["node"] for p in json.loads(dgm("approve", str(run_dir), "--json").stdout)["pending"]]
        assert len(pending) == 2  # both children of generation 1 were admitted
        assert dgm("approve", str(run_dir), pending[0]).returncode == 0
        time.sleep(2)  # one child still waits, and max_pending is 1: the run goes on waiting
        assert _run_status(tmp_path)[1] == "waiting_for_approval" and run.poll() is None
        rejected = dgm("approve", str(run_dir), pending[1], "--reject", "--reason", "not reviewed yet")
        assert rejected.returncode == 0, rejected.stderr
        output, _ = run.communicate(timeout=900)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 0, output
    assert "waiting before generation 2: 2 children wait for approval" in output
    store = RunStore.open(run_dir, read_only=True)
    events = [e for e in store.events.read() if e["event"] in ("waiting_for_approval", "approval",
                                                                 "approval_wait_over", "select")]
    assert [e["event"] for e in events] == ["select", "waiting_for_approval", "approval", "approval",
                                            "approval_wait_over", "select"]
    assert [(e["node"], e["decision"]) for e in events[2:4]] == [(pending[0], "approved"), (pending[1], "rejected")]
    assert pending[0] in events[-1]["scores"]  # an archive member when generation 2 chose its parents ...
    assert pending[1] not in events[-1]["scores"] and pending[1] not in events[-1]["parents"]  # ... the rejected not
    assert store.run_info()["status"] == "finished" and store.node(pending[0]).approval == "approved"
    assert store.node(pending[1]).approval_reason == "not reviewed yet"
