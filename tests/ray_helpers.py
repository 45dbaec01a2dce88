"""Running Ray in tests without touching the network (HELPERS.md network rule; issue 13 item 6).

Ray's gRPC servers bind every interface whatever `node_ip_address` says, so every Ray process of a
test runs inside a fresh network namespace whose only interface is loopback (`unshare --net`).
Ray is configured explicitly: its temp dir, no usage statistics, token authentication.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
UNSHARE = shutil.which("unshare")


def netns_available() -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run(loopback_only(["true"]), capture_output=True)
    return probe.returncode == 0


def loopback_only(argv: list[str]) -> list[str]:
    """argv run in a new network namespace with only `lo` up (root: plain; others: in a user namespace)."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return [UNSHARE or "unshare", *user, "--net", "--", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


@contextmanager
def ray_env():
    """Environment for Ray processes of one test: own short temp dir (socket paths <= 107 bytes), stats off, token auth."""
    tmp = tempfile.mkdtemp(prefix="dgmray-", dir="/tmp")
    env = {**os.environ, "RAY_TMPDIR": tmp, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(16), "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    try:
        yield env
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run_isolated(argv: list[str], env: dict, timeout: float = 900) -> subprocess.CompletedProcess:
    return subprocess.run(loopback_only(argv), env=env, cwd=REPO, capture_output=True, text=True, timeout=timeout)


def scenario(name: str, *args: str, env: dict, timeout: float = 900) -> dict:
    """Run tests/ray_scenarios.py NAME ARGS in the loopback-only namespace; its JSON answer."""
    proc = run_isolated([sys.executable, str(REPO / "tests" / "ray_scenarios.py"), name, *args], env, timeout)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-6000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


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
