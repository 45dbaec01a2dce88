"""Token prices and the shipped model table (prices.yaml).

Cost of one call = (uncached prompt tokens x input + cached prompt tokens x cached_input
+ completion tokens x output) / 1M. Unknown models cost $0 with a one-time warning, so a
run against a local server (vLLM, Ollama) works without a price entry.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

log = logging.getLogger(__name__)

SHIPPED_TABLE = Path(__file__).with_name("prices.yaml")
PRICE_KEYS = ("input", "cached_input", "output")


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
    """Prices (and default model settings) by model name; thread-safe to read."""

    def __init__(self, prices: Mapping[str, Price], settings: Mapping[str, dict] | None = None):
        self._prices = dict(prices)
        self._settings = dict(settings or {})
        self._warned: set[str] = set()
        self._lock = threading.Lock()

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

    def _lookup(self, table: Mapping[str, Any], model: str) -> str | None:
        if model in table:
            return model
        # Dated snapshots ("gpt-4o-2024-08-06") use their family's entry; longest prefix wins.
        prefixes = [name for name in table if model.startswith(name + "-")]
        return max(prefixes, key=len) if prefixes else None

    def price(self, model: str) -> Price | None:
        name = self._lookup(self._prices, model)
        return self._prices[name] if name else None

    def default_settings(self, model: str) -> dict:
        name = self._lookup(self._settings, model)
        return dict(self._settings[name]) if name else {}

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> float:
        price = self.price(model)
        if price is None:
            with self._lock:
                first = model not in self._warned
                self._warned.add(model)
            if first:
                log.warning("no price for model %r: its calls are metered at $0 (add it to llm.prices)", model)
            return 0.0
        return price.cost(prompt_tokens, completion_tokens, cached_tokens)
