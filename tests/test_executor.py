"""The executor seam without Ray: the in-process executor's run-wide slot limit, directories as
bytes, the per-job relay from a worker's sandboxes to the driver's gateway, and a retried job's
LLM calls served from the gateway's record (the fake upstream stands in for a paid API)."""

from __future__ import annotations

import io
import tarfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fake_upstream as fu
from dgm.agent_run import SandboxPolicy
from dgm.config import ConfigError, load_config
from dgm.executor import InProcessExecutor, Job, Workplace, gateway_host
from dgm.executor.relay import unix_relay
from dgm.executor.transfer import pack, unpack
from dgm.llm.base import CallContext
from dgm.llm.cache import ResponseCache
from dgm.llm.client import uds_client
from dgm.llm.gateway import Gateway
from dgm.llm.upstream import build_upstreams

REPO = Path(__file__).resolve().parents[1]
KEY_ENV = "DGM_TEST_UPSTREAM_KEY"


# -- the in-process executor ----------------------------------------------------------------------
def _busy(place, *, out_dir, gauge: dict, lock: threading.Lock) -> str:
    with lock:
        gauge["now"] += 1
        gauge["max"] = max(gauge["max"], gauge["now"])
    time.sleep(0.05)
    with lock:
        gauge["now"] -= 1
    (out_dir / "done.txt").write_text("ok")
    return place.policy.backend


