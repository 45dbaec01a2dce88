"""Shared bits for the sandbox tests (not a conftest: tests/conftest.py belongs to the whole suite)."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from dgm.sandbox import doctor
from dgm.sandbox.base import Limits

SMALL_LIMITS = Limits(memory_mb=512, cpu_seconds=30, file_size_mb=16, open_files=256, processes=64,
                      output_bytes=64 * 1024)


def bwrap_status():
    return next(s for s in doctor() if s.name == "bwrap")


needs_bwrap = pytest.mark.skipif(not bwrap_status().available, reason=f"bwrap unusable: {bwrap_status().reason}")


def make_repo(root: Path) -> Path:
    """A tiny source tree with a nested dir, an inner symlink and a link pointing out."""
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("VALUE = 42\n")
    (root / "README.md").write_text("hello\n")
    os.symlink("pkg/mod.py", root / "link_in")
    os.symlink("/etc/hostname", root / "link_out")
    return root


class EchoSocketServer:
    """A real Unix-socket server answering 'pong:<request>' (stands in for the LLM gateway)."""

    def __init__(self, path: Path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.sendall(b"pong:" + conn.recv(100))

    def close(self):
        self.sock.close()


def procs_with(marker: str, command: bytes = b"") -> list[int]:
    """Pids (other than ours) whose cmdline starts with `command` and contains `marker` (a /proc scan)."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                cmdline = Path(f"/proc/{entry.name}/cmdline").read_bytes()
                if marker.encode() in cmdline and cmdline.startswith(command):
                    found.append(int(entry.name))
            except OSError:
                pass
    return [p for p in found if p != os.getpid()]


_markers = itertools.count(1)


def sleep_marker() -> str:
    """An extra `sleep` operand that is a valid duration and names this test process and call.

    Fixed width, so that no marker is a substring of another."""
    return f"0.000{os.getpid():08d}{next(_markers):06d}"


def survivors_of_killed_owner(owner: subprocess.Popen, marker: str) -> list[int]:
    """Once the owner's `sleep 1000 <marker>` runs, SIGKILL the owner; the marked pids still alive 5 s later."""
    started = b"sleep\x001000\x00"  # the command itself: a sandbox tool's cmdline carries the marker earlier
    deadline = time.monotonic() + 20
    while not procs_with(marker, command=started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs_with(marker, command=started), "the sandboxed command never started"
    owner.kill()
    owner.wait()
    deadline = time.monotonic() + 5
    while procs_with(marker) and time.monotonic() < deadline:
        time.sleep(0.05)
    return procs_with(marker)
