"""Ray scenarios that tests run in a loopback-only network namespace (see ray_helpers.py).

    python tests/ray_scenarios.py cluster_kill ARCHIVE_DIR OVERRIDES_JSON
    python tests/ray_scenarios.py driver_kill ARCHIVE_DIR OVERRIDES_JSON
    python tests/ray_scenarios.py hung_job MARKER

Each prints one JSON line with what it saw; the test asserts on it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SMALL_NODE = {"num_cpus": 1, "object_store_memory": 100 * 2**20, "node_ip_address": "127.0.0.1"}


def _processes() -> dict[int, tuple[int, str]]:
    """pid -> (parent pid, command name) of every process (a /proc scan)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                table[int(entry.name)] = (int(fields[1]), (entry / "comm").read_text().strip())
            except (OSError, IndexError, ValueError):
                continue
    return table


def _descendants(root: int, table: dict[int, tuple[int, str]]) -> list[int]:
    found, frontier = [], [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, (ppid, _) in table.items() if ppid == parent]
        found += children
        frontier += children
    return found


def _sandbox_running_under(root: int) -> bool:
    table = _processes()
    return any(table[pid][1] == "bwrap" for pid in _descendants(root, table) if pid in table)


def _both_self_modifying_after_a_call(archive: Path) -> bool:
    """Generation 1's two self-modifications are both running and each has had an answer from the model.

    Then a sandbox on a worker node is one of them, and killing that node loses a paid call's context.
    """
    import sqlite3

    for db_path in archive.glob("*/run.db"):
        try:
            events = [json.loads(line) for line in (db_path.parent / "events.jsonl").read_text().splitlines()]
        except (OSError, ValueError):  # not written yet, or a line being written
            return False
        if any(e.get("event") == "self_modify" for e in events):
            return False  # one of them is done already
        with sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=5) as db:
            rows = db.execute("SELECT attempt_id, COUNT(*) FROM llm_calls WHERE purpose = 'self_modify' "
                              "GROUP BY attempt_id").fetchall()
        return {a for a, n in rows if n >= 1} == {"1:0", "1:1"}
    return False


def cluster_kill(archive: str, overrides_json: str) -> dict:
    """A head and two worker nodes (resource dgm_worker); a run on it; worker 1 SIGKILLed mid-attempt."""
    from ray.cluster_utils import Cluster
    from ray._private import ray_constants

    cluster = Cluster(initialize_head=True, head_node_args={**SMALL_NODE, "include_dashboard": False})
    workers = [cluster.add_node(**SMALL_NODE, resources={"dgm_worker": 1}) for _ in range(2)]
    cluster.wait_for_nodes()
    raylet = workers[0].all_processes[ray_constants.PROCESS_TYPE_RAYLET][0].process.pid
    sets = [*json.loads(overrides_json), "run.executor=ray", f"ray.address={cluster.address}",
            "ray.resources={dgm_worker: 1}", f"run.archive_dir={archive}"]
    run = subprocess.Popen([sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml",
                            *[a for s in sets for a in ("--set", s)]], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = None
    try:
        while run.poll() is None and killed is None:
            if _both_self_modifying_after_a_call(Path(archive)) and _sandbox_running_under(raylet):
                table = _processes()
                doomed = [raylet, *_descendants(raylet, table)]
                for pid in doomed:  # the machine dies: every process of the node at once
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                killed = len(doomed)
                cluster.remove_node(workers[0], allow_graceful=False)
            time.sleep(0.2)
        output, _ = run.communicate(timeout=1200)
    finally:
        if run.poll() is None:
            run.kill()
        cluster.shutdown()
    return {"returncode": run.returncode, "killed_processes": killed, "output": output[-3000:]}


def driver_kill(archive: str, overrides_json: str) -> dict:
    """A run on a local Ray whose driver is SIGKILLed mid-attempt, then resumed (on Ray again)."""
    sets = [*json.loads(overrides_json), "run.executor=ray", "ray.local_cpus=2", "ray.object_store_mb=100",
            f"run.archive_dir={archive}"]
    run = subprocess.Popen([sys.executable, "-m", "dgm.run", "experiments/quickstart.yaml",
                            *[a for s in sets for a in ("--set", s)]], cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    killed = False
    while run.poll() is None and not killed:
        if _both_self_modifying_after_a_call(Path(archive)):
            run.kill()
            killed = True
        time.sleep(0.2)
    first, _ = run.communicate(timeout=600)
    time.sleep(5)  # the dead driver's Ray winds down
    (run_dir,) = [p for p in Path(archive).iterdir() if (p / "run.db").exists()]
    resumed = subprocess.run([sys.executable, "-m", "dgm.run", "--resume", str(run_dir)], cwd=REPO,
                             capture_output=True, text=True, timeout=1200)
    return {"killed": killed, "first_returncode": run.returncode, "returncode": resumed.returncode,
            "output": (first + resumed.stdout + resumed.stderr)[-4000:]}


def _sleep_in_sandbox(place, *, out_dir, marker: str) -> None:
    with place.policy.open(None) as sandbox:
        sandbox.exec(["sh", "-c", f"sleep 600 # {marker}"], timeout=600)


def hung_job(marker: str) -> dict:
    """A job that hangs past its deadline on a local Ray: cancelled, and its sandbox dies with it."""
    import threading

    import ray

    from dgm.agent_run import SandboxPolicy
    from dgm.config import RaySection
    from dgm.executor import Job, JobTimeout
    from dgm.executor.ray_executor import RayExecutor
    from dgm.llm.gateway import Gateway
    from dgm.llm.pricing import PriceTable
    from dgm.llm.upstream import build_upstreams
    from dgm.sandbox import default_backend

    ray.init(num_cpus=1, include_dashboard=False, _node_ip_address="127.0.0.1",
             object_store_memory=100 * 2**20, logging_level="WARNING")
    routes = build_upstreams({"task": {"provider": "scripted"}}, prices=PriceTable.load())
    outcome: dict = {}
    with Gateway(routes, tcp=True) as gateway:
        executor = RayExecutor(RaySection(), policy=SandboxPolicy(default_backend()), benchmark_spec=None,
                               gateway=gateway, slots=1)

        def run() -> None:
            started = time.monotonic()
            try:
                executor.run(Job("hung", _sleep_in_sandbox, kwargs={"marker": marker}, timeout_s=15))
            except JobTimeout as exc:
                outcome["error"] = str(exc)
            outcome["waited_s"] = round(time.monotonic() - started, 1)

        thread = threading.Thread(target=run)
        thread.start()
        seen_running = False
        while thread.is_alive():
            seen_running = seen_running or bool(_marked(marker))
            time.sleep(0.3)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _marked(marker):
            time.sleep(0.5)
        executor.close()
    ray.shutdown()
    return {**outcome, "seen_running": seen_running, "left": _marked(marker)}


def _marked(marker: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    pids.append(int(entry.name))
            except OSError:
                continue
    return [p for p in pids if p != os.getpid()]


if __name__ == "__main__":
    name, *args = sys.argv[1:]
    print(json.dumps({"cluster_kill": cluster_kill, "driver_kill": driver_kill, "hung_job": hung_job}[name](*args)))
