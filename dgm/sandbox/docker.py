"""docker backend (needed for SWE-bench images; works wherever a Docker daemon answers).

The default image is this checkout's `dgm-agent:<fingerprint>` (dgm/sandbox/images.py builds it
offline: `dgm sandbox build-image agent`); commands run with that image's own Python and packages.

One container per sandbox, kept alive with `sleep infinity` under docker's init; each exec is
a docker exec. Isolation: non-root user, network_mode="none", all capabilities dropped,
no-new-privileges, read-only root fs with tmpfs /tmp and $HOME, /work on an anonymous volume
(docker cannot copy into tmpfs mounts), memory / cpu / pids limits, ulimits for file size, open
files and CPU time. The gateway socket is bind-mounted at /run/dgm/llm.sock.

The SDK's exec has no timeout, so the exec's output is read in a thread; when the deadline
passes the container is killed (every process in it dies) and started again, so the sandbox
stays usable with its files intact. A command that returns but leaves processes behind (a
daemon, a fork bomb's stragglers) gets the same restart: as with bwrap and local, nothing a
command started outlives it.

Every container is labelled dgm.sandbox=1 (and dgm.run=<run id> from the spec), so
`cleanup_leftovers` finds what a killed run left. The Docker socket is never mounted.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import tarfile
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Mapping, Sequence

from .base import (INSIDE_LLM_SOCKET, INSIDE_WORKDIR, ExecResult, SandboxError, SandboxSpec, check_toolchains,
                   command_env)
from .hostbacked import argv_of
from .process import TIMEOUT_EXIT_CODE, BoundedOutput
from .tarsafe import make_tar, make_tar_of_contents, safe_extract

log = logging.getLogger(__name__)

SANDBOX_USER = "1000:1000"
INSIDE_HOME = "/home/sandbox"
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
LABEL = "dgm.sandbox"
OWNER_LABEL = "dgm.owner"  # host:pid:start time of the process that opened the sandbox
GO_MODE_SYMLINK = 1 << 27  # os.ModeSymlink in the mode docker reports for archive paths


def _client(client=None):
    if client is not None:
        return client
    try:
        import docker

        return docker.from_env(timeout=10)
    except Exception as exc:
        raise SandboxError(f"docker backend: cannot reach a Docker daemon ({exc})") from None


def daemon_status(client=None) -> tuple[bool, str]:
    try:
        c = client
        if c is None:
            import docker

            c = docker.from_env(timeout=2)
        c.ping()
        info = c.info()
        return True, f"daemon answers (server {info.get('ServerVersion', '?')}, storage driver {info.get('Driver', '?')})"
    except Exception as exc:
        return False, f"no Docker daemon answers: {exc.__class__.__name__}: {exc}"


class DockerSandbox:
    backend = "docker"

    def __init__(self, spec: SandboxSpec, *, client=None, image: str | None = None, cpus: float = 1.0,
                 user: str = SANDBOX_USER, writable_root: bool = False, hidden_dirs: Sequence[str] = ()):
        """`writable_root` keeps the image's own files writable (in the container's throw-away layer),
        for task images whose repository lives in the image (SWE-bench's /testbed); `hidden_dirs`
        get an empty read-only tmpfs over them (e.g. the framework inside a mounted Python prefix).
        `image` None: this checkout's dgm-agent image; "agent", "eval" or "polyglot": that dgm image."""
        self.spec = spec
        self.client = _client(client)
        self.image = resolve_image(image)
        self.user = user
        self.writable_root = writable_root
        self.hidden_dirs = list(hidden_dirs)
        self._closed = False
        for mount in spec.mounts:
            if not Path(mount.host).exists():
                raise SandboxError(f"mount source does not exist: {mount.host} (for {mount.inside})")
        check_toolchains(spec)
        self.seconds: dict[str, float] = {}  # what each step of the container's life took (dgm bench isolation)
        with self._timed("create"):
            self.container = self._create(spec, cpus)
        self._init_pid: int | None = None
        try:
            with self._timed("start"):
                self._start()
            if spec.source is not None:
                with self._timed("copy_in"):
                    self.copy_in(Path(spec.source), INSIDE_WORKDIR)
        except BaseException:
            self.close()
            raise

    @contextlib.contextmanager
    def _timed(self, step: str):
        started = time.perf_counter()
        yield
        self.seconds[step] = time.perf_counter() - started

    def _create(self, spec: SandboxSpec, cpus: float):
        import docker.errors

        try:
            return self.client.containers.create(**self._create_kwargs(spec, cpus))
        except docker.errors.ImageNotFound:
            raise SandboxError(f"docker image {self.image} is not built here: {build_hint(self.image)}") from None

    def _create_kwargs(self, spec: SandboxSpec, cpus: float) -> dict:
        from docker.types import Mount as DockerMount, Ulimit

        limits = spec.limits
        mounts = [DockerMount(target=INSIDE_WORKDIR, source=None, type="volume")]  # anonymous, removed with v=True
        for m in spec.mounts:
            mounts.append(DockerMount(target=m.inside, source=str(Path(m.host).resolve()), type="bind",
                                      read_only=not m.writable))
        for toolchain in spec.toolchains:
            mounts.append(DockerMount(target=str(toolchain), source=str(toolchain), type="bind", read_only=True))
        # network "none" still gets a copy of the host's resolv.conf; an empty one names no resolver
        mounts.append(DockerMount(target="/etc/resolv.conf", source=str(_empty_resolv_conf()), type="bind",
                                  read_only=True))
        if spec.llm_socket is not None:
            mounts.append(DockerMount(target=INSIDE_LLM_SOCKET, source=str(Path(spec.llm_socket).resolve()),
                                      type="bind", read_only=True))
        mb = 1024 * 1024
        uid, gid = self._owner()  # $HOME belongs to whoever runs the commands
        tmpfs = {"/tmp": f"rw,size={limits.file_size_mb}m,mode=1777",
                 INSIDE_HOME: f"rw,size=64m,uid={uid},gid={gid}"}
        tmpfs.update({hidden: "ro,size=64k" for hidden in self.hidden_dirs})
        return dict(
            image=self.image, command=["sleep", "infinity"], init=True, detach=True,
            name=f"dgm-sbx-{uuid.uuid4().hex[:12]}",
            labels={**spec.labels, LABEL: "1", OWNER_LABEL: _this_process()},
            user=self.user, working_dir=INSIDE_WORKDIR, network_mode="none",
            environment=self._env(None), mounts=mounts,
            read_only=not self.writable_root, tmpfs=tmpfs,
            mem_limit=f"{limits.memory_mb}m", memswap_limit=f"{limits.memory_mb}m",
            nano_cpus=int(cpus * 1e9), pids_limit=limits.processes,
            ulimits=[Ulimit(name="fsize", soft=limits.file_size_mb * mb, hard=limits.file_size_mb * mb),
                     Ulimit(name="nofile", soft=limits.open_files, hard=limits.open_files),
                     Ulimit(name="cpu", soft=limits.cpu_seconds, hard=limits.cpu_seconds)],
            cap_drop=["ALL"], security_opt=["no-new-privileges"],
        )

    def _env(self, extra: Mapping[str, str] | None) -> dict[str, str]:
        return command_env({"PATH": CONTAINER_PATH, "HOME": INSIDE_HOME, "LANG": "C.UTF-8"}, self.spec, extra)

    # --- Sandbox protocol ---------------------------------------------------------------------

    def exec(self, command: Sequence[str] | str, *, timeout: float, env: Mapping[str, str] | None = None,
             cwd: str = INSIDE_WORKDIR) -> ExecResult:
        if self._closed:
            raise SandboxError("docker sandbox is closed")
        api = self.client.api
        start = time.monotonic()
        exec_id = api.exec_create(self.container.id, argv_of(command), environment=self._env(env),
                                  workdir=cwd, user=self.user, stdout=True, stderr=True)["Id"]
        out = BoundedOutput(self.spec.limits.output_bytes)
        reader = threading.Thread(target=self._read_stream, args=(api.exec_start(exec_id, stream=True), out),
                                  daemon=True)
        reader.start()
        reader.join(timeout)
        state = None if reader.is_alive() else self._wait_for_exit(exec_id, start + timeout)
        if state is None:  # deadline: kill everything in the container, keep its files
            self._restart()
            reader.join(5)
            return ExecResult(TIMEOUT_EXIT_CODE, out.text(), True, time.monotonic() - start, out.truncated)
        if self._has_leftovers():
            self._restart()
        code = state.get("ExitCode")
        return ExecResult(code if code is not None else -1, out.text(), False, time.monotonic() - start,
                          out.truncated)

    def _wait_for_exit(self, exec_id: str, deadline: float) -> dict | None:
        """The exec's final state, or None if it still runs at the deadline (its output can end first)."""
        while (state := self.client.api.exec_inspect(exec_id)).get("Running"):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)
        return state

    @staticmethod
    def _read_stream(stream, out: BoundedOutput) -> None:
        try:
            for chunk in stream:
                out.feed(chunk)
        except Exception as exc:  # the container was killed under us
            log.debug("docker exec stream ended: %s", exc)

    def _start(self) -> None:
        self.container.start()
        self.container.reload()
        self._init_pid = self.container.attrs["State"]["Pid"]

    def _restart(self) -> None:
        """Kill the container's init: the kernel kills every process of it, the files stay."""
        try:
            self.container.kill()
            self.container.wait(timeout=60)  # exited = every process in its pid namespace is gone
        except Exception as exc:
            log.debug("kill after timeout: %s", exc)
        self._start()

    def _has_leftovers(self) -> bool:
        """Whether anything but init's `sleep infinity` runs: after an exec returned, whatever it left
        behind has been re-parented to init, so init's children say it all."""
        children = _children_of_init(self._init_pid, self.container.id)
        if children is None:  # the daemon is not in our pid namespace (a VM or a remote host): ask it
            return len(self.container.top()["Processes"]) > 2
        return len(children) > 1

    def host_path(self, inside_path: str) -> Path | None:
        return None  # container files live in the daemon, not in a host dir we manage

    def copy_in(self, host_path: Path, inside_path: str) -> None:
        host_path = Path(host_path)
        if not host_path.exists():
            raise SandboxError(f"copy_in: {host_path} does not exist")
        parent, _, name = inside_path.rstrip("/").rpartition("/")
        parent = parent or "/"
        if host_path.is_dir() and inside_path.rstrip("/") == INSIDE_WORKDIR:
            # the volume exists already: put the directory's contents into it
            data = make_tar_of_contents(host_path, self._owner())
            target = INSIDE_WORKDIR
        else:
            self.exec(["mkdir", "-p", parent], timeout=30)
            data = make_tar(host_path, name, self._owner())
            target = parent
        if not self.container.put_archive(target, data):
            raise SandboxError(f"copy_in: docker refused to write {inside_path}")

    def _owner(self) -> tuple[int, int]:
        """Numeric uid/gid of the user commands run as: what is copied in belongs to them."""
        uid, _, gid = self.user.partition(":")
        uid = int(uid) if uid.isdigit() else 1000
        return uid, int(gid) if gid.isdigit() else uid

    def copy_out(self, inside_path: str, host_path: Path) -> None:
        try:
            stream, stat = self.container.get_archive(inside_path)
        except Exception as exc:
            raise SandboxError(f"copy_out: cannot read {inside_path} from the container: {exc}") from None
        if stat.get("linkTarget") or stat.get("mode", 0) & GO_MODE_SYMLINK:
            raise SandboxError(f"copy_out: {inside_path} is a symbolic link (to {stat.get('linkTarget')}); refused")
        top = inside_path.rstrip("/").rpartition("/")[2] or "/"
        with tempfile.TemporaryFile() as buffer:
            for chunk in stream:
                buffer.write(chunk)
            buffer.seek(0)
            with tarfile.open(fileobj=buffer, mode="r") as tar:
                skipped = safe_extract(tar, Path(host_path), top)
        if skipped:
            log.warning("copy_out %s: skipped unsafe entries %s", inside_path, skipped[:10])

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            with self._timed("remove"):
                self.container.remove(force=True, v=True)
        except Exception as exc:
            log.warning("could not remove container %s: %s", getattr(self.container, "id", "?"), exc)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _children_of_init(pid: int | None, container_id: str) -> list[str] | None:
    """Host pids of the children of the container's init, read from /proc; None if that pid is
    not this container's init as seen from here (checked by its cgroup, which names the container)."""
    if not pid:
        return None
    try:
        if container_id not in Path(f"/proc/{pid}/cgroup").read_text():
            return None
        return Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return None


