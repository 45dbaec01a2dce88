"""An agent inside bubblewrap, with no network, reaches the gateway only through the bound socket.

Real bwrap, real gateway, the fake upstream (tests/fake_upstream.py) standing in for a paid API.
"""

from __future__ import annotations

import os
import subprocess
import sys

from dgm.sandbox.bwrap import find_bwrap, python_prefixes

import fake_upstream as fu
from sandbox_helpers import needs_bwrap
from dgm.llm.base import CallContext
from dgm.llm.gateway import Gateway
from dgm.llm.upstream import build_upstreams

KEY = "sk-canary-bwrap-5d1e0c9a"

# What an agent does with the variables it is given (the seed agent does the same).
AGENT = """
import os, httpx2, openai
client = openai.OpenAI(base_url=os.environ["OPENAI_BASE_URL"], api_key=os.environ["OPENAI_API_KEY"], max_retries=0,
                       http_client=httpx2.Client(transport=httpx2.HTTPTransport(uds=os.environ["DGM_LLM_SOCKET"])))
answer = client.chat.completions.create(model=os.environ["DGM_MODEL"], messages=[{"role": "user", "content": "hi"}])
print("ANSWER", answer.choices[0].message.content)
try:
    httpx2.get(os.environ["UPSTREAM"] + "/models", timeout=2)
    print("UPSTREAM REACHABLE")
except httpx2.HTTPError:
    print("UPSTREAM UNREACHABLE")
"""


@needs_bwrap
def test_sandboxed_agent_uses_the_gateway_socket(monkeypatch):
    monkeypatch.setenv("DGM_TEST_UPSTREAM_KEY", KEY)
    with fu.FakeUpstream("gpt-4o", api_key=KEY) as upstream:
        routes = build_upstreams({"task": {"base_url": upstream.base_url, "api_key_env": "DGM_TEST_UPSTREAM_KEY",
                                             "model": "gpt-4o"}})
        with Gateway(routes) as gw:
            env = gw.agent_env(gw.issue_token(CallContext("run1", "n1", "a1", "task")))
            env |= {"PATH": os.environ["PATH"], "UPSTREAM": upstream.base_url}
            setenv = [arg for k, v in env.items() for arg in ("--setenv", k, v)]
            command = [find_bwrap(), "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp",
                       "--tmpfs", "/run", "--bind", str(gw.socket_path), "/run/dgm/llm.sock",
                       *[arg for prefix in python_prefixes() for arg in ("--ro-bind", prefix, prefix)],
                       "--unshare-net", "--die-with-parent", "--clearenv", *setenv, sys.executable, "-c", AGENT]
            # Generous: a cold `import openai` inside the sandbox takes a minute on a loaded 2-core machine.
            result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "ANSWER hello" in result.stdout and "UPSTREAM UNREACHABLE" in result.stdout
    assert KEY not in " ".join(command)
    assert len(upstream.chat_requests) == 1