def test_in_process_executor_never_runs_more_jobs_than_its_slots(tmp_path):
    executor = InProcessExecutor(Workplace(SandboxPolicy("local")), slots=3)
    gauge, lock = {"now": 0, "max": 0}, threading.Lock()
    jobs = [Job(f"j{i}", _busy, kwargs={"gauge": gauge, "lock": lock}, out_dir=tmp_path / f"j{i}") for i in range(12)]
    threads = [threading.Thread(target=executor.run, args=(job,)) for job in jobs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gauge["max"] == 3
    assert all((tmp_path / f"j{i}" / "done.txt").read_text() == "ok" for i in range(12))


# -- directories as bytes --------------------------------------------------------------------------
def test_a_directory_travels_as_bytes_with_its_links_and_modes(tmp_path):
    src = tmp_path / "agent"
    (src / "agent").mkdir(parents=True)
    (src / "agent" / "__main__.py").write_text("print('hi')\n")
    (src / "run.sh").write_text("#!/bin/sh\n")
    (src / "run.sh").chmod(0o755)
    (src / "alias.py").symlink_to("agent/__main__.py")
    dest = unpack(pack(src), tmp_path / "elsewhere")
    assert (dest / "agent" / "__main__.py").read_text() == "print('hi')\n"
    assert (dest / "alias.py").is_symlink() and (dest / "alias.py").read_text() == "print('hi')\n"
    assert (dest / "run.sh").stat().st_mode & 0o111


@pytest.mark.parametrize("filters", [True, False], ids=["extraction filters", "python < 3.11.4"])
def test_unpacking_refuses_a_link_out_of_its_directory(tmp_path, monkeypatch, filters):
    if not filters:  # Debian 12's Python 3.11.2 (a worker's) has no tarfile filters: the own check applies
        monkeypatch.delattr(tarfile, "data_filter")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        link = tarfile.TarInfo("escape")
        link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(link)
    with pytest.raises(tarfile.TarError):
        unpack(buffer.getvalue(), tmp_path / "dest")


# -- the gateway from a worker --------------------------------------------------------------------
@pytest.fixture
def upstream(monkeypatch):
    monkeypatch.setenv(KEY_ENV, "sk-upstream-key-never-on-workers")
    with fu.FakeUpstream("gpt-4o", api_key="sk-upstream-key-never-on-workers") as up:
        yield up


def _gateway(upstream, tmp_path, **kwargs) -> Gateway:
    routes = build_upstreams({"self_modify": {"base_url": upstream.base_url, "api_key_env": KEY_ENV, "model": "gpt-4o",
                                         "retry": {"max_attempts": 1}}})
    return Gateway(routes, cache=ResponseCache(tmp_path / "cache", run="run1"), tcp=True, **kwargs)


def _context(attempt="3:1") -> CallContext:
    return CallContext("run", "g003s1", attempt, "self_modify")


def test_a_jobs_relay_reaches_the_drivers_gateway_with_its_token_only(upstream, tmp_path):
    with _gateway(upstream, tmp_path) as gateway, unix_relay((gateway.tcp_host, gateway.tcp_port)) as socket_path:
        token = gateway.issue_token(_context())
        client = uds_client(socket_path, token, max_retries=0)
        answer = client.chat.completions.create(model="self_modify", messages=[{"role": "user", "content": "hi"}],
                                                max_tokens=16)
        assert answer.choices[0].message.content
        with pytest.raises(Exception) as refused:  # a made-up token gets nowhere
            uds_client(socket_path, "dgm-forged", max_retries=0).chat.completions.create(
                model="self_modify", messages=[{"role": "user", "content": "hi"}], max_tokens=16)
        assert getattr(refused.value, "status_code", None) == 401
    assert len(upstream.chat_requests) == 1


def test_a_retried_job_gets_the_answers_it_already_paid_for_from_the_record(upstream, tmp_path):
    messages = [{"role": "user", "content": "same question"}]
    with _gateway(upstream, tmp_path) as gateway:
        token = gateway.issue_token(_context())
        client = gateway.client(token, max_retries=0)
        first = [client.chat.completions.create(model="self_modify", messages=messages, max_tokens=16) for _ in range(2)]
        assert len(upstream.chat_requests) == 2  # two samples of one request: both paid
        retry = gateway.client(gateway.retry_token(token), max_retries=0)  # the worker died; the job runs again
        again = [retry.chat.completions.create(model="self_modify", messages=messages, max_tokens=16) for _ in range(3)]
        assert [a.choices[0].message.content for a in again[:2]] == [f.choices[0].message.content for f in first]
        assert len(upstream.chat_requests) == 3  # only the third sample is new
        assert gateway.stats.cache_hits == 2


def test_a_call_in_flight_when_its_worker_died_is_paid_once(upstream, tmp_path):
    """The worker died while its call was upstream; the job's retry asks the same sample before the
    first answer is back: it waits for that answer instead of paying for a second one."""
    upstream.script(fu.slow(1.5, "the only answer"), fu.ok("a second, paid answer"))
    messages = [{"role": "user", "content": "same question"}]
    with _gateway(upstream, tmp_path) as gateway:
        token = gateway.issue_token(_context())
        with ThreadPoolExecutor(1) as dead_worker:
            orphan = dead_worker.submit(gateway.client(token, max_retries=0).chat.completions.create,
                                        model="self_modify", messages=messages, max_tokens=16)
            time.sleep(0.5)  # the first call is upstream now
            retry = gateway.client(gateway.retry_token(token), max_retries=0).chat.completions.create(
                model="self_modify", messages=messages, max_tokens=16)
            assert orphan.result().choices[0].message.content == "the only answer"
        assert retry.choices[0].message.content == "the only answer"
        assert gateway.stats.upstream_calls == 1 and gateway.stats.cache_hits == 1
    assert len(upstream.chat_requests) == 1


def test_a_call_the_lost_try_sends_after_the_retry_began_is_refused_and_steals_no_answer(upstream, tmp_path):
    """A request of the dead worker reaches the gateway late (it was on the wire, or in the relay's
    buffer): it must not be paid, nor take the sample index the retry's own request needs."""
    upstream.script(fu.ok("answer one"), fu.ok("answer two"), fu.ok("a third, paid twice"))
    ask = {"model": "self_modify", "max_tokens": 16}
    with _gateway(upstream, tmp_path) as gateway:
        token = gateway.issue_token(_context())
        lost = gateway.client(token, max_retries=0)
        lost.chat.completions.create(messages=[{"role": "user", "content": "one"}], **ask)
        lost.chat.completions.create(messages=[{"role": "user", "content": "two"}], **ask)
        retry = gateway.client(gateway.retry_token(token), max_retries=0)
        with pytest.raises(Exception) as refused:
            lost.chat.completions.create(messages=[{"role": "user", "content": "two"}], **ask)
        assert getattr(refused.value, "status_code", None) == 401
        answers = [retry.chat.completions.create(messages=[{"role": "user", "content": c}], **ask)
                   for c in ("one", "two")]
        assert [a.choices[0].message.content for a in answers] == ["answer one", "answer two"]
    assert len(upstream.chat_requests) == 2


def test_revoking_a_jobs_token_revokes_its_retries(upstream, tmp_path):
    """The loop revokes the token it issued when the attempt ends; a retry's token dies with it."""
    with _gateway(upstream, tmp_path) as gateway:
        token = gateway.issue_token(_context())
        second = gateway.retry_token(gateway.retry_token(token))
        gateway.revoke(token)
        with pytest.raises(Exception) as refused:
            gateway.client(second, max_retries=0).chat.completions.create(
                model="self_modify", messages=[{"role": "user", "content": "hi"}], max_tokens=16)
        assert getattr(refused.value, "status_code", None) == 401
        with pytest.raises(ValueError, match="revoked"):
            gateway.retry_token(second)
    assert upstream.chat_requests == []


def test_without_a_retry_token_a_repeated_request_is_a_new_sample(upstream, tmp_path):
    """The control for the tests above: the retry's token is what makes its repeated requests free."""
    messages = [{"role": "user", "content": "same question"}]
    with _gateway(upstream, tmp_path) as gateway:
        client = gateway.client(gateway.issue_token(_context()), max_retries=0)
        for _ in range(3):
            client.chat.completions.create(model="self_modify", messages=messages, max_tokens=16)
    assert len(upstream.chat_requests) == 3


# -- configuration ---------------------------------------------------------------------------------
def test_the_gateway_listens_on_tcp_only_for_the_ray_executor(tmp_path):
    quick = REPO / "experiments" / "quickstart.yaml"
    assert gateway_host(load_config(quick)) is None
    assert gateway_host(load_config(quick, ["run.executor=ray"])) == "127.0.0.1"
    assert gateway_host(load_config(quick, ["run.executor=ray", "ray.address=127.0.0.1:6379"])) == "127.0.0.1"
    assert gateway_host(load_config(quick, ["run.executor=ray", "ray.address=x:1", "ray.gateway_host=10.0.0.2"])) \
        == "10.0.0.2"
    with pytest.raises(ValueError, match=r"ray.address 'head-without-port'.*HOST:PORT"):
        gateway_host(load_config(quick, ["run.executor=ray", "ray.address=head-without-port"]))
    with pytest.raises(ConfigError, match=r"run.executor"):
        load_config(quick, ["run.executor=dask"])


@pytest.mark.slow
def test_bench_scale_runs_real_attempts_and_reports_efficiency():
    """The benchmark's machinery (not its timing): a real self-modification per attempt, a patch each."""
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "dgm", "bench", "scale", "--attempts", "1,2", "--latency", "0",
                           "--executors", "inprocess"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "efficiency" in proc.stdout and "2/2" in proc.stdout and "1/1" in proc.stdout


def test_a_killed_jobs_directory_is_removed_by_the_next_job_and_a_live_ones_is_not(tmp_path, monkeypatch):
    import multiprocessing

    from dgm.executor import ray_executor

    monkeypatch.setattr(ray_executor.tempfile, "tempdir", str(tmp_path))
    started, stop = multiprocessing.Event(), multiprocessing.Event()

    def a_job_that_gets_killed():
        with ray_executor._job_dir() as root:
            (root / "in0").mkdir()
            started.set()
            stop.wait(60)

    killed = multiprocessing.Process(target=a_job_that_gets_killed)
    killed.start()
    assert started.wait(30)
    (left,) = tmp_path.glob(ray_executor.JOB_DIR_PREFIX + "*")
    with ray_executor._job_dir():  # the other job is alive: its directory stays
        assert left.exists()
    killed.kill()
    killed.join()
    with ray_executor._job_dir() as mine:  # now it is gone, and this job's own is there
        assert not left.exists() and mine.exists()
