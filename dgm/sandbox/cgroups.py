"""Best-effort per-sandbox cgroups: a hard cap on processes (fork bombs) and memory.

Why: RLIMIT_NPROC does not apply to root, and RLIMIT_AS does not bound a tree of processes.
Used when the cgroup filesystem is writable (root, or a delegated subtree):
  - cgroup v2: a child of our own cgroup with pids.max / memory.max, killed via cgroup.kill;
  - cgroup v1 (hybrid hosts): children in the `pids` and `memory` hierarchies.
When nothing is writable we silently rely on rlimits + the pid namespace (doctor reports it).
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import time
import uuid
from pathlib import Path

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup_paths() -> dict[str, str]:
    """Controller name ('' for v2) -> our cgroup path, from /proc/self/cgroup."""
    paths = {}
    try:
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for name in controllers.split(",") if controllers else [""]:
                paths[name] = path
    except OSError:
        pass
    return paths


class SandboxCgroup:
    """The cgroup(s) of one sandbox. `procs_fds()` are opened before fork for the child to join."""

    def __init__(self, dirs: list[Path], v2: bool):
        self.dirs = dirs
        self.v2 = v2
        self._fds: list[int] = []

    @classmethod
    def create(cls, memory_mb: int, max_pids: int) -> "SandboxCgroup | None":
        name = f"dgm-sbx-{uuid.uuid4().hex[:12]}"
        own = _own_cgroup_paths()
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            group = _make_v2(CGROUP_ROOT / own.get("", "/").lstrip("/") / name, memory_mb, max_pids)
            return cls([group], v2=True) if group else None
        dirs = []
        pids = _make_v1(CGROUP_ROOT / "pids", own.get("pids", "/"), name, {"pids.max": str(max_pids)})
        if pids:
            dirs.append(pids)
        mem = _make_v1(CGROUP_ROOT / "memory", own.get("memory", "/"), name,
                       {"memory.limit_in_bytes": str(memory_mb * 1024 * 1024)})
        if mem:
            dirs.append(mem)
        return cls(dirs, v2=False) if dirs else None

    def procs_fds(self) -> list[int]:
        if not self._fds:
            self._fds = [os.open(d / "cgroup.procs", os.O_WRONLY | os.O_CLOEXEC) for d in self.dirs]
        return self._fds

    def kill_all(self, rounds: int = 20) -> None:
        """SIGKILL every process in the group; `rounds` > 1 repeats until it is empty."""
        for d in self.dirs:
            if self.v2 and (d / "cgroup.kill").exists():
                _write(d / "cgroup.kill", "1")
                continue
            for _ in range(rounds):  # v1: no atomic kill; repeat until empty (forks race us)
                pids = _read_pids(d)
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
                if rounds > 1:
                    time.sleep(0.005)

    def remove(self) -> None:
        self.kill_all()
        for fd in self._fds:
            os.close(fd)
        self._fds = []
        for d in self.dirs:
            for _ in range(50):  # rmdir fails with EBUSY until the killed tasks are reaped
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _make_v2(path: Path, memory_mb: int, max_pids: int) -> Path | None:
    try:
        path.mkdir()
    except OSError:
        return None
    # Controllers must be enabled by the parent; without pids.max the group would be useless.
    if not (path / "pids.max").exists():
        path.rmdir()
        return None
    _write(path / "pids.max", str(max_pids))
    if (path / "memory.max").exists():
        _write(path / "memory.max", str(memory_mb * 1024 * 1024))
        if (path / "memory.swap.max").exists():
            _write(path / "memory.swap.max", "0")
    return path


def _make_v1(hierarchy: Path, own: str, name: str, settings: dict[str, str]) -> Path | None:
    parent = hierarchy / own.lstrip("/")
    if not parent.is_dir():  # our cgroup path is not visible here (nested container)
        parent = hierarchy
    path = parent / name
    try:
        path.mkdir()
        for key, value in settings.items():
            _write(path / key, value)
    except OSError as exc:
        log.debug("cgroup v1 %s not usable: %s", hierarchy, exc)
        try:
            path.rmdir()
        except OSError:
            pass
        return None
    return path


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_pids(d: Path) -> list[int]:
    try:
        return [int(x) for x in (d / "cgroup.procs").read_text().split()]
    except OSError:
        return []


def cleanup_leftover_cgroups() -> int:
    """Remove empty dgm-sbx-* cgroups left by a crashed run (their processes died with it)."""
    removed = 0
    own = _own_cgroup_paths()
    candidates = []
    if (CGROUP_ROOT / "cgroup.controllers").exists():
        candidates.append((CGROUP_ROOT / own.get("", "/").lstrip("/"), True))
    else:
        for ctrl in ("pids", "memory"):
            base = CGROUP_ROOT / ctrl / own.get(ctrl, "/").lstrip("/")
            candidates.append((base if base.is_dir() else CGROUP_ROOT / ctrl, False))
    for base, v2 in candidates:
        for d in base.glob("dgm-sbx-*"):
            try:  # only empty groups: a non-empty one belongs to a live sandbox of another run
                d.rmdir()
                removed += 1
            except OSError:
                pass
    return removed


@functools.cache
def process_cap_mechanism() -> str | None:
    """What bounds the number of processes in a sandbox here: 'cgroup v2', 'cgroup v1',
    'RLIMIT_NPROC' (non-root without cgroups) or None (root without writable cgroups: only the
    timeout stops a fork bomb)."""
    group = SandboxCgroup.create(64, 64)
    if group is not None:
        has_pids = any("pids" in str(d) or (d / "pids.max").exists() for d in group.dirs)
        kind = "cgroup v2" if group.v2 else "cgroup v1"
        group.remove()
        if has_pids:
            return kind
    return "RLIMIT_NPROC" if os.getuid() != 0 else None
