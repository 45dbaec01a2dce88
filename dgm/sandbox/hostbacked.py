"""What the bwrap and local backends share: a host directory behind /work, /tmp and $HOME,
inside->host path mapping, copy in/out done on the host side, environment building, cleanup."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Mapping, Sequence

from .base import (INSIDE_LLM_SOCKET, INSIDE_WORKDIR, ExecResult, SandboxError, SandboxSpec, check_toolchains,
                   command_env)
from .hostdir import HostDir, PathMap, copy_tree_in, copy_tree_out

log = logging.getLogger(__name__)

INSIDE_TMP = "/tmp"
INSIDE_HOME = "/home/sandbox"
SYSTEM_PATH = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"]
# Inside paths a mount may not replace: the sandbox needs them for itself.
RESERVED_INSIDE = {"/", "/usr", "/bin", "/sbin", "/lib", "/lib64", "/etc", "/proc", "/dev", "/tmp",
                   INSIDE_WORKDIR, "/run/dgm"}


def python_bin_dirs() -> list[str]:
    """bin dirs of the running interpreter (venv first), so `python`, `pytest`, ... resolve inside."""
    dirs = []
    for prefix in (sys.prefix, sys.base_prefix):
        d = os.path.join(prefix, "bin")
        if d not in dirs:
            dirs.append(d)
    exe_dir = os.path.dirname(sys.executable)
    if exe_dir not in dirs:
        dirs.append(exe_dir)
    return dirs


def base_env(home: str) -> dict[str, str]:
    return {"PATH": ":".join(python_bin_dirs() + SYSTEM_PATH), "HOME": home, "LANG": "C.UTF-8"}


def argv_of(command: Sequence[str] | str) -> list[str]:
    if isinstance(command, str):
        return ["/bin/sh", "-c", command]
    argv = list(command)
    if not argv:
        raise SandboxError("empty command")
    return argv


class HostBackedSandbox:
    """Base class: subclasses implement `_run(argv, env, cwd, timeout)` and `_close_extra()`."""

    backend = "?"
    inside_home = INSIDE_HOME

    def __init__(self, spec: SandboxSpec):
        self.spec = spec
        self._validate_mounts(spec)
        self.dir = HostDir(labels=spec.labels)
        try:
            if spec.source is not None:
                copy_tree_in(Path(spec.source), self.dir.work)
            self.paths = PathMap()
            self.paths.add(INSIDE_WORKDIR, self.dir.work, True)
            self.paths.add(INSIDE_TMP, self.dir.tmp, True)
            self.paths.add(self.inside_home, self.dir.home, True)
            for mount in spec.mounts:
                self.paths.add(mount.inside, Path(mount.host), mount.writable)
            if spec.llm_socket is not None:
                self.paths.add(INSIDE_LLM_SOCKET, Path(spec.llm_socket), True)
        except BaseException:
            self.dir.remove()
            raise
        self._closed = False

    @staticmethod
    def _validate_mounts(spec: SandboxSpec) -> None:
        for mount in spec.mounts:
            inside = os.path.normpath(mount.inside) if mount.inside else ""
            if not inside.startswith("/") or inside in RESERVED_INSIDE:
                raise SandboxError(f"mount of {mount.host}: inside path {mount.inside!r} must be absolute "
                                   f"and not one of {sorted(RESERVED_INSIDE)}")
            if not Path(mount.host).exists():
                raise SandboxError(f"mount source does not exist: {mount.host} (for {mount.inside})")
        if spec.llm_socket is not None and not Path(spec.llm_socket).exists():
            raise SandboxError(f"llm_socket does not exist: {spec.llm_socket}")
        check_toolchains(spec)

    # --- the Sandbox protocol ------------------------------------------------------------

    def env_for(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return command_env(base_env(self.inside_home), self.spec, extra)

    def exec(self, command: Sequence[str] | str, *, timeout: float, env: Mapping[str, str] | None = None,
             cwd: str = INSIDE_WORKDIR) -> ExecResult:
        if self._closed:
            raise SandboxError(f"{self.backend} sandbox {self.dir.root} is closed")
        if timeout <= 0:
            raise SandboxError(f"timeout must be positive, got {timeout}")
        return self._run(argv_of(command), self.env_for(env), cwd, timeout)

    def host_path(self, inside_path: str) -> Path | None:
        """The host path backing an inside path (None if it is not backed by a host dir)."""
        found = self.paths.lookup(inside_path)
        return found[0] if found else None

    def copy_in(self, host_path: Path, inside_path: str) -> None:
        found = self.paths.lookup(inside_path)
        if found is None or not found[1]:
            raise SandboxError(f"copy_in: {inside_path} is not in a writable sandbox directory")
        copy_tree_in(Path(host_path), found[0])

    def copy_out(self, inside_path: str, host_path: Path) -> None:
        found = self.paths.lookup(inside_path)
        if found is None:
            raise SandboxError(f"copy_out: {inside_path} is not in a sandbox directory")
        copy_tree_out(found[0], Path(host_path))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._close_extra()
        finally:
            self.dir.remove()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):  # last resort; normal code uses `with`
        if not getattr(self, "_closed", True):
            try:
                self.close()
            except Exception:
                pass

    # --- for subclasses ------------------------------------------------------------------

    def _run(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> ExecResult:
        raise NotImplementedError

    def _close_extra(self) -> None:
        pass
