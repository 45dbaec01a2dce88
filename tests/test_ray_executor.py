"""The Ray executor for real, on this machine, with no traffic off loopback: every Ray process runs in
a network namespace whose only interface is `lo` (ray_helpers.py), with token authentication.

- the quick-start with `run.executor=ray` (a local Ray started for the run) gives the same archive as
  the in-process executor: nodes, scores, outcomes, patches, and the same number of paid LLM calls;
- on a `ray.cluster_utils.Cluster` (a head and two worker nodes with a custom resource), one worker
  node is SIGKILLed while both self-modifications run and have had answers from the model: the lost
  job runs again on the other node, the archive is the same as without the kill, and the answers the
  lost job had received are served from the gateway's record (no call paid twice);
- the driver SIGKILLed mid-attempt: `--resume` (on Ray again) finishes with the same archive;
- a job hung past its deadline is cancelled and its sandbox dies with it.
"""

from __future__ import annotations

import json
import sqlite3
import sys

import pytest

from ray_helpers import (SMALL_RUN, archive_summary, ray_env, reference_run, run_isolated, scenario, sets, the_run,
                         upstream_calls)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(2400)]


def test_quickstart_on_a_local_ray_gives_the_same_archive(reference_run, tmp_path):
    with ray_env() as env:
        proc = run_isolated([sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml",
                             *sets(SMALL_RUN + ["run.executor=ray", f"run.archive_dir={tmp_path}",
                                                "ray.local_cpus=2", "ray.object_store_mb=100"])], env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = the_run(tmp_path)
    summary, paid = reference_run
    assert archive_summary(run_dir) == summary
    assert any(n["admitted"] and n["parent"] for n in summary.values())  # a real child with a real patch
    assert upstream_calls(run_dir) == paid


def test_a_worker_node_killed_mid_attempt_changes_nothing_in_the_archive(reference_run, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    with ray_env() as env:
        seen = scenario("cluster_kill", str(archive), json.dumps(SMALL_RUN), env=env, timeout=1500)
    assert seen["killed_processes"], "the scenario never found both self-modifications running on the nodes"
    assert seen["returncode"] == 0, seen["output"]
    assert "worker lost" in seen["output"] and "running it again" in seen["output"]
    run_dir = the_run(archive)
    summary, paid = reference_run
    assert archive_summary(run_dir) == summary
    assert upstream_calls(run_dir) == paid  # nothing paid twice ...
    with sqlite3.connect(f"file:{run_dir / 'run.db'}?mode=ro", uri=True) as db:
        replayed = db.execute("SELECT COUNT(*) FROM llm_calls WHERE cache_hit = 1 AND purpose = 'self_modify'")
        assert replayed.fetchone()[0] >= 1  # ... because the retry got its answers from the record


def test_a_killed_driver_resumes_on_ray_to_the_same_archive(reference_run, tmp_path):
    archive = tmp_path / "archive"
    archive.mkdir()
    with ray_env() as env:
        seen = scenario("driver_kill", str(archive), json.dumps(SMALL_RUN), env=env, timeout=2000)
    assert seen["killed"] and seen["first_returncode"] == -9, seen["output"]
    assert seen["returncode"] == 0, seen["output"]
    assert archive_summary(the_run(archive)) == reference_run[0]


def test_a_hung_job_is_cancelled_and_its_sandbox_dies_with_it():
    with ray_env() as env:
        seen = scenario("hung_job", "dgm-hung-job-marker-7q2", env=env, timeout=300)
    assert seen["seen_running"], seen
    assert seen["error"] and "cancelled" in seen["error"] and seen["waited_s"] < 60, seen
    assert seen["left"] == [], seen
