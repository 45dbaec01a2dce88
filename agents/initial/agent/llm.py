"""The LLM client: the gateway's OpenAI-compatible endpoint, over a Unix socket when one is given."""

import os

import httpx2
import openai

MAX_OUTPUT_TOKENS = 4096  # asked on every request (a weak model may never stop); the gateway may lower it


class LLMError(RuntimeError):
    """A failed call. `kind` is context_overflow, tools_unsupported, budget, timeout or error."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def make_client() -> openai.OpenAI:
    # No client retries: the gateway has retried what was worth it; a retry after a timeout pays twice.
    key, socket = os.environ.get("OPENAI_API_KEY") or "none", os.environ.get("DGM_LLM_SOCKET")
    if socket:
        http = httpx2.Client(transport=httpx2.HTTPTransport(uds=socket))
        return openai.OpenAI(base_url="http://gateway/v1", api_key=key, max_retries=0, http_client=http)
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:  # never fall back to a public default endpoint
        raise LLMError("set OPENAI_BASE_URL or DGM_LLM_SOCKET to reach the LLM gateway")
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)


def classify(exc: openai.APIError) -> str:
    code, message = str(getattr(exc, "code", None) or ""), str(exc).lower()
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if code == "context_length_exceeded" or "context length" in message:
        return "context_overflow"
    if code == "tools_unsupported" or ("tool" in message and "support" in message):
        return "tools_unsupported"
    if code in ("budget_exceeded", "insufficient_quota"):
        return "budget"
    return "error"


def chat(client, model: str, messages: list[dict], tools: list[dict] | None, timeout: float) -> dict:
    """One chat completion as a plain dict (choices, usage), given up after `timeout` s; failures are LLMError."""
    extra = {"tools": tools} if tools else {}
    try:
        response = client.chat.completions.create(model=model, messages=messages, max_tokens=MAX_OUTPUT_TOKENS,
                                                  timeout=max(timeout, 1.0), **extra)
    except openai.APIError as exc:
        raise LLMError(f"{type(exc).__name__}: {exc}", classify(exc)) from exc
    return response if isinstance(response, dict) else response.model_dump()
