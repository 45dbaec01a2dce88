"""A real Ray cluster across Docker containers: a head and two workers on a private docker network
(`--internal`, no route out), the image built offline (tests/ray_docker.py). The run's driver is on
the head; one worker container is killed (`docker kill`) while both self-modifications run on the
workers and have had answers from the model. The run finishes with the same archive as the
in-process run on the host, and pays for no LLM call twice."""

from __future__ import annotations

import json
import subprocess
import time

import pytest

from ray_docker import DockerCluster, docker, docker_cluster, node_image
from ray_helpers import SMALL_RUN, archive_summary, reference_run, sets, the_run, upstream_calls  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]

ARCHIVE = "/tmp/archive"
# In the head container: are generation 1's two self-modifications running, each with an answer?
PROBE = f"""
import glob, json, sqlite3
dbs = glob.glob("{ARCHIVE}/*/run.db")
events = open(dbs[0].replace("run.db", "events.jsonl")).read().splitlines() if dbs else []
done = any(json.loads(e).get("event") == "self_modify" for e in events if e)
rows = sqlite3.connect(dbs[0]).execute("SELECT attempt_id FROM llm_calls WHERE purpose = 'self_modify'").fetchall() \\
    if dbs else []
print(json.dumps(not done and {{"1:0", "1:1"}} <= {{r[0] for r in rows}}))
"""


def _sandbox_running_on(container: str) -> bool:
    proc = docker("top", container, "-eo", "comm", check=False)
    return proc.returncode == 0 and "bwrap" in proc.stdout.split()


def _kill_a_worker_mid_attempt(cluster: DockerCluster, run: subprocess.Popen) -> bool:
    victim = cluster.workers[0]
    while run.poll() is None:
        probe = cluster.exec("python3", "-c", PROBE, timeout=60)
        ready = probe.returncode == 0 and probe.stdout.strip().endswith("true")
        if ready and _sandbox_running_on(victim):
            docker("kill", victim)
            return True
        time.sleep(0.5)
    return False


def test_a_docker_cluster_that_loses_a_worker_finishes_with_the_same_archive(reference_run, tmp_path):
    image = node_image()
    with docker_cluster(image) as cluster:
        flags = [a for k, v in cluster.env.items() for a in ("-e", f"{k}={v}")]
        overrides = SMALL_RUN + ["run.executor=ray", f"ray.address={cluster.address}", "ray.resources={dgm_worker: 1}",
                                 f"run.archive_dir={ARCHIVE}"]
        run = subprocess.Popen(["docker", "exec", *flags, cluster.head, "python3", "-m", "dgm.run",
                                "experiments/quickstart.yaml", *sets(overrides)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            killed = _kill_a_worker_mid_attempt(cluster, run)
            output, _ = run.communicate(timeout=2400)
        finally:
            if run.poll() is None:
                run.kill()
        assert killed, "never saw both self-modifications running on the workers:\n" + output[-3000:]
        assert run.returncode == 0, output[-4000:]
        assert "worker lost" in output, output[-3000:]
        docker("cp", f"{cluster.head}:{ARCHIVE}", str(tmp_path / "archive"))
    run_dir = the_run(tmp_path / "archive")
    summary, paid = reference_run
    assert archive_summary(run_dir) == summary
    assert upstream_calls(run_dir) == paid
