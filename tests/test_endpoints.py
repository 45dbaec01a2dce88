"""The example endpoint configs: one per provider, model names from dgm/llm/defaults.py, every model priced."""

from pathlib import Path

import pytest

from dgm.config import read_tree
from dgm.llm.defaults import ROLES, SUGGESTED_MODELS
from dgm.llm.pricing import PriceTable
from dgm.llm.upstream import build_upstreams

ENDPOINTS = Path(__file__).resolve().parents[1] / "experiments" / "endpoints"


def test_there_is_one_example_per_provider():
    assert {p.stem for p in ENDPOINTS.glob("*.yaml")} == set(SUGGESTED_MODELS)


@pytest.mark.parametrize("provider", sorted(SUGGESTED_MODELS))
def test_an_example_uses_the_suggested_models_and_prices_them(provider):
    llm = read_tree(ENDPOINTS / f"{provider}.yaml")["llm"]
    assert {role: llm[role]["model"] for role in ROLES} == SUGGESTED_MODELS[provider]
    prices = PriceTable.load(overrides=llm.get("prices"))
    routes = build_upstreams({role: llm[role] for role in ROLES}, prices=prices, require_keys=False)
    for role, route in routes.items():
        assert prices.price(route.model) is not None, f"{provider}: {role} model {route.model} has no price"
        assert route.settings.max_output_tokens > 0
        local = route.upstream.base_url.startswith("http://127.0.0.1")
        assert local == (llm[role].get("api_key_env") is None), f"{provider}: hosted APIs need a key, local ones none"
