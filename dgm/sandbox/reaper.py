"""The orphan reaper: kills what our sandboxes left running once the process that started them is gone.

Why it is needed: a sandbox's first process dies with us (PR_SET_PDEATHSIG), but bwrap's inner
process only asks for that itself at the end of its set-up. If we are killed while bwrap is
setting up, the inner process is orphaned: either it waits forever for a go-ahead its dead parent
will never send, or it finishes its set-up and runs the sandboxed command to the end.

How: one small helper process per sandbox-opening process (started on first use, stdlib only, run
by path so it imports nothing of dgm). Every sandboxed command registers itself from the child,
between fork and exec ("+PGID [CGROUP_DIR ...]"), and is released once it has been waited for
("-PGID"). When the pipe reaches end-of-file, however we died, the helper kills every process
group and cgroup still registered, then exits.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable, Sequence

KILL_ROUNDS = 20  # cgroup v1 has no cgroup.kill: processes forking meanwhile need more passes


class OrphanReaper:
    """This process's side: starts the helper and tells it what runs."""

    def __init__(self):
        self._lock = threading.Lock()
        self._helper: subprocess.Popen | None = None
        self._owner = 0  # the pid that started the helper (a forked child needs its own)

    def _pipe(self) -> int | None:
        with self._lock:
            if self._helper is None or self._owner != os.getpid() or self._helper.poll() is not None:
                try:
                    self._helper = subprocess.Popen(
                        [sys.executable, "-I", __file__], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, start_new_session=True, close_fds=True)  # no terminal signals
                except OSError:
                    return None  # the sandboxes still die with us; only this second line is missing
                self._owner = os.getpid()
            return self._helper.stdin.fileno()

    def registration(self, cgroup_dirs: Sequence[Path]) -> Callable[[], None]:
        """A function for the child to call between fork and exec (it only writes to a pipe)."""
        fd = self._pipe()
        tail = "".join(f" {d}" for d in cgroup_dirs).encode() + b"\n"

        def register() -> None:
            if fd is not None:
                try:
                    os.write(fd, b"+%d%s" % (os.getpid(), tail))
                except OSError:
                    pass

        return register

    def release(self, pgid: int) -> None:
        """Called once the command was waited for. No helper of ours, nothing registered: nothing to say."""
        with self._lock:
            helper = self._helper if self._owner == os.getpid() else None
        if helper is not None:
            try:
                os.write(helper.stdin.fileno(), b"-%d\n" % pgid)
            except (OSError, ValueError):
                pass


REAPER = OrphanReaper()


# -- the helper process ---------------------------------------------------------------------------
def _kill_cgroup(directory: str) -> None:
    procs = Path(directory) / "cgroup.procs"
    for _ in range(KILL_ROUNDS):
        try:
            pids = [int(p) for p in procs.read_text().split()]
        except (OSError, ValueError):
            return
        if not pids:
            return
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def main() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live: dict[int, list[str]] = {}  # process group -> its cgroup dirs
    for line in sys.stdin:
        words = line.split()
        if words and words[0][0] == "+":
            live[int(words[0][1:])] = words[1:]
        elif words and words[0][0] == "-":
            live.pop(int(words[0][1:]), None)
    for pgid, cgroups in live.items():  # end of file: whoever registered these is gone
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
        for directory in cgroups:
            _kill_cgroup(directory)


if __name__ == "__main__":
    main()
