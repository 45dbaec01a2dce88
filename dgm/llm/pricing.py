"""Token prices and the shipped model table (prices.yaml).

Cost of one call = (uncached prompt tokens x input + cached prompt tokens x cached_input
+ completion tokens x output) / 1M.

A model is priced by its exact name, or as a dated version of a listed name
("gpt-4o-2024-08-06" and "o1-2024-12-17" use "gpt-4o" and "o1"); never by a shorter prefix,
because "o3-pro" is not "o3" and "o1-mini" is not "o1". A model with no price is an error
(`UnknownPrice`), never a silent $0: budgets are only as good as the prices behind them. A
local server (vLLM, llama.cpp) is priced explicitly in the config, at 0 if it really is free.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

SHIPPED_TABLE = Path(__file__).with_name("prices.yaml")
PRICE_KEYS = ("input", "cached_input", "output")
# A dated version: NAME-2024-08-06 (OpenAI) or NAME-20241022 (Anthropic).
_DATED = re.compile(r"^(?P<name>.+)-(?:\d{4}-\d{2}-\d{2}|\d{8})$")


class UnknownPrice(KeyError):
    """No price for a model; the message says how to give one."""

    def __init__(self, model: str):
        super().__init__(model)
        self.model = model

    def __str__(self) -> str:
        return (f"no price for model {self.model!r}: add llm.prices.{self.model}: {{input: ..., output: ...}} "
                "(USD per 1M tokens; 0 for a free local server)")


@dataclass(frozen=True)
class Price:
    """USD per 1M tokens."""

    input: float
    cached_input: float
    output: float

    def cost(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        cached = min(max(cached_tokens, 0), prompt_tokens)
        return (
            (prompt_tokens - cached) * self.input + cached * self.cached_input + completion_tokens * self.output
        ) / 1_000_000


def _parse_price(model: str, raw: Any, source: str) -> Price:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{source}: price of model {model!r} must be a mapping, got {raw!r}")
    unknown = set(raw) - set(PRICE_KEYS) - {"settings"}
    if unknown:
        raise ValueError(f"{source}: model {model!r} has unknown price keys {sorted(unknown)}")
    try:
        inp = float(raw["input"])
        out = float(raw["output"])
        cached = float(raw.get("cached_input", inp))
    except KeyError as exc:
        raise ValueError(f"{source}: model {model!r} needs an {exc.args[0]!r} price") from None
    except (TypeError, ValueError):
        raise ValueError(f"{source}: model {model!r} has a non-numeric price: {dict(raw)!r}") from None
    if min(inp, out, cached) < 0:
        raise ValueError(f"{source}: model {model!r} has a negative price: {dict(raw)!r}")
    return Price(inp, cached, out)


class PriceTable:
    """Prices (and default model settings) by model name; read-only once built."""

    def __init__(self, prices: Mapping[str, Price], settings: Mapping[str, dict] | None = None):
        self._prices = dict(prices)
        self._settings = dict(settings or {})

    @classmethod
    def load(cls, path: Path | None = None, overrides: Mapping[str, Any] | None = None) -> "PriceTable":
        """The shipped table (or `path`), with `overrides` ({model: {input, cached_input, output}}) on top."""
        path = Path(path) if path else SHIPPED_TABLE
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ValueError(f"cannot read price table {path}: {exc}") from exc
        models = data.get("models") or {}
        if not isinstance(models, Mapping):
            raise ValueError(f"{path}: 'models' must be a mapping")
        prices = {name: _parse_price(name, raw, str(path)) for name, raw in models.items()}
        settings = {name: dict(raw.get("settings") or {}) for name, raw in models.items()}
        for name, raw in (overrides or {}).items():
            prices[name] = _parse_price(name, raw, "config llm.prices")
        return cls(prices, settings)

    @staticmethod
    def _lookup(table: Mapping[str, Any], model: str) -> str | None:
        """The entry for `model`: its exact name, else the undated name of a dated version."""
        if model in table:
            return model
        dated = _DATED.match(model)
        return dated["name"] if dated and dated["name"] in table else None

    def price(self, model: str) -> Price | None:
        name = self._lookup(self._prices, model)
        return self._prices[name] if name else None

    def default_settings(self, model: str) -> dict:
        name = self._lookup(self._settings, model)
        return dict(self._settings[name]) if name else {}

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        price = self.price(model)
        if price is None:
            raise UnknownPrice(model)
        return price.cost(prompt_tokens, completion_tokens, cached_tokens)
