"""docker backend. No Docker daemon runs here, so these tests drive DockerSandbox with a
unittest.mock docker client (the way docker-py's own tests mock the API) and check what we ask
the daemon for. `@pytest.mark.docker` tests use a real daemon and skip unless one answers."""

from __future__ import annotations

import io
import os
import tarfile
import threading
from pathlib import Path
from unittest import mock

import pytest

from dgm.sandbox import open_sandbox
from dgm.sandbox.base import Limits, Mount, SandboxSpec
from dgm.sandbox.docker import build_images, cleanup_leftovers, daemon_status


def _mock_client(stream_chunks=(b"hello\n",), exit_code=0):
    client = mock.MagicMock(name="docker_client")
    container = client.containers.create.return_value
    container.id = "cid123"
    container.put_archive.return_value = True
    client.api.exec_create.return_value = {"Id": "exec1"}
    client.api.exec_start.side_effect = lambda *a, **k: iter(list(stream_chunks))
    client.api.exec_inspect.return_value = {"ExitCode": exit_code}
    return client, container


def test_container_is_created_locked_down(tmp_path):
    agent = tmp_path / "agent"
    agent.mkdir()
    sock = tmp_path / "gw.sock"
    sock.touch()
    client, container = _mock_client()
    toolchain = tmp_path / "toolchain"
    (toolchain / "bin").mkdir(parents=True)
    spec = SandboxSpec(mounts=[Mount(agent, "/agent")], llm_socket=sock, env={"PYTHONPATH": "/agent"},
                       limits=Limits(memory_mb=300, processes=50, file_size_mb=10), labels={"dgm.run": "r1"},
                       toolchains=[toolchain])
    with open_sandbox("docker", spec, client=client, image="img:1") as sb:
        assert sb.backend == "docker"
    kw = client.containers.create.call_args.kwargs
    assert kw["image"] == "img:1" and kw["network_mode"] == "none" and kw["user"] == "1000:1000"
    assert kw["labels"] == {"dgm.run": "r1", "dgm.sandbox": "1"}
    assert kw["mem_limit"] == "300m" and kw["pids_limit"] == 50 and kw["read_only"] is True
    assert kw["cap_drop"] == ["ALL"] and "no-new-privileges" in kw["security_opt"]
    assert "/tmp" in kw["tmpfs"]
    assert kw["environment"]["PYTHONPATH"] == "/agent" and "DGM_TEST_UPSTREAM_KEY" not in kw["environment"]
    targets = {m["Target"]: m for m in kw["mounts"]}
    assert targets["/agent"]["ReadOnly"] is True and targets["/run/dgm/llm.sock"]["Source"] == str(sock)
    assert targets[str(toolchain)]["ReadOnly"] is True
    assert kw["environment"]["PATH"].startswith(f"{toolchain}/bin:")
    assert {u["Name"]: u["Hard"] for u in kw["ulimits"]}["fsize"] == 10 * 1024 * 1024
    container.remove.assert_called_once_with(force=True, v=True)


def test_exec_returns_output_and_exit_code():
    client, _ = _mock_client(stream_chunks=(b"a" * 10, b"b" * 10), exit_code=3)
    with open_sandbox("docker", SandboxSpec(limits=Limits(output_bytes=8)), client=client) as sb:
        r = sb.exec("echo hi", timeout=5, env={"X": "1"}, cwd="/work/repo")
    assert r.exit_code == 3 and r.output_truncated and r.output.startswith("aaaa") and r.output.endswith("bbbb")
    args, kw = client.api.exec_create.call_args
    assert args == ("cid123", ["/bin/sh", "-c", "echo hi"])
    assert kw["environment"]["X"] == "1" and kw["workdir"] == "/work/repo" and kw["user"] == "1000:1000"


def test_exec_timeout_kills_every_process_and_keeps_the_sandbox():
    client, container = _mock_client()
    released = threading.Event()
    container.kill.side_effect = lambda: released.set()

    def hanging_stream(*_a, **_k):
        yield b"started\n"
        released.wait(10)  # the stream ends when the container is killed

    client.api.exec_start.side_effect = hanging_stream
    with open_sandbox("docker", SandboxSpec(), client=client) as sb:
        r = sb.exec(["sleep", "100"], timeout=0.3)
        assert r.timed_out and r.exit_code == 124 and r.output == "started\n"
        container.kill.assert_called_once()
        assert container.start.call_count == 2  # started, then restarted after the kill


def test_copy_in_sends_a_tar_with_links_as_links(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    (src / "f.txt").write_text("x")
    os.symlink("f.txt", src / "l")
    client, container = _mock_client()
    with open_sandbox("docker", SandboxSpec(source=src), client=client):
        pass
    path, data = container.put_archive.call_args.args
    assert path == "/work"
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["f.txt"].isfile() and members["l"].issym() and members["l"].linkname == "f.txt"


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


def test_copy_out_extracts_safely(tmp_path):
    client, container = _mock_client()
    container.get_archive.return_value = (iter([_hostile_tar()]), {})
    dest = tmp_path / "deep" / "result"
    with open_sandbox("docker", SandboxSpec(), client=client) as sb:
        sb.copy_out("/work/out", dest)
    assert sorted(p.name for p in dest.iterdir()) == ["inner", "ok.txt"]
    assert (dest / "ok.txt").read_text() == "fine" and (dest / "inner").read_text() == "fine"
    assert not list(tmp_path.rglob("escaped.txt")) and not list(tmp_path.rglob("abs.txt"))


def test_cleanup_leftovers_removes_labelled_containers():
    client = mock.MagicMock()
    leftovers = [mock.MagicMock(name=f"c{i}") for i in range(2)]
    client.containers.list.return_value = leftovers
    cleanup_leftovers("run-7", client=client)
    filters = client.containers.list.call_args.kwargs["filters"]
    assert filters == {"label": ["dgm.sandbox=1", "dgm.run=run-7"]}
    for c in leftovers:
        c.remove.assert_called_once_with(force=True, v=True)


def test_container_removed_when_setup_fails(tmp_path):
    client, container = _mock_client()
    container.put_archive.return_value = False
    src = tmp_path / "s"
    src.mkdir()
    with pytest.raises(Exception, match="refused"):
        open_sandbox("docker", SandboxSpec(source=src), client=client)
    container.remove.assert_called_once_with(force=True, v=True)


def test_build_images_uses_the_dockerfiles():
    client = mock.MagicMock()
    assert build_images(client) == ["dgm-agent:latest", "dgm-eval:latest"]
    kw = client.images.build.call_args_list[0].kwargs
    assert kw["dockerfile"] == "Dockerfile.agent" and Path(kw["path"], "Dockerfile.agent").exists()


@pytest.mark.docker
def test_real_daemon_round_trip(tmp_path):
    ok, reason = daemon_status()
    if not ok:
        pytest.skip(reason)
    (tmp_path / "a.txt").write_text("hi")
    with open_sandbox("docker", SandboxSpec(source=tmp_path)) as sb:
        r = sb.exec("cat a.txt; id -u", timeout=60)
        assert r.output.split() == ["hi", "1000"]
