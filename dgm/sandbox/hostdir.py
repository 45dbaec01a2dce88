"""Host-side directory of one sandbox (used by the bwrap and local backends).

Layout of ``<root>/dgm-sbx-XXXX/``:
  work/   -> /work inside (a copy of ``spec.source``)
  tmp/    -> /tmp inside (kept across execs of the same sandbox)
  home/   -> $HOME inside
  etc/    generated passwd/group/hosts (bwrap only)
  .lock   flock held by the owning process while the sandbox is open

The lock is what makes crash cleanup safe: a directory whose lock can be taken has no living
owner (the kernel drops flocks when a process dies, even on SIGKILL), so `cleanup_leftovers`
may delete it without guessing from pids that could have been reused.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import shutil
import stat
import tempfile
import time
from pathlib import Path

from .base import SandboxError

log = logging.getLogger(__name__)

PREFIX = "dgm-sbx-"


def sandbox_tmp_root() -> Path:
    """Where sandbox directories live: $DGM_SANDBOX_TMP, else the system temp dir."""
    return Path(os.environ.get("DGM_SANDBOX_TMP") or tempfile.gettempdir())


class HostDir:
    """Create, lock and finally delete one sandbox directory on the host."""

    def __init__(self, labels: dict[str, str] | None = None, root: Path | None = None):
        base = root or sandbox_tmp_root()
        base.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=PREFIX, dir=base))
        self._lock_fd = os.open(self.root / ".lock", os.O_CREAT | os.O_RDWR | os.O_CLOEXEC, 0o600)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        (self.root / "owner.json").write_text(json.dumps({"pid": os.getpid(), "labels": labels or {}}))
        self.work = self._mkdir("work")
        self.tmp = self._mkdir("tmp")
        self.home = self._mkdir("home")

    def _mkdir(self, name: str) -> Path:
        path = self.root / name
        path.mkdir(mode=0o755)
        return path

    def remove(self) -> None:
        if self._lock_fd is not None:
            _force_rmtree(self.root)
            os.close(self._lock_fd)
            self._lock_fd = None


def _force_rmtree(path: Path) -> None:
    """Delete a tree even where the sandbox removed write permission from its own dirs."""

    def fix_and_retry(func, target, _exc):
        try:
            os.chmod(os.path.dirname(target), 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
            func(target)
        except FileNotFoundError:
            pass

    shutil.rmtree(path, onerror=fix_and_retry)


def cleanup_leftover_dirs(run_id: str | None = None, root: Path | None = None) -> list[Path]:
    """Delete sandbox dirs whose owner is gone (its lock is free); with run_id only that run's."""
    removed = []
    base = root or sandbox_tmp_root()
    for path in sorted(base.glob(PREFIX + "*")):
        if not path.is_dir() or path.is_symlink():
            continue
        if run_id is not None and _labels_of(path).get("dgm.run") != run_id:
            continue
        if _owner_alive(path):
            continue
        _force_rmtree(path)
        removed.append(path)
    return removed


def _labels_of(path: Path) -> dict:
    try:
        return json.loads((path / "owner.json").read_text()).get("labels", {})
    except (OSError, ValueError):
        return {}


def _owner_alive(path: Path) -> bool:
    try:
        fd = os.open(path / ".lock", os.O_RDWR | os.O_CLOEXEC)
    except FileNotFoundError:
        # No lock yet: being created right now, or half-deleted long ago.
        try:
            return time.time() - path.stat().st_mtime < 60
        except OSError:
            return False
    except OSError:
        return True  # another user's sandbox: not ours to judge
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)


# --- copying ------------------------------------------------------------------------------


def copy_tree_in(src: Path, dst: Path) -> None:
    """Copy a trusted host snapshot: symlinks are copied as symlinks and never followed."""
    src = Path(src)
    if not src.exists() and not src.is_symlink():
        raise SandboxError(f"sandbox source does not exist: {src}")
    if src.is_symlink() or not src.is_dir():
        _copy_entry(src, dst, keep_symlink=lambda _t: True)
        return
    shutil.copytree(src, dst, symlinks=True, dirs_exist_ok=True, ignore=_ignore_special_files)


