"""docker backend, against the real daemon and this checkout's dgm-agent image (built offline by
`dgm sandbox build-image agent`). Without a daemon or the image these tests skip, unless
DGM_REQUIRE_DOCKER=1 (CI), which makes that a failure (tests/conftest.py)."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import tarfile
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from dgm.sandbox import open_sandbox
from dgm.sandbox.base import Limits, Mount, SandboxError, SandboxSpec
from dgm.sandbox.docker import LABEL, DockerSandbox, _client, cleanup_leftovers, daemon_status
from dgm.sandbox.tarsafe import safe_extract

REPO = Path(__file__).resolve().parents[1]
docker = pytest.mark.docker


def _containers(run_id: str) -> list:
    return _client().containers.list(all=True, filters={"label": [f"{LABEL}=1", f"dgm.run={run_id}"]})


@docker
def test_container_is_locked_down(tmp_path):
    agent = tmp_path / "agent"
    agent.mkdir()
    toolchain = tmp_path / "toolchain"
    (toolchain / "bin").mkdir(parents=True)
    run_id = f"t-{uuid.uuid4().hex[:8]}"
    spec = SandboxSpec(mounts=[Mount(agent, "/agent")], env={"PYTHONPATH": "/agent"},
                       limits=Limits(memory_mb=300, processes=50, file_size_mb=10), labels={"dgm.run": run_id},
                       toolchains=[toolchain])
    with open_sandbox("docker", spec) as sb:
        host = sb.container.attrs["HostConfig"]
        assert host["NetworkMode"] == "none" and host["ReadonlyRootfs"] is True
        assert host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
        assert host["PidsLimit"] == 50 and host["Memory"] == 300 * 2**20 and host["NanoCpus"] == 10**9
        mounts = {m["Destination"]: m for m in sb.container.attrs["Mounts"]}
        assert mounts["/agent"]["RW"] is False and mounts[str(toolchain)]["RW"] is False
        assert not any("docker.sock" in m["Source"] for m in mounts.values())
        assert sb.container.labels["dgm.run"] == run_id and sb.container.labels[LABEL] == "1"
        r = sb.exec(["sh", "-c", "id -u; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status; echo $PATH; "
                     "touch /usr/x 2>&1; touch /work/ok /tmp/ok $HOME/ok && echo writable"], timeout=60)
    lines = r.output.splitlines()
    assert lines[0] == "1000"
    assert lines[1].split() == ["CapEff:", "0000000000000000"] and lines[2].split() == ["NoNewPrivs:", "1"]
    assert lines[3].startswith(f"{toolchain}/bin:")
    assert "Read-only file system" in lines[4] and lines[5] == "writable"
    assert _containers(run_id) == []  # closing removed it


@docker
def test_commands_run_with_the_images_own_python_and_packages():
    with open_sandbox("docker", SandboxSpec()) as sb:
        r = sb.exec(["python", "-c", "import sys, openai, httpx2, pytest, yaml; print(sys.executable, sys.version)"],
                    timeout=60)
        host = sb.exec(["ls", sys.prefix], timeout=30)
    assert r.exit_code == 0, r.output
    assert r.output.startswith("/usr/bin/python 3.11")
    assert host.exit_code != 0  # the host's interpreter is not mounted


@docker
def test_each_step_of_a_containers_life_is_timed_for_the_isolation_bench(tmp_path):
    (tmp_path / "f.txt").write_text("x")
    sandbox = DockerSandbox(SandboxSpec(source=tmp_path))
    sandbox.close()
    assert set(sandbox.seconds) == {"create", "start", "copy_in", "remove"}
    assert all(seconds > 0 for seconds in sandbox.seconds.values())
    assert "storage driver" in daemon_status()[1]  # the bench names it: it changes what a container costs


@docker
def test_exec_returns_output_exit_code_and_bounds_it():
    with open_sandbox("docker", SandboxSpec(limits=Limits(output_bytes=1000))) as sb:
        r = sb.exec("printf 'a%.0s' $(seq 3000); printf 'b%.0s' $(seq 3000); exit 3", timeout=60, env={"X": "1"})
        cwd = sb.exec("mkdir -p repo && cd repo && pwd && echo $X", timeout=30, env={"X": "2"})
        there = sb.exec(["pwd"], timeout=30, cwd="/work/repo")
    assert r.exit_code == 3 and r.output_truncated and r.output.startswith("aaaa") and r.output.endswith("bbbb")
    assert len(r.output) < 1200
    assert cwd.output.split() == ["/work/repo", "2"] and there.output.strip() == "/work/repo"


@docker
def test_exec_timeout_kills_every_process_and_keeps_the_sandbox(tmp_path):
    (tmp_path / "keep.txt").write_text("kept")
    with open_sandbox("docker", SandboxSpec(source=tmp_path)) as sb:
        started = time.monotonic()
        r = sb.exec("(sleep 300 &) ; echo started; sleep 300", timeout=2)
        assert r.timed_out and r.exit_code == 124 and r.output == "started\n"
        assert time.monotonic() - started < 30
        after = sb.exec("cat keep.txt; echo; ps -eo comm | grep -c sleep", timeout=30)
    assert after.output.split() == ["kept", "1"]  # only the container's own `sleep infinity` is left


@docker
@pytest.mark.parametrize("view", ["proc", "daemon"])
def test_what_a_finished_command_left_running_is_killed_and_the_files_stay(tmp_path, monkeypatch, view):
    """Left-overs are seen as extra children of the container's init: in /proc when the daemon shares
    our pid namespace, else (a daemon in a VM or on another host, simulated here) through `docker top`."""
    if view == "daemon":
        monkeypatch.setattr("dgm.sandbox.docker._children_of_init", lambda pid, cid: None)
    (tmp_path / "keep.txt").write_text("kept")
    with open_sandbox("docker", SandboxSpec(source=tmp_path)) as sb:
        r = sb.exec("setsid sleep 300 >/dev/null 2>&1 < /dev/null & echo started", timeout=30)
        after = sb.exec("cat keep.txt; echo; ps -eo comm | grep -c sleep", timeout=30)
    assert not r.timed_out and r.exit_code == 0 and r.output == "started\n"
    assert after.output.split() == ["kept", "1"]  # only the container's own `sleep infinity` is left


@docker
def test_copy_in_and_out_keep_links_as_links(tmp_path):
    src = tmp_path / "src"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("x")
    os.symlink("d/f.txt", src / "l")
    with open_sandbox("docker", SandboxSpec(source=src)) as sb:
        r = sb.exec("readlink l; cat l", timeout=30)
        sb.copy_in(tmp_path / "src" / "d", "/work/extra/d2")
        sb.exec("echo new > d/g.txt", timeout=30)
        sb.copy_out("/work", tmp_path / "out")
        with pytest.raises(SandboxError, match="cannot read /nope"):
            sb.copy_out("/nope", tmp_path / "nope")
    assert r.output.split() == ["d/f.txt", "x"]
    out = tmp_path / "out"
    assert os.readlink(out / "l") == "d/f.txt" and (out / "d" / "g.txt").read_text() == "new\n"
    assert (out / "extra" / "d2" / "f.txt").read_text() == "x"


@docker
def test_a_missing_image_is_a_clear_error():
    with pytest.raises(SandboxError, match=r"dgm-eval:0000 is not built here: run `dgm sandbox build-image eval`"):
        open_sandbox("docker", SandboxSpec(), image="dgm-eval:0000")
    with pytest.raises(SandboxError, match="nothing can be pulled"):
        open_sandbox("docker", SandboxSpec(), image="example/never-pulled:1")


@docker
def test_container_removed_when_setup_fails(tmp_path, monkeypatch):
    run_id = f"t-{uuid.uuid4().hex[:8]}"

    def refuse(self, host_path, inside_path):
        raise SandboxError("copy_in refused")

    monkeypatch.setattr(DockerSandbox, "copy_in", refuse)
    with pytest.raises(SandboxError, match="refused"):
        open_sandbox("docker", SandboxSpec(source=tmp_path, labels={"dgm.run": run_id}))
    assert _containers(run_id) == []


@docker
def test_cleanup_removes_what_a_killed_owner_left(tmp_path):
    """A process holding a sandbox is SIGKILLed: its container stays until a cleanup removes it; a
    cleanup never removes a sandbox whose owner still runs (another run's, or another test's)."""
    killed, other = f"t-{uuid.uuid4().hex[:8]}", f"t-{uuid.uuid4().hex[:8]}"
    holder = textwrap.dedent(f"""
        import sys, time
        from dgm.sandbox import open_sandbox
        from dgm.sandbox.base import SandboxSpec
        sb = open_sandbox("docker", SandboxSpec(labels={{"dgm.run": {killed!r}}}))
        print("open", flush=True)
        time.sleep(600)
    """)
    proc = subprocess.Popen([sys.executable, "-c", holder], cwd=REPO, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "open"
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    with open_sandbox("docker", SandboxSpec(labels={"dgm.run": other})) as live:
        assert len(_containers(killed)) == 1
        removed = cleanup_leftovers(killed)
        assert len(removed) == 1 and _containers(killed) == []
        assert cleanup_leftovers(other) == [] and live.container.name not in cleanup_leftovers()
        assert len(_containers(other)) == 1  # a live sandbox is left alone, even by a cleanup of its run


def _hostile_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        def add(name, data=b"", **attrs):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            for k, v in attrs.items():
                setattr(info, k, v)
            tar.addfile(info, io.BytesIO(data) if data else None)

        add("out", type=tarfile.DIRTYPE, mode=0o755)
        add("out/ok.txt", b"fine")
        add("out/../../escaped.txt", b"evil")
        add("/abs.txt", b"evil")
        add("out/pw", type=tarfile.SYMTYPE, linkname="/etc/passwd")
        add("out/up", type=tarfile.SYMTYPE, linkname="../../../../etc")
        add("out/hard", type=tarfile.LNKTYPE, linkname="/etc/passwd")
        add("out/disk", type=tarfile.CHRTYPE, devmajor=8, devminor=0)
        add("out/inner", type=tarfile.SYMTYPE, linkname="ok.txt")
    return buf.getvalue()


def test_copy_out_extraction_refuses_hostile_entries(tmp_path):
    """What copy_out extracts from docker's archive stream (entries a real container cannot produce)."""
    dest = tmp_path / "deep" / "result"
    with tarfile.open(fileobj=io.BytesIO(_hostile_tar())) as tar:
        safe_extract(tar, dest, "out")
    assert sorted(p.name for p in dest.iterdir()) == ["inner", "ok.txt"]
    assert (dest / "ok.txt").read_text() == "fine" and (dest / "inner").read_text() == "fine"
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("abs.txt"))
