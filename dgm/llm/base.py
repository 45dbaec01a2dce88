"""Contracts of the LLM layer.

Requests and responses are OpenAI chat-completions JSON (plain dicts), so the gateway, the
cache, real upstreams and the scripted model all speak one format.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

# Model roles, as in the paper: the model that solves benchmark tasks, the one that rewrites an agent
# (self-modification) and the one that diagnoses. Each is its own `llm.<role>` config entry, gateway
# alias and metering key; a call's purpose is the role it is served by.
PURPOSES = ("task", "self_modify", "diagnosis")
# Printed by every command whose results came from the scripted test double.
SCRIPTED_BANNER = "scripted model (a deterministic test double, not an LLM): its scores measure nothing about real agents"


@dataclass(frozen=True)
class CallContext:
    """Who is calling: issued with a per-attempt token, never chosen by the caller."""

    run_id: str
    node_id: str | None
    attempt_id: str | None
    purpose: str  # one of PURPOSES (the model role)
    task_id: str | None = None


class UpstreamError(RuntimeError):
    def __init__(self, message: str, *, status: int = 502, code: str = "upstream_error"):
        super().__init__(message)
        self.status = status
        self.code = code


class ContextOverflow(UpstreamError):
    """The prompt does not fit the model's context window (drives `solve_contextlength`)."""

    def __init__(self, message: str = "maximum context length exceeded"):
        super().__init__(message, status=400, code="context_length_exceeded")


class Upstream(Protocol):
    name: str
    is_scripted: bool  # True only for the scripted test double

    def complete(self, request: dict, context: CallContext) -> dict:
        """Answer one chat.completions request (dict in, ChatCompletion dict out)."""


@dataclass
class UsageRecord:
    context: CallContext
    model: str
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    cost_usd: float
    cache_hit: bool
    duration_s: float
    error: str | None = None


class UsageSink(Protocol):
    """Where the gateway meters calls (the run store implements it)."""

    def record_llm_call(self, usage: UsageRecord) -> None: ...
