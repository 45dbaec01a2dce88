"""The LLM client: the gateway's OpenAI-compatible endpoint, over a Unix socket when one is given."""

import os

import httpx2
import openai


class LLMError(RuntimeError):
    """A failed call. `kind` is context_overflow, tools_unsupported, budget or error."""

    def __init__(self, message: str, kind: str = "error"):
        super().__init__(message)
        self.kind = kind


def make_client() -> openai.OpenAI:
    key = os.environ.get("OPENAI_API_KEY") or "none"
    socket = os.environ.get("DGM_LLM_SOCKET")
    if socket:
        http = httpx2.Client(transport=httpx2.HTTPTransport(uds=socket), timeout=600)
        return openai.OpenAI(base_url="http://gateway/v1", api_key=key, max_retries=1, http_client=http)
    base_url = os.environ.get("OPENAI_BASE_URL")
    if not base_url:  # never fall back to a public default endpoint
        raise LLMError("set OPENAI_BASE_URL or DGM_LLM_SOCKET to reach the LLM gateway")
    return openai.OpenAI(base_url=base_url, api_key=key, max_retries=1, timeout=600)


def classify(exc: openai.APIError) -> str:
    code = str(getattr(exc, "code", None) or "")
    message = str(exc).lower()
    if code == "context_length_exceeded" or "context length" in message:
        return "context_overflow"
    if "tool" in message and "support" in message:
        return "tools_unsupported"
    if code in ("budget_exceeded", "insufficient_quota"):
        return "budget"
    return "error"


def chat(client, model: str, messages: list[dict], tools: list[dict] | None) -> dict:
    """One chat completion as a plain dict (choices, usage); failures become LLMError."""
    extra = {"tools": tools} if tools else {}
    try:
        response = client.chat.completions.create(model=model, messages=messages, **extra)
    except openai.APIError as exc:
        raise LLMError(f"{type(exc).__name__}: {exc}", classify(exc)) from exc
    return response if isinstance(response, dict) else response.model_dump()
