"""Running one sandboxed host process: rlimits, bounded output capture, deadline, tree kill.

Shared by the bwrap and local backends. The caller supplies how to kill "everything the command
started" (for bwrap: the bwrap process, whose pid namespace then dies; for local: the process
group plus a scan for processes carrying the sandbox's marker).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import resource
import selectors
import signal
import subprocess
import time
from pathlib import Path
from typing import Callable, Mapping, Sequence

from .base import ExecResult, Limits
from .reaper import REAPER

TIMEOUT_EXIT_CODE = 124  # what coreutils `timeout` returns
_MB = 1024 * 1024
_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)  # loaded before any fork


class BoundedOutput:
    """Keeps the first and last `limit/2` bytes of a stream and counts what was dropped."""

    def __init__(self, limit: int):
        self.half = max(limit // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.total = 0

    def feed(self, data: bytes) -> None:
        self.total += len(data)
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        if data:
            self.tail += data
            if len(self.tail) > 2 * self.half:  # trim lazily so big streams stay O(n)
                del self.tail[: len(self.tail) - self.half]

    @property
    def truncated(self) -> bool:
        return self.total > len(self.head) + min(len(self.tail), self.half)

    def text(self) -> str:
        tail = bytes(self.tail[-self.half:]) if self.tail else b""
        if not self.truncated:
            return (bytes(self.head) + tail).decode("utf-8", errors="replace")
        dropped = self.total - len(self.head) - len(tail)
        marker = f"\n[... {dropped} bytes of output truncated by the sandbox ...]\n"
        return bytes(self.head).decode("utf-8", errors="replace") + marker + tail.decode("utf-8", errors="replace")


def rlimit_preexec(limits: Limits, nproc: int | None, cgroup_procs_fds: Sequence[int] = ()) -> Callable[[], None]:
    """Child-side setup run between fork and exec. Only async-signal-safe-ish os calls here."""
    settings = [
        (resource.RLIMIT_AS, limits.memory_mb * _MB),
        (resource.RLIMIT_CPU, limits.cpu_seconds),
        (resource.RLIMIT_FSIZE, limits.file_size_mb * _MB),
        (resource.RLIMIT_NOFILE, limits.open_files),
        (resource.RLIMIT_CORE, 0),
    ]
    if nproc is not None:
        settings.append((resource.RLIMIT_NPROC, nproc))

    owner = os.getpid()

    def preexec() -> None:
        # Die with the owner even if it is killed before bwrap's own --die-with-parent is in
        # place; if it already died between fork and here, do not start at all.
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != owner:
            os._exit(137)
        for fd in cgroup_procs_fds:  # join the sandbox's cgroups ("0" = this process)
            os.write(fd, b"0")
        for which, value in settings:
            resource.setrlimit(which, (value, value))

    return preexec


def nproc_limit(limits: Limits) -> int | None:
    """RLIMIT_NPROC counts all processes of the real uid, so add what the user already runs.

    For root it is not enforced at all (the kernel exempts the initial user namespace's root),
    which is why the bwrap backend also uses a pids cgroup when it can.
    """
    if os.getuid() == 0:
        return None
    uid = os.getuid()
    running = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    running += 1
            except OSError:
                pass
    return limits.processes + running


def run_bounded(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    cwd: str,
    timeout: float,
    output_bytes: int,
    preexec: Callable[[], None] | None,
    kill_tree: Callable[[subprocess.Popen], None],
    pass_fds: Sequence[int] = (),
    cgroup_dirs: Sequence[Path] = (),
) -> ExecResult:
    """Run argv, capture stdout+stderr (bounded), enforce the deadline, kill leftovers at the end.

    The command runs in a process group of its own, registered with the orphan reaper (with its
    cgroups) for as long as it runs: if this process is killed, the reaper kills what is left."""
    start = time.monotonic()
    deadline = start + timeout
    out = BoundedOutput(output_bytes)
    register = REAPER.registration(cgroup_dirs)

    def child_setup() -> None:
        register()  # first: from here on, our death cannot orphan what this child starts
        if preexec is not None:
            preexec()

    try:
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            env=dict(env), cwd=cwd, start_new_session=True, preexec_fn=child_setup, close_fds=True,
            pass_fds=tuple(pass_fds),
        )
    except OSError as exc:  # missing command or cwd: a failed command, as a shell would report it
        return ExecResult(exit_code=127, output=f"dgm sandbox: cannot start {argv[0]!r} in {cwd}: {exc}\n",
                          duration_s=time.monotonic() - start)
    timed_out = False
    exited_at = None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        fd = proc.stdout.fileno()
        while True:
            now = time.monotonic()
            if now >= deadline:
                timed_out = True
                break
            if exited_at is None and proc.poll() is not None:
                exited_at = now
            # The command is done but something it started still holds the pipe open: give it a
            # moment to flush, then treat it as a leftover and kill it.
            if exited_at is not None and now - exited_at > 0.2:
                break
            if sel.select(timeout=min(0.05, deadline - now)):
                chunk = os.read(fd, 65536)
                if not chunk:  # output closed: now only the exit (or the deadline) matters
                    try:
                        proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
                    except subprocess.TimeoutExpired:
                        timed_out = True
                    break
                out.feed(chunk)
        kill_tree(proc)
        _drain(fd, out, until=time.monotonic() + 1.0)
    proc.stdout.close()
    try:
        code = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:  # pragma: no cover - kill_tree failed to kill
        proc.kill()
        code = proc.wait()
    REAPER.release(proc.pid)
    if timed_out:
        code = TIMEOUT_EXIT_CODE
    elif code < 0:
        code = 128 - code  # killed by signal N -> 128+N, as a shell reports it
    return ExecResult(
        exit_code=code, output=out.text(), timed_out=timed_out,
        duration_s=time.monotonic() - start, output_truncated=out.truncated,
    )


def _drain(fd: int, out: BoundedOutput, until: float) -> None:
    """Read what is left after the kill; stop at EOF or when the time runs out."""
    os.set_blocking(fd, False)
    while time.monotonic() < until:
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            time.sleep(0.01)
            continue
        if not chunk:
            return
        out.feed(chunk)


def kill_process_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
