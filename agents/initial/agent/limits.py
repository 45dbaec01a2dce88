"""Budgets of one run, from the task's `limits`; the defaults apply only to a limit the task leaves out."""

from dataclasses import dataclass

DEFAULT_MAX_STEPS = 100  # LLM calls per task
DEFAULT_MAX_SECONDS = 3600.0
DEFAULT_MAX_COST_USD = 5.0
BASH_TIMEOUT_S = 120.0  # per command: the official DGM bash tool's timeout
MAX_OUTPUT_CHARS = 8000  # longer tool outputs keep head + tail: each stays in the context for 100+ steps
PRICE_PER_TOKEN = (3e-6, 15e-6)  # USD (input, output); used only when a response's usage has no cost


@dataclass(frozen=True)
class Limits:
    max_steps: int
    max_seconds: float
    max_cost_usd: float

    @classmethod
    def from_task(cls, raw: dict | None) -> "Limits":
        raw = raw or {}
        return cls(int(raw.get("max_steps") or DEFAULT_MAX_STEPS),
                   float(raw.get("max_seconds") or DEFAULT_MAX_SECONDS),
                   float(raw.get("max_cost_usd") or DEFAULT_MAX_COST_USD))  # fmt: skip


def cost_of(usage: dict) -> float:
    """Dollar cost of one response: the usage's own `cost` if the gateway sent one, else an estimate."""
    if isinstance(usage.get("cost"), (int, float)):
        return float(usage["cost"])
    tokens_in, tokens_out = usage.get("prompt_tokens") or 0, usage.get("completion_tokens") or 0
    return tokens_in * PRICE_PER_TOKEN[0] + tokens_out * PRICE_PER_TOKEN[1]
