"""Pieces of the LLM layer on their own: prices, budgets, cache keys, model settings, config
errors and preflight (against the fake upstream over loopback TCP, standing in for a paid API)."""

from __future__ import annotations

import threading

import pytest

import fake_upstream as fu
from dgm.llm.base import CallContext
from dgm.llm.budget import BudgetExceeded, Budgets
from dgm.llm.cache import ResponseCache, SampleCounter, cache_key, request_fingerprint
from dgm.llm.pricing import Price, PriceTable, UnknownPrice
from dgm.llm.upstream import (
    ConfigError,
    ModelSettings,
    PreflightError,
    apply_settings,
    build_upstreams,
    is_context_overflow,
    preflight,
)

CTX = CallContext("run1", "n1", "a1", "task")


# -- prices ------------------------------------------------------------------------------------
def test_shipped_table_prices_exact_names_and_dated_versions():
    table = PriceTable.load()
    assert table.price("gpt-4o") == Price(2.50, 1.25, 10.00)
    # A dated version uses its undated name's price (OpenAI and Anthropic date styles) ...
    assert table.price("gpt-4o-2024-08-06") == table.price("gpt-4o")
    assert table.price("o1-2024-12-17") == table.price("o1")
    assert table.price("gpt-4o-mini-2024-07-18") == table.price("gpt-4o-mini") != table.price("gpt-4o")
    assert table.price("o3-mini-2025-01-31") == table.price("o3-mini")
    # ... unless that version is listed with its own price.
    assert table.price("gpt-4o-2024-05-13") == Price(5.0, 5.0, 15.0)
    assert table.cost("o1", 1_000_000, 1_000_000) == pytest.approx(75.0)
    assert table.default_settings("o3-mini")["supports_temperature"] is False
    assert table.default_settings("o1-2024-12-17")["max_tokens_param"] == "max_completion_tokens"


@pytest.mark.parametrize("model", ["o3-pro", "o1-mini", "o1-preview", "gpt-4o-audio-preview", "o3-2025",
                                   "claude-3-5-sonnet-latest", "my-local-llama"])
def test_a_model_is_never_priced_as_another_one(model):
    """Not by prefix: o3-pro is not o3 (10x its price), o1-mini is not o1; no silent $0 either."""
    table = PriceTable.load()
    assert table.price(model) is None
    with pytest.raises(UnknownPrice, match=rf"no price for model '{model}': add llm.prices.{model}"):
        table.cost(model, 1000, 1000)
    assert PriceTable.load(overrides={model: {"input": 0, "output": 0}}).cost(model, 1000, 1000) == 0.0


def test_an_unpriced_model_is_refused_before_anything_runs(tmp_path, monkeypatch):
    """Config load, the gateway's route builder and the gateway itself all refuse a model without a price."""
    from dgm.config import ConfigError as RunConfigError, load_config
    from dgm.llm.gateway import Gateway
    from dgm.llm.upstream import Route

    entry = "{provider: openai, base_url: 'http://127.0.0.1:9/v1', api_key_env: DGM_K, model: MODEL}"
    config = tmp_path / "c.yaml"
    for role in ("task", "self_modify", "diagnosis"):
        config.write_text(f"llm:\n  {role}: {entry.replace('MODEL', 'o3-pro')}\n")
        with pytest.raises(RunConfigError, match=rf"llm.{role}.model: no price for model 'o3-pro': add llm.prices.o3-pro"):
            load_config(config)
    # Priced in the config (a free local server at 0, explicitly): accepted.
    config.write_text(f"llm:\n  task: {entry.replace('MODEL', 'llama-3-8b')}\n"
                      "  prices: {llama-3-8b: {input: 0, output: 0}}\n")
    assert load_config(config).llm.price_table().price("llama-3-8b") == Price(0, 0, 0)
    config.write_text("llm:\n  prices: {llama-3-8b: {input: free, output: 0}}\n")
    with pytest.raises(RunConfigError, match="llm"):
        load_config(config)

    monkeypatch.setenv("DGM_K", "k")
    with pytest.raises(ConfigError, match=r"llm.task.model: no price for model 'o1-mini'"):
        build_upstreams({"task": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "DGM_K", "model": "o1-mini"}})
    route = build_upstreams({"task": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "DGM_K",
                                      "model": "gpt-4o"}})["task"]
    with pytest.raises(ValueError, match=r"model alias 'task': no price for model 'o3-pro'"):
        Gateway({"task": Route("task", route.upstream, "o3-pro")})


def test_price_overrides_and_bad_entries_name_the_model(tmp_path):
    table = PriceTable.load(overrides={"gpt-4o": {"input": 1, "output": 2}, "house-model": {"input": 3, "output": 4}})
    assert table.price("gpt-4o") == Price(1.0, 1.0, 2.0)  # cached_input defaults to input
    assert table.cost("house-model", 1_000_000, 0) == pytest.approx(3.0)
    with pytest.raises(ValueError, match="'house-model' needs an 'output' price"):
        PriceTable.load(overrides={"house-model": {"input": 3}})
    bad = tmp_path / "prices.yaml"
    bad.write_text("models:\n  m1: {input: cheap, output: 1}\n")
    with pytest.raises(ValueError, match=r"prices.yaml: model 'm1' has a non-numeric price"):
        PriceTable.load(bad)


