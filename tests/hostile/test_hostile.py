"""Hostile-behaviour suite: untrusted code tries to escape, peek, persist or exhaust; each attempt
must be STOPPED. Runs against every backend available here (bwrap always; docker when a daemon
answers). No test ever sends traffic to a non-loopback address: network isolation is checked
by listing interfaces/routes and by attacking loopback listeners the test itself opened.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import dgm
from dgm.sandbox.base import SandboxError
from dgm.sandbox.cgroups import process_cap_mechanism

from conftest import HOSTILE_LIMITS
from sandbox_helpers import procs_with


def sh(sb, script: str, timeout: float = 10):
    return sb.exec(["/bin/sh", "-c", script], timeout=timeout)


def py(sb, code: str, *args: str, timeout: float = 10):
    return sb.exec(["python3", "-c", textwrap.dedent(code), *args], timeout=timeout)


# --- network -----------------------------------------------------------------------------------


def test_only_loopback_interface_and_no_routes(sandbox):
    r = py(sandbox, "import socket; print(sorted(n for _, n in socket.if_nameindex()))")
    assert r.exit_code == 0, r.output
    assert r.output.strip() == "['lo']"
    routes = sh(sandbox, "tail -n +2 /proc/net/route; cat /proc/net/ipv6_route 2>/dev/null | grep -v ' lo$' || true")
    assert routes.output.strip() == ""  # no route anywhere: no packet can leave, DNS included


def test_host_loopback_port_unreachable(sandbox, secrets):
    r = py(sandbox, """
        import socket, sys
        s = socket.socket(); s.settimeout(2)
        try:
            s.connect(("127.0.0.1", int(sys.argv[1]))); print("CONNECTED")
        except OSError as e:
            print("refused", e)
    """, str(secrets.tcp_port))
    assert "CONNECTED" not in r.output


def test_host_abstract_unix_socket_unreachable(sandbox, secrets):
    r = py(sandbox, """
        import socket, sys
        s = socket.socket(socket.AF_UNIX)
        try:
            s.connect("\\0" + sys.argv[1]); print("CONNECTED")
        except OSError as e:
            print("refused", e)
    """, secrets.abstract_name)
    assert "CONNECTED" not in r.output and "refused" in r.output


def test_no_resolver_configuration(sandbox):
    r = sh(sandbox, "cat /etc/resolv.conf 2>&1; echo; getent hosts localhost")
    assert "nameserver" not in r.output


# --- secrets on the host ----------------------------------------------------------------------


def test_home_canary_invisible(sandbox, secrets):
    r = sh(sandbox, f"cat {secrets.home_canary} 2>&1")
    assert f"CANARY-{secrets.token}" not in r.output
    listing = sh(sandbox, f"ls -a {secrets.home_canary.parent} 2>&1")
    assert secrets.home_canary.name not in listing.output


def test_upstream_key_not_in_env(sandbox, secrets):
    r = sh(sandbox, "env")
    assert r.exit_code == 0
    assert secrets.upstream_key not in r.output and "DGM_TEST_UPSTREAM_KEY" not in r.output


def test_upstream_key_not_in_any_proc_environ(sandbox, secrets):
    r = sh(sandbox, "cat /proc/*/environ 2>/dev/null | tr '\\0' '\\n'; cat /proc/1/environ 2>&1")
    assert secrets.upstream_key not in r.output


def test_host_processes_invisible(sandbox):
    r = sh(sandbox, f"cat /proc/{os.getpid()}/cmdline 2>&1; ls /proc | grep -c '^[0-9]'")
    assert "pytest" not in r.output
    assert int(r.output.strip().splitlines()[-1]) < 10  # only the sandbox's own few processes


def test_hidden_tests_and_gold_patch_invisible(sandbox, secrets):
    r = sh(sandbox, f"cat {secrets.hidden_tests}/test_hidden.py {secrets.gold_patch} 2>&1; "
                    f"ls {secrets.hidden_tests.parent} 2>&1")
    assert f"HIDDEN-{secrets.token}" not in r.output and f"GOLD-{secrets.token}" not in r.output


def test_run_store_invisible(sandbox, secrets):
    r = sh(sandbox, f"cat {secrets.run_store}/run.db 2>&1")
    assert f"STORE-{secrets.token}" not in r.output


def test_etc_shadow_unreadable(sandbox):
    r = sh(sandbox, "cat /etc/shadow /etc/gshadow 2>&1; ls /etc/ssh 2>&1")
    assert r.exit_code != 0
    assert "root:" not in r.output


def test_framework_code_unreadable_and_unimportable(sandbox):
    pkg = Path(dgm.__file__).parent
    r = sh(sandbox, f"ls {pkg} 2>&1; cat {pkg}/sandbox/base.py 2>&1 | head -3; "
                    "python3 -c 'import dgm.sandbox' 2>&1 | tail -1")
    assert "class SandboxSpec" not in r.output and "Sandbox protocol" not in r.output
    assert "ModuleNotFoundError" in r.output


def test_framework_code_unmodifiable(sandbox):
    target = Path(dgm.__file__)
    before = hashlib.sha256(target.read_bytes()).hexdigest()
    sh(sandbox, f"echo 'HACKED = True' >> {target} 2>&1; rm -f {target} 2>&1")
    assert target.exists() and hashlib.sha256(target.read_bytes()).hexdigest() == before


# --- writing outside the work dir -------------------------------------------------------------


@pytest.mark.parametrize("place", ["/usr/dgm-hostile", "/etc/dgm-hostile", f"{sys.prefix}/dgm-hostile"])
def test_system_dirs_not_writable(sandbox, secrets, place):
    r = sh(sandbox, f"echo pwned > {place}-{secrets.token} && echo WROTE")
    assert "WROTE" not in r.output
    assert not Path(f"{place}-{secrets.token}").exists()


def test_host_tmp_untouched(sandbox, secrets):
    host_file = Path("/tmp") / f"dgm-hostile-{secrets.token}"
    r = sh(sandbox, f"echo pwned > {host_file} && echo WROTE")
    assert r.exit_code == 0  # /tmp inside is the sandbox's own
    assert not host_file.exists()


# --- escaping the time limit ------------------------------------------------------------------


def _sleeper(marker: str) -> str:
    # the marker ends up in the command line, so the host can look for survivors
    return f"python3 -c 'import time; time.sleep(300)' {marker}"


_ESCAPES = ["background", "nohup", "setsid", "double_fork"]


@pytest.mark.parametrize("how, ending", [(how, "timeout") for how in [*_ESCAPES, "closed_output"]]
                         + [(how, "exit") for how in _ESCAPES])
def test_no_process_survives_the_exec(sandbox, secrets, how, ending):
    """Whether the command is killed at its deadline or returns on its own, what it started dies with it."""
    marker = f"dgm-hostile-{how}-{ending}-{secrets.token}"
    script = {
        "background": f"{_sleeper(marker)} & echo started",
        "nohup": f"nohup {_sleeper(marker)} >/dev/null 2>&1 & echo started",
        "setsid": f"setsid {_sleeper(marker)} >/dev/null 2>&1 < /dev/null & echo started",
        "double_fork": "python3 -c 'import os,sys,time\n"
                       "if os.fork() == 0:\n os.setsid()\n if os.fork() == 0:\n"
                       "  os.execvp(\"python3\", [\"python3\", \"-c\", \"import time; time.sleep(300)\", sys.argv[1]])\n"
                       " os._exit(0)\nprint(\"started\")' " + marker,
        # the output stream ends while the command itself goes on
        "closed_output": f"exec >/dev/null 2>&1 </dev/null; {_sleeper(marker)}",
    }[how]
    if ending == "timeout":
        r = sh(sandbox, script + "; sleep 0.3; sleep 30", timeout=2)
        assert r.timed_out and r.exit_code == 124
    else:
        r = sh(sandbox, script + "; sleep 0.3", timeout=20)
        assert not r.timed_out
    time.sleep(0.2)
    assert procs_with(marker) == []


def test_busy_loop_killed_at_timeout(sandbox):
    start = time.monotonic()
    r = sh(sandbox, "while :; do :; done", timeout=1)
    assert r.timed_out and time.monotonic() - start < 4


# --- resource exhaustion ----------------------------------------------------------------------


def test_fork_bomb_is_bounded(sandbox, secrets, tmp_path):
    if sandbox.backend == "bwrap" and process_cap_mechanism() is None:
        pytest.skip("root without writable cgroups: nothing but the timeout would stop a fork bomb here")
    marker = f"bomb-{secrets.token}"
    sh(sandbox, f"printf 'b() {{ b | b & }}; b' > /work/{marker}.sh")
    start = time.monotonic()
    r = sh(sandbox, f"sh /work/{marker}.sh; sleep 30", timeout=3)
    assert time.monotonic() - start < 10
    assert r.timed_out or r.exit_code != 0
    time.sleep(0.2)
    assert procs_with(marker) == []
    assert subprocess.run(["true"]).returncode == 0  # the host can still fork


def test_memory_bomb_killed(sandbox):
    r = py(sandbox, "x = bytearray(2 * 1024**3); print('ALLOCATED', len(x))", timeout=10)
    assert "ALLOCATED" not in r.output and r.exit_code != 0 and not r.timed_out


def test_disk_fill_stopped_by_file_size_limit(sandbox):
    r = sh(sandbox, "head -c 100000000 /dev/zero > /work/big; echo rc=$?; stat -c %s /work/big", timeout=10)
    size = int(r.output.strip().splitlines()[-1])
    assert size <= HOSTILE_LIMITS.file_size_mb * 1024 * 1024
    assert "rc=0" not in r.output


def test_huge_output_is_bounded(sandbox):
    r = sh(sandbox, "echo FIRST; head -c 30000000 /dev/zero | tr '\\0' 'x'; echo; echo LAST", timeout=20)
    assert r.output_truncated
    assert len(r.output) < HOSTILE_LIMITS.output_bytes + 200
    assert r.output.startswith("FIRST") and r.output.rstrip().endswith("LAST") and "truncated" in r.output


# --- copy-out tricks --------------------------------------------------------------------------


def test_copy_out_does_not_follow_symlinks_out(sandbox, secrets, tmp_path):
    sh(sandbox, f"mkdir -p /work/out && echo ok > /work/out/result.txt && ln -s /etc/passwd /work/out/pw && "
                f"ln -s {Path.home()} /work/out/home && ln -s ../../../../../../etc/passwd /work/out/rel && "
                "ln -s result.txt /work/out/inner")
    dest = tmp_path / "out"
    sandbox.copy_out("/work/out", dest)
    assert (dest / "result.txt").read_text() == "ok\n"
    for name in ("pw", "home", "rel"):
        assert not (dest / name).exists() and not (dest / name).is_symlink()
    assert (dest / "inner").is_symlink() and (dest / "inner").read_text() == "ok\n"  # stays inside: kept


def test_copy_out_strips_setuid_bits(sandbox, tmp_path):
    sh(sandbox, "mkdir -p /work/out && cp /bin/sh /work/out/rootshell && chmod 6755 /work/out/rootshell")
    sandbox.copy_out("/work/out", tmp_path / "out")
    mode = (tmp_path / "out" / "rootshell").stat().st_mode
    assert not mode & 0o6000


def test_copy_out_of_a_symlinked_dir_is_refused(sandbox, tmp_path):
    sh(sandbox, f"ln -s {Path.home()} /work/evil")
    with pytest.raises(SandboxError):
        sandbox.copy_out("/work/evil", tmp_path / "evil")
    assert not (tmp_path / "evil").exists() or not any((tmp_path / "evil").iterdir())


# --- privileges and kernel interfaces ---------------------------------------------------------


def test_cannot_kill_host_processes(sandbox):
    victim = subprocess.Popen(["sleep", "30"])
    try:
        r = sh(sandbox, f"kill -9 {victim.pid} 2>&1; kill -9 {os.getpid()} 2>&1; echo done")
        assert "done" in r.output
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_cannot_ptrace_host_process(sandbox):
    r = py(sandbox, """
        import ctypes, ctypes.util, sys
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        PTRACE_ATTACH = 16
        print("rc", libc.ptrace(PTRACE_ATTACH, int(sys.argv[1]), 0, 0), ctypes.get_errno())
    """, str(os.getpid()))
    assert r.output.startswith("rc -1"), r.output


def test_nested_user_namespace_denied(sandbox):
    r = sh(sandbox, "unshare -Ur id 2>&1; echo rc=$?")
    assert "rc=0" not in r.output and "uid=0" not in r.output


def test_no_capabilities_and_no_new_privileges(sandbox):
    r = sh(sandbox, "grep -E '^(CapEff|CapPrm|NoNewPrivs)' /proc/self/status; id -u")
    lines = dict(line.split(":\t") for line in r.output.strip().splitlines()[:3])
    assert lines["CapEff"] == "0000000000000000" and lines["CapPrm"] == "0000000000000000"
    assert lines["NoNewPrivs"] == "1"
    assert r.output.strip().splitlines()[-1] != "0"


def test_setuid_binary_gains_nothing(sandbox):
    r = sh(sandbox, "su -c id root < /dev/null 2>&1; echo rc=$?; ls -l /usr/bin/su 2>&1")
    assert "uid=0" not in r.output and "rc=0" not in r.output


def test_proc_sys_not_writable(sandbox):
    # A global sysctl is written with its current value, so even a regression changes nothing.
    overcommit = Path("/proc/sys/vm/overcommit_memory").read_text().strip()
    r = sh(sandbox, f"echo {overcommit} > /proc/sys/vm/overcommit_memory && echo WROTE; "
                    "echo pwned > /proc/sys/kernel/hostname && echo WROTE")
    assert "WROTE" not in r.output
    assert os.uname().nodename != "pwned"


def test_mount_denied(sandbox):
    r = sh(sandbox, "mkdir -p /work/m; mount -t tmpfs none /work/m 2>&1; echo rc=$?; "
                    "mount --bind / /work/m 2>&1; echo rc=$?")
    assert "rc=0" not in r.output


def test_chroot_escape_denied(sandbox):
    r = py(sandbox, """
        import os
        try:
            os.chroot("/tmp"); print("CHROOTED")
        except OSError as e:
            print("denied", e)
    """)
    assert "CHROOTED" not in r.output and "denied" in r.output


def test_no_raw_devices(sandbox):
    r = sh(sandbox, "ls /dev; cat /dev/mem /dev/kmsg /dev/sda 2>&1 | head -c 200")
    listing = set(r.output.split())
    assert not {"sda", "vda", "nvme0n1", "mem", "kmem", "kmsg", "port"} & listing
    assert "No such file" in r.output or "denied" in r.output.lower()


def test_hostname_change_denied_and_host_unchanged(sandbox):
    before = os.uname().nodename
    sh(sandbox, "hostname pwned 2>&1")
    assert os.uname().nodename == before