def _ignore_special_files(directory: str, names: list[str]) -> list[str]:
    """Skip fifos, sockets and devices: opening a fifo would hang the copy."""
    skipped = []
    for name in names:
        mode = os.lstat(os.path.join(directory, name)).st_mode
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            skipped.append(name)
    return skipped


def copy_tree_out(src: Path, dst: Path) -> None:
    """Copy untrusted sandbox content to the host.

    Regular files (without setuid/setgid bits) and directories are copied; a symlink is kept only when it is relative and
    stays inside the copied tree (a link to /etc/passwd or to the host's home is dropped, never
    followed); fifos, sockets and devices are skipped.
    """
    src = Path(src)
    if src.is_symlink():
        raise SandboxError(f"refusing to copy out a symlink: {src}")
    if not src.exists():
        raise SandboxError(f"nothing to copy out at {src}")
    if src.is_file():
        _copy_entry(src, dst, keep_symlink=lambda _t: False)
        return
    top = os.path.realpath(src)
    for dirpath, dirnames, filenames in os.walk(src):  # os.walk does not descend into dir symlinks
        rel = os.path.relpath(dirpath, src)
        target_dir = Path(dst) / rel if rel != "." else Path(dst)
        target_dir.mkdir(parents=True, exist_ok=True)
        for name in dirnames + filenames:
            here = os.path.join(dirpath, name)
            if os.path.isdir(here) and not os.path.islink(here):
                continue  # created when walked
            _copy_entry(Path(here), target_dir / name, keep_symlink=lambda t, d=dirpath: _inside(top, d, t))


def _inside(top: str, link_dir: str, link_target: str) -> bool:
    if os.path.isabs(link_target):
        return False
    resolved = os.path.normpath(os.path.join(os.path.realpath(link_dir), link_target))
    return resolved == top or resolved.startswith(top + os.sep)


def _copy_entry(src: Path, dst: Path, keep_symlink) -> None:
    mode = os.lstat(src).st_mode
    dst.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISLNK(mode):
        target = os.readlink(src)
        if keep_symlink(target):
            if dst.is_symlink() or dst.exists():
                dst.unlink()
            os.symlink(target, dst)
        else:
            log.warning("sandbox copy: dropped symlink %s -> %s (points outside)", src, target)
    elif stat.S_ISREG(mode):
        shutil.copy2(src, dst, follow_symlinks=False)
        # Inside, the sandbox user may be host root: never hand out setuid/setgid files.
        os.chmod(dst, stat.S_IMODE(mode) & 0o777)
    else:
        log.warning("sandbox copy: skipped special file %s", src)


# --- inside <-> host paths -------------------------------------------------------------------


class PathMap:
    """Maps inside paths (/work, /tmp, mounts...) to the host paths that back them."""

    def __init__(self):
        self._entries: list[tuple[str, Path, bool]] = []

    def add(self, inside: str, host: Path, writable: bool) -> None:
        inside = inside.rstrip("/") or "/"
        self._entries = [e for e in self._entries if e[0] != inside]  # re-adding replaces
        self._entries.append((inside, Path(host), writable))
        self._entries.sort(key=lambda e: len(e[0]), reverse=True)  # longest prefix wins

    def items(self):
        return list(self._entries)

    def lookup(self, inside_path: str) -> tuple[Path, bool] | None:
        norm = os.path.normpath(inside_path)
        if not norm.startswith("/"):
            return None
        for inside, host, writable in self._entries:
            if norm == inside or norm.startswith(inside + "/"):
                rest = norm[len(inside):].lstrip("/")
                candidate = host / rest if rest else host
                # A symlink planted inside must not lead a host-side copy out of the mapped dir.
                real_host, real_candidate = os.path.realpath(host), os.path.realpath(candidate)
                if real_candidate != real_host and not real_candidate.startswith(real_host + os.sep):
                    raise SandboxError(f"{inside_path} resolves outside its mount ({real_candidate})")
                return candidate, writable
        return None
