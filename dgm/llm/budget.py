"""Spending limits in USD per attempt, per node and per run (None = unlimited).

The gateway checks before forwarding a request and charges after the answer. A request is
refused once the relevant spend has *reached* its limit, so concurrent calls in flight can
overshoot a limit by at most their own cost (we never cut an answer that was already paid for).
On resume, pass what the run store says was already spent.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from typing import Mapping

from dgm.llm.base import CallContext, UpstreamError


class BudgetExceeded(UpstreamError):
    """Returned to the caller as HTTP 402 with code "budget_exceeded"."""

    def __init__(self, message: str, *, scope: str):
        super().__init__(message, status=402, code="budget_exceeded")
        self.scope = scope  # "run", "node" or "attempt"


class Budgets:
    def __init__(
        self,
        run_usd: float | None = None,
        node_usd: float | None = None,
        attempt_usd: float | None = None,
        spent_by_node: Mapping[str, float] | None = None,
        spent_run: float = 0.0,
        spent_by_attempt: Mapping[str, float] | None = None,
    ):
        for name, limit in (("run_usd", run_usd), ("node_usd", node_usd), ("attempt_usd", attempt_usd)):
            if limit is not None and (not isinstance(limit, (int, float)) or limit < 0):
                raise ValueError(f"budget {name} must be a number >= 0 or None, got {limit!r}")
        self.run_usd = run_usd
        self.node_usd = node_usd
        self.attempt_usd = attempt_usd
        self._lock = threading.Lock()
        self._run = float(spent_run)
        self._node: dict[str, float] = defaultdict(float, spent_by_node or {})
        self._attempt: dict[str, float] = defaultdict(float, spent_by_attempt or {})

    # -- queries -----------------------------------------------------------------------------
    @property
    def spent_run(self) -> float:
        with self._lock:
            return self._run

    def spent_node(self, node_id: str) -> float:
        with self._lock:
            return self._node.get(node_id, 0.0)

    def spent_attempt(self, attempt_id: str) -> float:
        with self._lock:
            return self._attempt.get(attempt_id, 0.0)

    @property
    def run_exhausted(self) -> bool:
        with self._lock:
            return self.run_usd is not None and self._run >= self.run_usd

    # -- gateway hooks -----------------------------------------------------------------------
    def check(self, context: CallContext) -> None:
        """Raise BudgetExceeded if any limit that applies to this caller is already reached."""
        with self._lock:
            if self.run_usd is not None and self._run >= self.run_usd:
                raise BudgetExceeded(
                    f"run budget of ${self.run_usd:.4f} exhausted (spent ${self._run:.4f})", scope="run"
                )
            node = context.node_id
            if self.node_usd is not None and node is not None and self._node[node] >= self.node_usd:
                raise BudgetExceeded(
                    f"node {node} budget of ${self.node_usd:.4f} exhausted (spent ${self._node[node]:.4f})",
                    scope="node",
                )
            attempt = context.attempt_id
            if self.attempt_usd is not None and attempt is not None and self._attempt[attempt] >= self.attempt_usd:
                raise BudgetExceeded(
                    f"attempt {attempt} budget of ${self.attempt_usd:.4f} exhausted "
                    f"(spent ${self._attempt[attempt]:.4f})",
                    scope="attempt",
                )

    def charge(self, context: CallContext, usd: float) -> None:
        if usd <= 0:
            return
        with self._lock:
            self._run += usd
            if context.node_id is not None:
                self._node[context.node_id] += usd
            if context.attempt_id is not None:
                self._attempt[context.attempt_id] += usd
