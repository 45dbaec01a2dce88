"""local backend: no isolation, but inside paths work, limits apply and no process outlives an exec."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time

import pytest

from dgm.sandbox import open_sandbox
from dgm.sandbox.base import Mount, SandboxSpec
from dgm.sandbox.local import marked_processes
from sandbox_helpers import SMALL_LIMITS, make_repo, sleep_marker, survivors_of_killed_owner


@pytest.fixture
def local_sb(tmp_path):
    agent = tmp_path / "agent"
    agent.mkdir()
    (agent / "hello.py").write_text("print('from agent')\n")
    spec = SandboxSpec(source=make_repo(tmp_path / "repo"), mounts=[Mount(agent, "/agent")], limits=SMALL_LIMITS,
                       env={"TASK": "/work/pkg/mod.py"})
    with open_sandbox("local", spec) as sb:
        yield sb


def test_warns_loudly_once_per_process(tmp_path, caplog, monkeypatch):
    import dgm.sandbox.local

    monkeypatch.setattr(dgm.sandbox.local, "_warned", False)  # as in a fresh process
    with caplog.at_level(logging.WARNING):
        for _ in range(3):
            with open_sandbox("local", SandboxSpec(limits=SMALL_LIMITS)):
                pass
    assert caplog.text.count("does NOT isolate") == 1


def test_inside_paths_are_translated(local_sb):
    r = local_sb.exec(["python", "/agent/hello.py"], timeout=10)
    assert r.output == "from agent\n"
    r = local_sb.exec("cat /work/pkg/mod.py && cat $TASK && cd /work && pwd", timeout=10)
    assert r.output.splitlines()[:2] == ["VALUE = 42", "VALUE = 42"]
    assert r.output.splitlines()[2] == str(local_sb.host_path("/work"))
    assert local_sb.host_path("/agent/hello.py").read_text() == "print('from agent\')\n"


def test_read_only_mounts_are_copies(local_sb, tmp_path):
    local_sb.exec("echo changed > /agent/hello.py", timeout=10)
    assert (tmp_path / "agent" / "hello.py").read_text() == "print('from agent')\n"


def test_daemons_die_after_exec(local_sb):
    marker = f"local-daemon-{os.getpid()}"
    r = local_sb.exec(f"setsid python -c 'import time; time.sleep(300)' {marker} >/dev/null 2>&1 < /dev/null &"
                      " echo started", timeout=5)
    assert "started" in r.output and not r.timed_out
    time.sleep(0.2)
    assert marked_processes(local_sb.marker) == []


def test_timeout_and_file_size_limit(local_sb):
    r = local_sb.exec("sleep 30", timeout=0.5)
    assert r.timed_out and r.exit_code == 124
    r = local_sb.exec("head -c 40000000 /dev/zero > /work/big; echo rc=$?", timeout=10)
    assert os.path.getsize(local_sb.host_path("/work/big")) <= SMALL_LIMITS.file_size_mb * 1024 * 1024
    assert "rc=0" not in r.output


OWNER = """
import sys
from dgm.sandbox import open_sandbox
from dgm.sandbox.base import SandboxSpec
sb = open_sandbox("local", SandboxSpec())
sb.exec(["sh", "-c", sys.argv[2].replace("MARK", sys.argv[1])], timeout=600)
"""


def test_a_command_dies_with_its_killed_owner(tmp_path, monkeypatch):
    """The sandboxed process gets SIGKILL when its owner dies, whatever sandbox tool sits in between."""
    monkeypatch.setenv("DGM_SANDBOX_TMP", str(tmp_path))
    marker = sleep_marker()
    owner = subprocess.Popen([sys.executable, "-c", OWNER, marker, "exec sleep 1000 MARK"])
    assert survivors_of_killed_owner(owner, marker) == []


@pytest.mark.parametrize("started", ["sleep 1000 MARK & wait", "setsid sleep 1000 MARK & wait"],
                         ids=["in-its-group", "in-a-new-session"])
def test_what_a_command_started_dies_with_its_killed_owner(tmp_path, monkeypatch, started):
    """The orphan reaper: grandchildren have no parent-death signal; once the owner is gone, the reaper
    kills the command's process group, and its cgroup (which a new session does not leave)."""
    monkeypatch.setenv("DGM_SANDBOX_TMP", str(tmp_path))
    marker = sleep_marker()
    owner = subprocess.Popen([sys.executable, "-c", OWNER, marker, started])
    assert survivors_of_killed_owner(owner, marker) == []
