"""The framework's handle on the LLM gateway: per-attempt tokens for agents, chat for diagnoses.

Each call is served by the model of its purpose's role (`llm.task`, `llm.self_modify`,
`llm.diagnosis`). When the gateway refused a call for budget, the step that made it raises
`BudgetExceeded` once it ends: a budget hit stops the work, it never becomes the step's result.
"""

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

    def raise_if_refused(self, context: CallContext) -> None:
        """Raise the gateway's BudgetExceeded if it refused any call of `context` for budget."""
        refusal = self.gateway.budget_refusal(context)
        if refusal is not None:
            raise refusal

    @contextmanager
    def agent_env(self, context: CallContext) -> Iterator[dict[str, str]]:
        """Environment for one sandboxed agent run; its token dies with the run.

        Raises BudgetExceeded on exit if the gateway refused the agent a call for budget.
        """
        token = self.gateway.issue_token(context)
        try:
            yield self.gateway.agent_env(token)
        finally:
            self.gateway.revoke(token)
        self.raise_if_refused(context)

    def prompt_chars(self, alias: str, answers: int = 1) -> int | None:
        """Characters a prompt to `alias` may take, leaving room for `answers` answers (None: no limit
        known, or no such route)."""
        route = self.gateway.routes.get(alias)
        if route is None:
            return None
        reserved = answers * route.settings.max_output_tokens + PROMPT_OVERHEAD_TOKENS
        return prompt_chars(route.context_window, reserved)

    def chat(self, context: CallContext) -> ChatFn:
        def ask(messages: list[dict]) -> str:
            token = self.gateway.issue_token(context)
            try:
                with self.gateway.client(token) as client:
                    response = client.chat.completions.create(model=context.purpose, messages=messages)
                return response.choices[0].message.content or ""
            except Exception:
                self.raise_if_refused(context)  # a budget refusal stops the diagnosis, it is not a failure
                raise
            finally:
                self.gateway.revoke(token)

        return ask