def cleanup_leftovers(run_id: str | None = None, client=None) -> list[str]:
    """Remove containers (and their anonymous volumes) of dgm sandboxes (of run_id) whose owner is dead.

    A container whose owning process still runs on this host is someone's open sandbox and stays."""
    client = _client(client)
    filters = {"label": [f"{LABEL}=1"] + ([f"dgm.run={run_id}"] if run_id else [])}
    removed = []
    for container in client.containers.list(all=True, filters=filters):
        if _owner_alive(container.labels.get(OWNER_LABEL, "")):
            continue
        container.remove(force=True, v=True)
        removed.append(container.name)
    return removed


def _this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid())}"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat): with the pid,
    it names one process even after pids are reused."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rpartition(")")[2].split()[19]


def _owner_alive(owner: str) -> bool:
    """Whether the process that opened a sandbox still runs (no owner label: it is dead)."""
    if not owner:
        return False
    host, pid, started = (owner.split(":") + ["", ""])[:3]
    if host != socket.gethostname():
        return True  # another machine's sandbox (a shared daemon): not ours to judge
    return pid.isdigit() and _start_time(int(pid)) == started


def _empty_resolv_conf() -> Path:
    from .images import CACHE_DIR

    path = CACHE_DIR / "empty-resolv.conf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("")
    return path


def resolve_image(image: str | None) -> str:
    """None -> this checkout's dgm-agent image; a bare name of one of dgm's images -> its current tag."""
    from .images import TARGETS, image_tag

    if image is None:
        return image_tag("agent")
    return image_tag(image) if image in TARGETS and image != "all" else image


def build_hint(image: str) -> str:
    """The command that builds `image` when it is one of ours."""
    name = image.partition(":")[0].removeprefix("dgm-")
    from .images import TARGETS

    if image.startswith("dgm-") and name in TARGETS:
        return f"run `dgm sandbox build-image {name}`"
    return "build or load it first (nothing can be pulled here)"