# -- budgets -----------------------------------------------------------------------------------
def test_budgets_are_thread_safe_and_scoped():
    budgets = Budgets(run_usd=None, node_usd=10.0)

    def spend():
        for _ in range(1000):
            budgets.charge(CTX, 0.001)

    threads = [threading.Thread(target=spend) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert budgets.spent_run == pytest.approx(4.0) and budgets.spent_node("n1") == pytest.approx(4.0)
    assert budgets.spent_attempt("a1") == pytest.approx(4.0) and not budgets.run_exhausted
    budgets.check(CallContext("run1", None, None, "diagnosis"))  # no node: node budget does not apply


def test_budget_refusal_message_and_bad_limits():
    budgets = Budgets(run_usd=2.0, spent_run=2.5)
    with pytest.raises(BudgetExceeded, match=r"run budget of \$2.0000 exhausted \(spent \$2.5000\)") as err:
        budgets.check(CTX)
    assert err.value.status == 402 and err.value.code == "budget_exceeded" and err.value.scope == "run"
    with pytest.raises(ValueError, match="attempt_usd"):
        Budgets(attempt_usd=-1)


# -- cache ---------------------------------------------------------------------------------------
def test_cache_key_covers_what_changes_the_answer():
    request = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "temperature": 0.5}
    same = {"temperature": 0.5, "messages": [{"content": "hi", "role": "user"}], "model": "gpt-4o", "user": "x"}
    assert cache_key(request, 0) == cache_key(same, 0)  # key order and `user` do not matter
    assert cache_key(request, 0) != cache_key(request, 1)
    assert cache_key(request, 0) != cache_key(dict(request, temperature=0.7), 0)
    assert cache_key(request, 0) != cache_key(dict(request, model="gpt-4.1"), 0)
    assert cache_key(request, 0) != cache_key(dict(request, tools=[{"type": "function"}]), 0)
    assert cache_key(request, 0, "a1/task/t1") != cache_key(request, 0, "a2/task/t1")
    assert cache_key(request, 0, "a1/task/t1", "run-a") != cache_key(request, 0, "a1/task/t1", "run-b")
    shared = ResponseCache("c", run="run-a", share_across_attempts=True)
    assert shared.key(request, 0, "a1/task/t1") == shared.key(request, 0, "a2/task/t9") == cache_key(request, 0, None, "run-a")


def test_cache_files_are_atomic_and_corrupt_entries_are_misses(tmp_path):
    cache = ResponseCache(tmp_path, "read_write", run="r")
    key = cache_key({"model": "m"}, 0)
    cache.put(key, {"model": "m"}, 0, {"choices": []})
    assert cache.get(key) == {"choices": []}
    assert [p.name for p in (tmp_path / key[:2]).iterdir()] == [f"{key}.json"]  # no temp files left
    cache.path(key).write_text("{truncated")
    assert cache.get(key) is None
    with pytest.raises(ValueError, match="cache mode must be one of"):
        ResponseCache(tmp_path, "sometimes", run="r")


def test_sample_counter_reuses_released_indices():
    counter = SampleCounter()
    fp = request_fingerprint({"model": "m"})
    assert [counter.reserve("a1", fp) for _ in range(3)] == [0, 1, 2]
    counter.release("a1", fp, 1)
    assert counter.reserve("a1", fp) == 1 and counter.reserve("a2", fp) == 0


# -- model settings and config ---------------------------------------------------------------------
def test_apply_settings_is_idempotent():
    settings = ModelSettings(supports_system_role=False, supports_temperature=False,
                             max_tokens_param="max_completion_tokens", reasoning_effort="low")
    request = {"model": "task", "temperature": 0, "top_p": 1, "max_tokens": 10,
               "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]}
    once = apply_settings(request, "o3-mini", settings, {"seed": 1})
    assert once == {"model": "o3-mini", "max_completion_tokens": 10, "reasoning_effort": "low", "seed": 1,
                    "messages": [{"role": "user", "content": "s"}, {"role": "user", "content": "u"}]}
    assert apply_settings(once, "o3-mini", settings, {"seed": 1}) == once
    assert request["messages"][0]["role"] == "system"  # the caller's request is not mutated


def test_context_overflow_detection():
    assert is_context_overflow("context_length_exceeded", "")
    assert is_context_overflow(None, "This model's maximum context length is 8192 tokens")
    assert is_context_overflow(None, "prompt is too long: 210000 tokens > 200000 maximum")
    assert not is_context_overflow("invalid_value", "temperature must be <= 2")


def test_config_errors_name_the_alias_and_key(monkeypatch):
    monkeypatch.delenv("DGM_NO_SUCH_KEY", raising=False)
    with pytest.raises(ConfigError, match=r"model 'task': environment variable DGM_NO_SUCH_KEY is not set"):
        build_upstreams({"task": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "DGM_NO_SUCH_KEY",
                                    "model": "gpt-4o"}})
    with pytest.raises(ConfigError, match=r"llm.task: unknown keys \['temprature'\]"):
        build_upstreams({"task": {"model": "m", "api_key_env": None, "temprature": 0}})
    with pytest.raises(ConfigError, match=r"llm.diagnosis.settings: unknown model settings \['tools'\]"):
        build_upstreams({"diagnosis": {"model": "gpt-4o", "api_key_env": None, "settings": {"tools": False}}})
    with pytest.raises(ConfigError, match=r"llm.task.provider must be one of"):
        build_upstreams({"task": {"provider": "anthropic", "model": "m"}})
    with pytest.raises(ConfigError, match=r"llm.task.model must name"):
        build_upstreams({"task": {"api_key_env": None}})


