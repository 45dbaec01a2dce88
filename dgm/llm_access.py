"""The framework's handle on the LLM gateway: per-attempt tokens for agents, chat for diagnoses."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from dgm.diagnose import ChatFn
from dgm.llm.base import CallContext
from dgm.prompt_budget import prompt_chars

# Chat-template tokens around each message, and the tools' schemas, that the text itself does not show.
PROMPT_OVERHEAD_TOKENS = 300


class LLMAccess:
    def __init__(self, gateway, run_id: str):
        self.gateway = gateway
        self.run_id = run_id

    def context(self, node_id: str | None, attempt_id: str | None, purpose: str, task_id: str | None = None) -> CallContext:
        return CallContext(self.run_id, node_id, attempt_id, purpose, task_id)

    @contextmanager
    def agent_env(self, context: CallContext, alias: str = "coding") -> Iterator[dict[str, str]]:
        """Environment for one sandboxed agent run; its token dies with the run."""
        token = self.gateway.issue_token(context, alias)
        try:
            yield self.gateway.agent_env(token, alias)
        finally:
            self.gateway.revoke(token)

    def prompt_chars(self, alias: str, answers: int = 1) -> int | None:
        """Characters a prompt to `alias` may take, leaving room for `answers` answers (None: no limit
        known, or no such route)."""
        route = self.gateway.routes.get(alias)
        if route is None:
            return None
        reserved = answers * route.settings.max_output_tokens + PROMPT_OVERHEAD_TOKENS
        return prompt_chars(route.context_window, reserved)

    def chat(self, context: CallContext, alias: str = "diagnosis") -> ChatFn:
        def ask(messages: list[dict]) -> str:
            token = self.gateway.issue_token(context, alias)
            try:
                with self.gateway.client(token) as client:
                    response = client.chat.completions.create(model=alias, messages=messages)
                return response.choices[0].message.content or ""
            finally:
                self.gateway.revoke(token)

        return ask
