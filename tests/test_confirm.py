"""Before a run against a paid endpoint: the cost estimate, the question, and --yes.

No test here sends anything to the paid endpoint: every run either stops at the question or is refused.
"""

import os
import pty
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from dgm.config import Config
from dgm.estimate import estimate_cost, is_loopback, paid_roles
from dgm.run import NotConfirmed, confirm_cost

ROOT = Path(__file__).resolve().parents[1]
PAID = {"provider": "openai", "base_url": "https://api.openai.com/v1", "api_key_env": "OPENAI_API_KEY", "model": "gpt-4o"}


def config(**llm) -> Config:
    return Config.model_validate({
        "loop": {"generations": 10, "children_per_generation": 2},
        "agent": {"task_limits": {"max_cost_usd": 1.0}, "self_modify_limits": {"max_cost_usd": 5.0}},
        "evaluation": {"stages": [{"tasks": "small"}, {"tasks": "medium", "threshold": 0.4}]},
        "llm": {"task": PAID, "self_modify": PAID, "diagnosis": {"provider": "scripted"}, **llm},
    })


def test_only_non_loopback_openai_endpoints_are_paid():
    assert is_loopback("http://localhost:11434/v1") and is_loopback("http://127.0.0.1:8000/v1")
    assert is_loopback("http://[::1]:8000/v1") and not is_loopback("https://api.openai.com/v1")
    assert not is_loopback("http://10.0.0.5:8000/v1")  # a server on the LAN may well be a paid proxy
    local = dict(PAID, base_url="http://127.0.0.1:8000/v1")
    assert paid_roles(config(task=local, self_modify=local)) == {}
    assert paid_roles(Config()) == {}  # the scripted model
    assert paid_roles(config(cache="replay")) == {}  # answers come from the cache
    assert set(paid_roles(config())) == {"task", "self_modify"}


def test_estimate_from_stage_sizes_children_and_limits():
    est = estimate_cost(config(), [10, 50])
    assert est.children == 20 and est.initial_tasks == 60 and est.initial_usd == 60.0
    assert est.diagnosis_usd == 0.0  # the diagnosis model is the (free) scripted one
    assert est.low_usd == pytest.approx(60 + 20 * (5 + 10))  # every child stops after stage 1
    assert est.high_usd == pytest.approx(60 + 20 * (5 + 60))  # every child runs every stage
    assert est.ceiling_usd is None and any("llm.budgets.run_usd" in line for line in est.lines())
    capped = estimate_cost(config(budgets={"run_usd": 500, "node_usd": 10}), [10, 50])
    assert capped.ceiling_usd == 210 and "node_usd x 21 nodes" in capped.ceiling_basis
    resumed = estimate_cost(config(), [10, 50], children_done=15, initial_done=True)
    assert resumed.children == 5 and resumed.initial_usd == 0.0
    o1 = estimate_cost(config(diagnosis=dict(PAID, model="o1")), [10, 50])
    assert o1.diagnosis_usd > 0  # priced from the shipped table
    priced = estimate_cost(config(diagnosis=dict(PAID, model="my-model"), prices={"my-model": {"input": 1, "output": 2}}),
                           [10, 50])
    assert priced.diagnosis_usd > 0  # priced from llm.prices


def test_confirm_asks_and_only_yes_proceeds(capsys):
    cfg = config()
    confirm_cost(cfg, False, ask=lambda: "y")
    assert "api.openai.com" in capsys.readouterr().out
    with pytest.raises(NotConfirmed):
        confirm_cost(cfg, False, ask=lambda: "")  # the default answer is no
    confirm_cost(cfg, True, ask=lambda: pytest.fail("--yes must not ask"))
    confirm_cost(Config(), False, ask=lambda: pytest.fail("a free run must not ask"))


def write_paid_config(tmp_path) -> Path:
    path = tmp_path / "paid.yaml"
    path.write_text(yaml.safe_dump({
        "run": {"name": "paid", "archive_dir": str(tmp_path / "archive")},
        "agent": {"initial": str(ROOT / "agents" / "initial")},
        "llm": {"task": PAID, "self_modify": PAID, "diagnosis": PAID, "budgets": {"run_usd": 25}},
    }))
    return path


def test_without_a_terminal_and_without_yes_the_run_is_refused(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-m", "dgm.run", str(write_paid_config(tmp_path))], cwd=ROOT, env=env,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert "Hard ceiling: $25.00 (llm.budgets.run_usd)" in done.stdout
    error = [line for line in done.stdout.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "--yes" in error[0]
    assert not (tmp_path / "archive").exists()  # nothing was started


def test_on_a_terminal_the_user_is_asked_and_no_stops_before_any_work(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    controller, terminal = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dgm.run", str(write_paid_config(tmp_path))], cwd=ROOT, env=env,
                            stdin=terminal, stdout=terminal, stderr=terminal, close_fds=True)
    os.close(terminal)
    out = b""
    deadline = time.time() + 120
    try:
        while b"Proceed? [y/N]" not in out and time.time() < deadline:
            if select.select([controller], [], [], 1)[0]:
                out += os.read(controller, 4096)
        assert b"Proceed? [y/N]" in out, out.decode(errors="replace")
        assert b"Estimated cost" in out
        os.write(controller, b"n\n")
        assert proc.wait(timeout=60) == 1
        while select.select([controller], [], [], 0.5)[0]:
            try:
                out += os.read(controller, 4096)
            except OSError:  # the other side closed
                break
    finally:
        proc.kill()
        proc.wait()
        os.close(controller)
    assert b"not started" in out
    assert not (tmp_path / "archive").exists()