def test_shipped_model_settings_apply_unless_overridden():
    routes = build_upstreams({
        "diagnosis": {"model": "o1", "api_key_env": None, "base_url": "http://127.0.0.1:9/v1"},
        "task": {"model": "o3-mini", "api_key_env": None, "base_url": "http://127.0.0.1:9/v1",
                   "settings": {"supports_temperature": True}},
    })
    assert routes["diagnosis"].settings.supports_temperature is False
    assert routes["diagnosis"].settings.max_tokens_param == "max_completion_tokens"
    assert routes["task"].settings.supports_temperature is True


# -- preflight ---------------------------------------------------------------------------------
KEY = "sk-canary-preflight-0123456789"


@pytest.fixture
def route_to(monkeypatch):
    monkeypatch.setenv("DGM_TEST_UPSTREAM_KEY", KEY)

    def make(base_url, model="gpt-4o"):
        config = {"task": {"base_url": base_url, "api_key_env": "DGM_TEST_UPSTREAM_KEY", "model": model,
                             "retry": {"max_attempts": 1, "timeout_s": 2}}}
        return build_upstreams(config)["task"]

    return make


def test_preflight_passes_for_a_listed_model(route_to):
    with fu.FakeUpstream("gpt-4o", api_key=KEY) as up:
        preflight(route_to(up.base_url))
        assert [r.path for r in up.requests] == ["/v1/models"]


def test_preflight_falls_back_to_a_one_token_call(route_to):
    with fu.FakeUpstream("gpt-4o", api_key=KEY, models=["something-else"]) as up:
        preflight(route_to(up.base_url))  # not listed, but answers
        assert up.chat_requests[0].body["max_tokens"] == 1
        up.script(fu.status(404, {"error": {"message": "The model `gpt-4o` does not exist", "code": "model_not_found"}}))
        with pytest.raises(PreflightError, match="'task'.*gpt-4o.*does not exist"):
            preflight(route_to(up.base_url))


def test_preflight_names_the_env_var_not_the_key(route_to):
    with fu.FakeUpstream("gpt-4o", api_key="sk-the-right-one") as up:
        with pytest.raises(PreflightError) as err:
            preflight(route_to(up.base_url))
    message = str(err.value)
    assert "alias 'task'" in message and "DGM_TEST_UPSTREAM_KEY" in message and "rejected" in message
    assert up.base_url in message and KEY not in message


def test_preflight_reports_an_unreachable_server(route_to):
    with fu.FakeUpstream() as up:
        base_url = up.base_url
    with pytest.raises(PreflightError, match="alias 'task'.*cannot reach the server") as err:
        preflight(route_to(base_url))
    assert base_url in str(err.value)


def test_replay_needs_no_api_key(monkeypatch, tmp_path):
    from dgm.llm.gateway import Gateway

    monkeypatch.delenv("DGM_NO_SUCH_KEY", raising=False)
    config = {"task": {"base_url": "http://127.0.0.1:9/v1", "api_key_env": "DGM_NO_SUCH_KEY", "model": "gpt-4o"}}
    routes = build_upstreams(config, require_keys=False)
    Gateway(routes, cache=ResponseCache(tmp_path, "replay", run="r")).preflight()  # nothing to check in replay
    with pytest.raises(PreflightError, match="DGM_NO_SUCH_KEY is not set"):
        preflight(routes["task"])
    with pytest.raises(Exception, match="DGM_NO_SUCH_KEY is not set") as err:
        routes["task"].upstream.complete({"messages": [{"role": "user", "content": "hi"}]})
    assert err.value.code == "upstream_key_missing"


def test_stale_gateway_socket_dirs_are_removed_live_ones_kept(tmp_path):
    import socket as _socket

    from dgm.llm.gateway import remove_stale_gateway_dirs

    stale = tmp_path / "dgm-gw-dead"
    stale.mkdir()
    dead = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    dead.bind(str(stale / "llm.sock"))
    dead.close()  # bound, never listening: what a killed gateway leaves
    live = tmp_path / "dgm-gw-live"
    live.mkdir()
    listener = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    listener.bind(str(live / "llm.sock"))
    listener.listen()
    try:
        assert remove_stale_gateway_dirs(tmp_path, min_age_s=60) == 0  # too young: may be starting
        assert remove_stale_gateway_dirs(tmp_path, min_age_s=0) == 1
        assert not stale.exists() and live.exists()
    finally:
        listener.close()
