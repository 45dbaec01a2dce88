"""The LLM layer: gateway (OpenAI-compatible proxy), upstreams, pricing, budgets, cache.

Heavy pieces (gateway, upstream) are imported lazily so `import dgm.llm.base` stays cheap.
"""

from dgm.llm.base import PURPOSES, CallContext, ContextOverflow, Upstream, UpstreamError, UsageRecord, UsageSink
from dgm.llm.budget import BudgetExceeded, Budgets
from dgm.llm.cache import ResponseCache
from dgm.llm.pricing import Price, PriceTable, UnknownPrice

_LAZY = {
    "Gateway": "dgm.llm.gateway",
    "GatewayStats": "dgm.llm.gateway",
    "Route": "dgm.llm.upstream",
    "ModelSettings": "dgm.llm.upstream",
    "RetryPolicy": "dgm.llm.upstream",
    "OpenAIUpstream": "dgm.llm.upstream",
    "build_upstreams": "dgm.llm.upstream",
    "preflight": "dgm.llm.upstream",
    "PreflightError": "dgm.llm.upstream",
    "ConfigError": "dgm.llm.upstream",
    "uds_client": "dgm.llm.client",
    "client_from_env": "dgm.llm.client",
}

__all__ = ["PURPOSES", "CallContext", "ContextOverflow", "Upstream", "UpstreamError", "UsageRecord", "UsageSink",
           "BudgetExceeded", "Budgets", "ResponseCache", "Price", "PriceTable", "UnknownPrice", *_LAZY.keys()]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'dgm.llm' has no attribute {name!r}")
