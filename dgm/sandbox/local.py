"""local backend: a plain subprocess with rlimits. It does NOT isolate anything (explicit opt-in).

How inside paths work without namespaces: every inside path (/work, /tmp, /home/sandbox, each
mount's inside path, /run/dgm/llm.sock) maps to a host path (see `host_path`). The command's
argv words, its cwd and env values that start with an inside path are rewritten to the host
path before running; in a shell string, occurrences that start a word are rewritten too. Code
that builds such paths at runtime from scratch (e.g. `open("/wo" + "rk/x")`) sees the host.
Read-only mounts are copied (so an accident cannot modify the original); writable mounts map to
the original directory.

Processes: the command runs in a new session; on exit or timeout we kill that process group,
every process whose environment carries this sandbox's marker (catches setsid/double-forked
daemons that did not scrub their env) and, when available, its pids cgroup.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import uuid
from pathlib import Path

from .base import ExecResult, SandboxSpec
from .cgroups import SandboxCgroup
from .hostbacked import HostBackedSandbox
from .hostdir import copy_tree_in
from .process import kill_process_group, nproc_limit, rlimit_preexec, run_bounded

log = logging.getLogger(__name__)

MARKER_VAR = "DGM_SANDBOX_ID"
SHELLS = {"sh", "bash", "dash", "zsh"}
_warned = False


def warn_no_isolation() -> None:
    """Once per process: a validation opens hundreds of local sandboxes, one warning says it all."""
    global _warned
    if _warned:
        return
    _warned = True
    message = ("dgm: the LOCAL sandbox backend does NOT isolate: commands run as you, with your network, "
               "files and processes visible. Use it only for trusted code or debugging.")
    log.warning(message)
    # Without handlers the message already reached stderr (logging's last resort); with handlers
    # it may only reach a log file, so say it on stderr too.
    if logging.getLogger().hasHandlers():
        print(f"WARNING: {message}", file=sys.stderr)


class LocalSandbox(HostBackedSandbox):
    backend = "local"

    def __init__(self, spec: SandboxSpec):
        warn_no_isolation()
        super().__init__(spec)
        self.marker = uuid.uuid4().hex
        self.paths = self._with_copied_ro_mounts(spec)
        self.inside_home = str(self.dir.home)
        self._cgroup = SandboxCgroup.create(spec.limits.memory_mb, spec.limits.processes)

    def _with_copied_ro_mounts(self, spec: SandboxSpec):
        for index, mount in enumerate(spec.mounts):
            if not mount.writable:
                copy = self.dir.root / "mounts" / str(index)
                copy.parent.mkdir(exist_ok=True)
                copy_tree_in(Path(mount.host), copy)
                self.paths.add(mount.inside, copy, False)  # replaces the mapping to the original
        return self.paths

    def translate(self, text: str, whole_word_only: bool = False) -> str:
        """Rewrite inside paths at the start of `text` (or of each word in a shell string), in one pass."""
        hosts = {inside: str(host) for inside, host, _ in self.paths.items()}
        alternatives = "|".join(re.escape(i) for i in hosts)  # items() is longest first
        pattern = rf"({alternatives})(?=/|$|[\s'\";:)])"
        if whole_word_only:
            return re.sub(r"(?<![\w./-])" + pattern, lambda m: hosts[m.group(1)], text)
        return re.sub("^" + pattern, lambda m: hosts[m.group(1)], text, count=1)

    def _run(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> ExecResult:
        if len(argv) >= 3 and os.path.basename(argv[0]) in SHELLS and argv[1] == "-c":
            argv = argv[:2] + [self.translate(argv[2], whole_word_only=True)] + argv[3:]
        else:
            argv = [self.translate(a) for a in argv]
        env = {k: self.translate(v) for k, v in env.items()}
        env["HOME"] = str(self.dir.home)
        env[MARKER_VAR] = self.marker
        limits = self.spec.limits
        fds = self._cgroup.procs_fds() if self._cgroup else []
        return run_bounded(
            argv, env=env, cwd=self.translate(cwd), timeout=timeout, output_bytes=limits.output_bytes,
            preexec=rlimit_preexec(limits, nproc_limit(limits), fds), kill_tree=self._kill,
            cgroup_dirs=self._cgroup.dirs if self._cgroup else (),
        )

    def _kill(self, proc: subprocess.Popen) -> None:
        kill_process_group(proc)
        if self._cgroup:
            self._cgroup.kill_all()
        for pid in marked_processes(self.marker):
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def _close_extra(self) -> None:
        if self._cgroup:
            self._cgroup.remove()


def marked_processes(marker: str) -> list[int]:
    """Pids whose environment contains DGM_SANDBOX_ID=<marker> (a /proc scan, no psutil)."""
    needle = f"{MARKER_VAR}={marker}".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    found.append(int(entry.name))
        except OSError:
            pass
    return found
