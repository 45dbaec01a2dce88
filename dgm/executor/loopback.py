"""Ray on one machine without touching the network, for tests and benchmarks.

Ray's servers bind every interface whatever `node_ip_address` says, so a local Ray of a test or a
benchmark runs inside fresh namespaces: a network namespace whose only interface is loopback, and a
PID namespace, so every process Ray started dies with the command (nothing is left behind).
"""

from __future__ import annotations

import os
import secrets
import tempfile

ISOLATED_ENV = "DGM_LOOPBACK_ONLY"  # set inside: the command knows it is isolated already


def loopback_only_argv(argv: list[str]) -> list[str]:
    """argv in new network + PID namespaces, with only `lo` up (a user namespace too when not root)."""
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    return ["unshare", *user, "--net", "--pid", "--fork", "--kill-child", "--mount-proc", "--",
            "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *argv]


def ray_environment() -> dict[str, str]:
    """Ray configured explicitly: its own short temp dir (socket paths are limited to 107 bytes), no usage
    statistics, token authentication with a fresh token. The caller removes RAY_TMPDIR afterwards."""
    return {"RAY_TMPDIR": tempfile.mkdtemp(prefix="dgmray-", dir="/tmp"), "RAY_USAGE_STATS_ENABLED": "0",
            "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16), ISOLATED_ENV: "1"}
