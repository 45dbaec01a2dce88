"""Fixtures for the hostile-behaviour suite: secrets planted on the host, and sandboxes to attack them from."""

from __future__ import annotations

import os
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from dgm.sandbox import doctor, open_sandbox
from dgm.sandbox.base import Limits, SandboxSpec

# Small limits keep every attack cheap for the 2 shared cores.
HOSTILE_LIMITS = Limits(memory_mb=512, cpu_seconds=20, file_size_mb=8, open_files=256, processes=64,
                        output_bytes=64 * 1024)


def _backends() -> list:
    """bwrap, and docker (skipped without a daemon and the agent image unless DGM_REQUIRE_DOCKER=1)."""
    status = {s.name: s for s in doctor()}
    return [pytest.param("bwrap", marks=[] if status["bwrap"].available else
                         pytest.mark.skip(reason=f"bwrap unavailable: {status['bwrap'].reason}")),
            pytest.param("docker", marks=pytest.mark.docker)]


@dataclass
class HostSecrets:
    token: str  # unique per session; appears in every planted secret and marker
    home_canary: Path
    upstream_key: str
    hidden_tests: Path
    gold_patch: Path
    run_store: Path
    tcp_port: int
    abstract_name: str


@pytest.fixture(scope="session")
def secrets(tmp_path_factory):
    token = uuid.uuid4().hex[:12]
    home_canary = Path.home() / f".dgm-hostile-canary-{token}"
    home_canary.write_text(f"CANARY-{token}")
    key = f"sk-hostile-{token}"
    old_key = os.environ.get("DGM_TEST_UPSTREAM_KEY")
    os.environ["DGM_TEST_UPSTREAM_KEY"] = key
    base = tmp_path_factory.mktemp("hostile-host")
    hidden = base / "benchmark" / "hidden_tests"
    hidden.mkdir(parents=True)
    (hidden / "test_hidden.py").write_text(f"# HIDDEN-{token}\n")
    gold = base / "benchmark" / "gold.patch"
    gold.write_text(f"GOLD-{token}\n")
    store = base / "archive" / "run1"
    store.mkdir(parents=True)
    (store / "run.db").write_text(f"STORE-{token}")
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    abstract = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    abstract_name = f"dgm-hostile-{token}"
    abstract.bind("\0" + abstract_name)
    abstract.listen(8)
    yield HostSecrets(token, home_canary, key, hidden, gold, store, listener.getsockname()[1], abstract_name)
    listener.close()
    abstract.close()
    home_canary.unlink(missing_ok=True)
    if old_key is None:
        os.environ.pop("DGM_TEST_UPSTREAM_KEY", None)
    else:
        os.environ["DGM_TEST_UPSTREAM_KEY"] = old_key


@pytest.fixture(params=_backends())
def sandbox(request, secrets, tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "README").write_text("task repo\n")
    with open_sandbox(request.param, SandboxSpec(source=source, limits=HOSTILE_LIMITS,
                                                 labels={"dgm.run": "hostile"})) as sb:
        yield sb
