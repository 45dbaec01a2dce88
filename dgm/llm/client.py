"""OpenAI clients that reach the gateway.

Inside a sandbox the only way out is the gateway's Unix socket, so the client needs a
Unix-socket transport; the base URL's host ("gateway") is then just a label.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping

import httpx2
import openai

INSIDE_BASE_URL = "http://gateway/v1"
# Longer than the gateway's own retry budget: the gateway, not the client, waits out upstream faults.
# And no client retries: a call the client gave up on still runs (and is paid) upstream, so asking
# again would pay for the same slow answer twice.
DEFAULT_TIMEOUT_S = 1800.0


def uds_client(
    socket_path: str | Path,
    api_key: str,
    *,
    base_url: str = INSIDE_BASE_URL,
    timeout: float = DEFAULT_TIMEOUT_S,
    max_retries: int = 0,
) -> openai.OpenAI:
    """An OpenAI client whose every request goes through the Unix socket at `socket_path`."""
    transport = httpx2.HTTPTransport(uds=str(socket_path))
    return openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        max_retries=max_retries,
        http_client=httpx2.Client(transport=transport, timeout=timeout),
    )


def client_from_env(env: Mapping[str, str] | None = None, **kwargs) -> tuple[openai.OpenAI, str]:
    """(client, model) as an agent builds them from the variables `Gateway.agent_env` gives it."""
    env = os.environ if env is None else env
    try:
        base_url, token, model = env["OPENAI_BASE_URL"], env["OPENAI_API_KEY"], env["DGM_MODEL"]
    except KeyError as exc:
        raise RuntimeError(f"environment variable {exc.args[0]} is not set (is this running under dgm?)") from None
    socket_path = env.get("DGM_LLM_SOCKET")
    if socket_path:
        return uds_client(socket_path, token, base_url=base_url, **kwargs), model
    return openai.OpenAI(base_url=base_url, api_key=token, **kwargs), model
