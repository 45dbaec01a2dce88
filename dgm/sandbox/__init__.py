"""Sandboxes for untrusted code: `open_sandbox(backend, spec)` is the one entry point.

    from dgm.sandbox import open_sandbox, default_backend
    from dgm.sandbox.base import SandboxSpec, Mount
    with open_sandbox(default_backend(), SandboxSpec(source=repo, mounts=[Mount(agent, "/agent")])) as sb:
        result = sb.exec(["python", "-m", "agent", ...], timeout=600)
        sb.copy_out("/work/out", host_out)

Backends: bwrap (default on Linux), docker (needs a daemon; required for SWE-bench), local
(no isolation, explicit opt-in). All of them also offer `host_path(inside_path)` (None when the
inside path is not backed by a host directory, always None for docker).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from .base import SandboxError, SandboxSpec

BACKENDS = ("bwrap", "docker", "local")


@dataclass(frozen=True)
class BackendStatus:
    name: str
    available: bool
    reason: str


def open_sandbox(backend: str, spec: SandboxSpec, **options):
    """Create a sandbox (a context manager). `options` go to the backend (docker: client=, image=)."""
    if backend == "bwrap":
        from .bwrap import BwrapSandbox

        return BwrapSandbox(spec, **options)
    if backend == "local":
        from .local import LocalSandbox

        return LocalSandbox(spec, **options)
    if backend == "docker":
        from .docker import DockerSandbox

        return DockerSandbox(spec, **options)
    raise SandboxError(f"unknown sandbox backend {backend!r}; choose one of {', '.join(BACKENDS)}")


def default_backend() -> str:
    """'bwrap' when it works here; otherwise a clear error (local never gets picked silently)."""
    status = _bwrap_status()
    if status.available:
        return "bwrap"
    raise SandboxError(f"no isolating sandbox backend works here: {status.reason}. "
                       "Use --backend docker if a Docker daemon runs, or opt in to --backend local "
                       "(runs untrusted code without isolation).")


def doctor() -> list[BackendStatus]:
    """Which backends work on this machine, and why not."""
    return [_bwrap_status(), _docker_status(),
            BackendStatus("local", True, "always available; NO isolation (opt-in only)")]


def cleanup_leftovers(run_id: str | None = None, docker_client=None) -> dict[str, int]:
    """Remove sandbox dirs, cgroups and containers left by crashed runs (of run_id, if given).

    Directories and containers of sandboxes that are still open elsewhere are left alone.
    """
    from .cgroups import cleanup_leftover_cgroups
    from .hostdir import cleanup_leftover_dirs

    counts = {"dirs": len(cleanup_leftover_dirs(run_id)), "cgroups": cleanup_leftover_cgroups(), "containers": 0}
    if docker_client is not None or _docker_status().available:
        from .docker import cleanup_leftovers as docker_cleanup

        counts["containers"] = len(docker_cleanup(run_id, client=docker_client))
    return counts


def _bwrap_status() -> BackendStatus:
    if not sys.platform.startswith("linux"):
        return BackendStatus("bwrap", False, "bubblewrap needs Linux")
    from .bwrap import find_bwrap, probe

    try:
        path = find_bwrap()
        _, note = probe(path)
    except SandboxError as exc:
        return BackendStatus("bwrap", False, str(exc))
    from .cgroups import process_cap_mechanism

    cap = process_cap_mechanism()
    caps = f"process cap: {cap}" if cap else "WARNING: no process cap (root without writable cgroups)"
    return BackendStatus("bwrap", True, f"{path}: {note}; {caps}")


def _docker_status() -> BackendStatus:
    from .docker import daemon_status

    ok, reason = daemon_status()
    return BackendStatus("docker", ok, reason)


__all__ = ["BACKENDS", "BackendStatus", "open_sandbox", "default_backend", "doctor", "cleanup_leftovers",
           "SandboxError", "SandboxSpec"]
