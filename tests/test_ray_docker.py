"""A real Ray cluster across Docker containers: a head and two workers on a private docker network
(`--internal`, no route out), the image built offline (tests/ray_docker.py). The run's driver is on
the head; one worker container is killed (`docker kill`) while both self-modifications run on the
workers and have had answers from the model. The run finishes with the same archive as the
in-process run on the host, and pays for no LLM call twice."""

from __future__ import annotations

import subprocess

import pytest

from ray_docker import DockerCluster, docker, docker_cluster, node_image
from ray_helpers import SMALL_RUN, archive_summary, reference_run, sets, the_run, upstream_calls  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.docker, pytest.mark.timeout(3600)]

ARCHIVE = "/tmp/archive"
# Runs on the head, beside the driver: waits until generation 1's two self-modifications are both
# running and each has had an answer from the model. Each worker holds one job (dgm_worker: 1), so
# then each worker is running one of them.
WATCH = f"""
import glob, json, sqlite3, sys, time
while True:
    time.sleep(0.1)
    dbs = glob.glob("{ARCHIVE}/*/run.db")
    if not dbs:
        continue
    try:
        events = [json.loads(e) for e in open(dbs[0].replace("run.db", "events.jsonl")).read().splitlines()]
        rows = sqlite3.connect(dbs[0]).execute("SELECT attempt_id FROM llm_calls WHERE purpose = 'self_modify'")
        attempts = {{r[0] for r in rows}}
    except (OSError, ValueError, sqlite3.Error):
        continue
    if any(e.get("event") in ("self_modify", "stop") for e in events):
        sys.exit("too late: a self-modification is over")
    if {{"1:0", "1:1"}} <= attempts:
        print("ready")
        break
"""


def _kill_a_worker_mid_attempt(cluster: DockerCluster) -> bool:
    ready = cluster.exec("python3", "-c", WATCH, timeout=1800)
    if ready.stdout.strip() != "ready":
        return False
    docker("kill", cluster.workers[0])
    return True


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
            killed = _kill_a_worker_mid_attempt(cluster)
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
