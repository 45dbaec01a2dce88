"""The LLM gateway end to end: a real `openai` client over the gateway's Unix socket, the real
gateway (FastAPI + uvicorn in a thread), and a fake upstream over loopback TCP.

The fake upstream (tests/fake_upstream.py) stands in for a paid API, which cannot be reached
here; everything else is the production code path.
"""

from __future__ import annotations

import json
import logging
import threading

import httpx2
import openai
import pytest

import fake_upstream as fu
from dgm.llm.base import CallContext
from dgm.llm.budget import Budgets
from dgm.llm.cache import ResponseCache
from dgm.llm.client import client_from_env
from dgm.llm.gateway import Gateway
from dgm.llm.upstream import ConfigError, OpenAIUpstream, RetryPolicy, Route, build_upstreams

KEY = "sk-canary-7f3a9c1e5b2d40868e1b"
KEY_ENV = "DGM_TEST_UPSTREAM_KEY"
# Tiny waits so retries cost milliseconds; a short upstream timeout so hangs are cheap.
FAST_RETRY = {"max_attempts": 3, "wait_initial": 0.01, "jitter": 0.01, "wait_scale": 0.01, "timeout_s": 0.4}
MSG = [{"role": "user", "content": "fix the bug"}]


class MemorySink:
    def __init__(self):
        self.records = []
        self._lock = threading.Lock()

    def record_llm_call(self, usage):
        with self._lock:
            self.records.append(usage)


def ctx(attempt="a1", node="n1", purpose="task"):
    return CallContext(run_id="run1", node_id=node, attempt_id=attempt, purpose=purpose, task_id="t1")


@pytest.fixture
def upstream():
    with fu.FakeUpstream("gpt-4o", api_key=KEY) as up:
        yield up


@pytest.fixture
def make_gateway(upstream, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    started = []

    def make(*, settings=None, retry=None, tcp=False, **kwargs) -> Gateway:
        config = {"task": {"base_url": upstream.base_url, "api_key_env": KEY_ENV, "model": "gpt-4o",
                             "retry": retry or FAST_RETRY, "settings": settings or {}}}
        kwargs.setdefault("sink", MemorySink())
        gw = Gateway(build_upstreams(config), tcp=tcp, **kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def client_for(gw, context=None):
    return gw.client(gw.issue_token(context or ctx()), max_retries=0)


def ask(client, content="fix the bug", **kwargs):
    return client.chat.completions.create(model="task", messages=[{"role": "user", "content": content}], **kwargs)


# -- metering ----------------------------------------------------------------------------------
def test_usage_is_metered_exactly_from_the_price_table(make_gateway, upstream):
    gw = make_gateway()
    upstream.script(fu.ok("done", prompt_tokens=1000, completion_tokens=200, cached_tokens=400))
    answer = ask(client_for(gw, ctx(attempt="a7", node="n3")))

    assert answer.choices[0].message.content == "done"
    assert answer.usage.prompt_tokens == 1000 and answer.usage.completion_tokens == 200
    (record,) = gw.sink.records
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (1000, 200, 400)
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per 1M tokens.
    assert record.cost_usd == pytest.approx((600 * 2.50 + 400 * 1.25 + 200 * 10.00) / 1e6)
    assert record.context.attempt_id == "a7" and record.context.node_id == "n3"
    assert record.model == "gpt-4o" and not record.cache_hit and record.error is None
    assert gw.budgets.spent_run == pytest.approx(0.004)
    # The upstream saw the real model and the real key; the agent only ever had its token.
    sent = upstream.chat_requests[0]
    assert sent.body["model"] == "gpt-4o" and sent.headers["authorization"] == f"Bearer {KEY}"


def test_scripted_routes_cost_nothing():
    class Canned:
        name, is_scripted = "canned", True

        def complete(self, request, context):
            return {"id": "x", "object": "chat.completion", "model": "scripted", "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 10**6, "completion_tokens": 10**6, "total_tokens": 2 * 10**6}}

    sink = MemorySink()
    # "gpt-4o" as the model name would be priced if the route were not scripted.
    with Gateway({"task": Route("task", Canned(), "gpt-4o")}, sink=sink) as gw:
        assert ask(client_for(gw)).choices[0].message.content == "ok"
    assert sink.records[0].cost_usd == 0.0 and sink.records[0].prompt_tokens == 10**6


# -- authentication and agent environment -----------------------------------------------------
def test_unknown_or_revoked_token_gets_401(make_gateway, upstream):
    gw = make_gateway()
    with pytest.raises(openai.AuthenticationError) as err:
        ask(gw.client("dgm-not-a-token", max_retries=0))
    assert err.value.code == "invalid_api_key"
    token = gw.issue_token(ctx())
    ask(gw.client(token, max_retries=0))
    gw.revoke(token)
    with pytest.raises(openai.AuthenticationError):
        ask(gw.client(token, max_retries=0))
    assert len(upstream.chat_requests) == 1


def test_agent_env_reaches_the_gateway_over_the_socket(make_gateway):
    gw = make_gateway()
    token = gw.issue_token(ctx(purpose="self_modify"), "task")  # an explicit alias overrides the purpose's
    env = gw.agent_env(token)
    assert env == {"OPENAI_BASE_URL": "http://gateway/v1", "OPENAI_API_KEY": token, "DGM_MODEL": "task",
                   "DGM_LLM_SOCKET": "/run/dgm/llm.sock"}
    # Local backend (no bind mount): the host socket path itself.
    local_env = gw.agent_env(token, inside_socket=gw.socket_path)
    client, model = client_from_env(local_env, max_retries=0)
    assert client.chat.completions.create(model=model, messages=MSG).choices[0].message.content == "hello"
    assert len(str(gw.socket_path)) < 108
    models = client.models.list()
    assert [m.id for m in models] == ["task"]
    with pytest.raises(ValueError, match="issued for model 'task'"):
        gw.agent_env(token, "diagnosis")


def test_loopback_tcp_for_the_local_backend(make_gateway):
    gw = make_gateway(tcp=True)
    env = gw.agent_env(gw.issue_token(ctx()), use_tcp=True)
    assert env["OPENAI_BASE_URL"].startswith("http://127.0.0.1:") and "DGM_LLM_SOCKET" not in env
    client, model = client_from_env(env, max_retries=0)
    assert client.chat.completions.create(model=model, messages=MSG).choices[0].message.content == "hello"


def test_only_the_tokens_model_is_served(make_gateway, upstream):
    client = client_for(make_gateway())
    # The real model name behind the alias is accepted too (agents that hard-code it still work).
    client.chat.completions.create(model="gpt-4o", messages=MSG)
    with pytest.raises(openai.NotFoundError) as err:
        client.chat.completions.create(model="o1", messages=MSG)
    assert err.value.code == "model_not_found" and "'task'" in err.value.message
    assert len(upstream.chat_requests) == 1


# -- budgets -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "budgets, other_context, other_refused, message",
    [
        (Budgets(attempt_usd=0.003), ctx(attempt="a2"), False, "attempt a1 budget of $0.0030 exhausted (spent $0.0040)"),
        (Budgets(node_usd=0.003), ctx(attempt="a2"), True, "node n1 budget of $0.0030 exhausted (spent $0.0040)"),
        (Budgets(run_usd=0.003), ctx(attempt="a9", node="n9"), True, "run budget of $0.0030 exhausted (spent $0.0040)"),
    ],
    ids=["attempt", "node", "run"],
)
def test_budget_refusal(make_gateway, upstream, budgets, other_context, other_refused, message):
    gw = make_gateway(budgets=budgets)
    upstream.script(fu.ok(prompt_tokens=1000, completion_tokens=200, cached_tokens=400))  # $0.004
    client = client_for(gw)
    ask(client)  # under budget when sent; the answer is paid and delivered
    with pytest.raises(openai.APIStatusError) as err:
        ask(client, "again")
    assert err.value.status_code == 402 and err.value.code == "budget_exceeded"
    assert err.value.body["message"] == message
    other = client_for(gw, other_context)
    if other_refused:
        with pytest.raises(openai.APIStatusError, match="budget"):
            ask(other)
    else:
        ask(other)
    assert gw.run_budget_exhausted == (budgets.run_usd is not None)
    refusals = [r for r in gw.sink.records if r.error]
    assert refusals and refusals[0].error.startswith("budget_exceeded") and refusals[0].cost_usd == 0
    assert gw.stats.budget_refusals == len(refusals)


def test_the_framework_learns_of_a_budget_refusal_from_the_gateway(make_gateway, upstream):
    """Whatever the agent made of its 402, the step that was refused raises BudgetExceeded when it ends."""
    from dgm.llm.budget import BudgetExceeded
    from dgm.llm_access import LLMAccess

    gw = make_gateway(budgets=Budgets(node_usd=0.00001))
    llm = LLMAccess(gw, "run1")
    paid, refused = llm.context("n1", "1:0", "task", "t1"), llm.context("n1", "1:0", "task", "t2")
    with llm.agent_env(paid) as env:  # under budget: the step ends normally
        client, model = client_from_env(env | {"DGM_LLM_SOCKET": str(gw.socket_path)}, max_retries=0)
        client.chat.completions.create(model=model, messages=MSG)
    assert gw.budget_refusal(paid) is None
    with pytest.raises(BudgetExceeded, match="node n1 budget") as err:
        with llm.agent_env(refused) as env:
            client, model = client_from_env(env | {"DGM_LLM_SOCKET": str(gw.socket_path)}, max_retries=0)
            with pytest.raises(openai.APIStatusError):  # the agent sees a 402 and may do anything with it
                client.chat.completions.create(model=model, messages=MSG)
    assert err.value.scope == "node" and gw.budget_refusal(refused) is err.value
    with pytest.raises(BudgetExceeded, match="node n1 budget"):  # the framework's own chat, too
        llm.chat(llm.context("n1", "1:0", "task"))(MSG)
    assert len(upstream.chat_requests) == 1


def test_budget_resumes_from_spent_amounts(make_gateway, upstream):
    gw = make_gateway(budgets=Budgets(run_usd=5.0, node_usd=1.0, spent_run=1.0, spent_by_node={"n1": 1.0}))
    with pytest.raises(openai.APIStatusError, match=r"node n1 budget of \$1.0000 exhausted"):
        ask(client_for(gw))
    ask(client_for(gw, ctx(node="n2")))  # another node still has budget
    assert len(upstream.chat_requests) == 1 and not gw.run_budget_exhausted


# -- upstream faults -------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fault",
    [fu.status(429, retry_after="1"), fu.status(500), fu.status(503), fu.hang(1.5), fu.truncated(),
     fu.malformed_json(), fu.bad_tool_call_structure()],
    ids=["429", "500", "503", "hang", "truncated", "malformed_json", "malformed_tool_calls"],
)
def test_transient_faults_are_retried_to_success(make_gateway, upstream, fault):
    gw = make_gateway()
    upstream.script(fault, fu.ok("recovered"))
    assert ask(client_for(gw)).choices[0].message.content == "recovered"
    assert len(upstream.chat_requests) == 2
    assert gw.stats.upstream_calls == 1 and gw.stats.errors == 0


def test_retry_after_is_honoured(upstream, monkeypatch):
    monkeypatch.setenv(KEY_ENV, KEY)
    waits = []
    up = OpenAIUpstream(upstream.base_url, KEY_ENV, "gpt-4o", retry=RetryPolicy(wait_scale=0.001, jitter=0),
                        sleep=waits.append)
    upstream.script(fu.status(429, retry_after="7"), fu.status(500), fu.ok())
    assert up.complete({"messages": MSG})["choices"][0]["message"]["content"] == "hello"
    # 7 s from Retry-After, then plain exponential backoff (1 s doubled), both scaled by 0.001.
    assert waits == [pytest.approx(0.007), pytest.approx(0.002)]


@pytest.mark.parametrize(
    "faults, error_class, status, code",
    [
        ([fu.status(500)] * 3, openai.InternalServerError, 502, "upstream_error"),
        ([fu.hang(1.5)] * 3, openai.APIStatusError, 504, "upstream_timeout"),
        ([fu.status(429, retry_after="0")] * 3, openai.RateLimitError, 429, "rate_limited"),
        ([fu.malformed_json()] * 3, openai.InternalServerError, 502, "upstream_malformed_response"),
    ],
    ids=["500", "hang", "429", "malformed"],
)
def test_persistent_faults_become_clear_errors_and_the_gateway_keeps_serving(
    make_gateway, upstream, faults, error_class, status, code
):
    gw = make_gateway()
    upstream.script(*faults)
    client = client_for(gw)
    with pytest.raises(error_class) as err:
        ask(client)
    assert err.value.status_code == status and err.value.code == code
    assert "gave up after 3 attempts" in err.value.message
    assert err.value.response.headers["x-should-retry"] == "false"  # the gateway already retried
    assert len(upstream.chat_requests) == 3
    assert ask(client, "next").choices[0].message.content == "hello"
    assert gw.sink.records[0].error.startswith(code) and gw.sink.records[1].error is None


@pytest.mark.parametrize("with_code", [True, False], ids=["code", "message_only"])
def test_context_overflow_maps_to_bad_request_with_openais_code(make_gateway, upstream, with_code):
    gw = make_gateway()
    upstream.script(fu.context_overflow(with_code=with_code))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(gw))
    assert err.value.code == "context_length_exceeded" and err.value.type == "invalid_request_error"
    assert "maximum context length" in err.value.message
    assert len(upstream.chat_requests) == 1  # never retried


def test_other_client_errors_are_not_retried(make_gateway, upstream):
    gw = make_gateway()
    upstream.script(fu.status(400, {"error": {"message": "tools[0].function.name is invalid", "code": "invalid_value"}}))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(gw))
    assert err.value.code == "invalid_value" and "tools[0].function.name" in err.value.message
    assert len(upstream.chat_requests) == 1


def test_invalid_tool_call_arguments_reach_the_agent_unchanged(make_gateway, upstream):
    """Broken JSON in arguments is model behaviour the agent must see (and handle)."""
    gw = make_gateway()
    upstream.script(fu.ok(None, tool_calls=[fu.tool_call("bash", '{"command": "ls')]))
    answer = ask(client_for(gw), tools=[{"type": "function", "function": {"name": "bash", "parameters": {}}}])
    assert answer.choices[0].message.tool_calls[0].function.arguments == '{"command": "ls'


def test_gateway_survives_a_failing_usage_sink(make_gateway):
    class Broken:
        def record_llm_call(self, usage):
            raise RuntimeError("disk full")

    gw = make_gateway(sink=Broken())
    assert ask(client_for(gw)).choices[0].message.content == "hello"


# -- request checks ------------------------------------------------------------------------------
def test_streaming_is_refused_clearly(make_gateway, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(make_gateway()), stream=True)
    assert err.value.code == "stream_unsupported" and "stream=true" in err.value.message
    assert upstream.chat_requests == []


def test_models_without_tools_get_text_requests_only(make_gateway, upstream):
    client = client_for(make_gateway(settings={"supports_tools": False}))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client, tools=[{"type": "function", "function": {"name": "bash", "parameters": {}}}])
    assert err.value.code == "tools_unsupported"
    ask(client, temperature=0.2, max_tokens=50)  # the text fallback passes through unchanged
    assert upstream.chat_requests[0].body == {"model": "gpt-4o", "messages": MSG, "temperature": 0.2,
                                              "max_tokens": 50}


def test_model_settings_shape_the_upstream_request(make_gateway, upstream):
    client = client_for(make_gateway(settings={"supports_system_role": False, "supports_temperature": False,
                                               "max_tokens_param": "max_completion_tokens",
                                               "reasoning_effort": "high"}))
    client.chat.completions.create(model="task", temperature=0.7, max_tokens=99, messages=[
        {"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}])
    assert upstream.chat_requests[0].body == {
        "model": "gpt-4o", "max_completion_tokens": 99, "reasoning_effort": "high",
        "messages": [{"role": "user", "content": "be brief"}, {"role": "user", "content": "hi"}]}


# -- cache and replay ----------------------------------------------------------------------------
def test_cache_hits_and_replay(make_gateway, upstream, tmp_path):
    cache_dir = tmp_path / "llm_cache"
    gw = make_gateway(cache=ResponseCache(cache_dir, "read_write", run="run1"))
    upstream.script(fu.status(400), fu.ok("first"), fu.ok("second"), fu.ok("other attempt"))
    client = client_for(gw)
    with pytest.raises(openai.BadRequestError):
        ask(client)  # a failed request does not use up sample index 0
    # Identical requests in one attempt are separate samples (indices 0 and 1).
    assert [ask(client).choices[0].message.content for _ in range(2)] == ["first", "second"]
    files = sorted(cache_dir.glob("*/*.json"))
    assert len(files) == 2 and all(f.parent.name == f.name[:2] for f in files)
    # Another attempt asking the same thing gets its own sample, not a copy of this one.
    assert ask(client_for(gw, ctx(attempt="a2"))).choices[0].message.content == "other attempt"
    assert len(upstream.chat_requests) == 4 and gw.stats.cache_hits == 0

    # Replay: a fresh gateway (same attempt ids) answers the recorded sequence at $0, refuses anything new.
    replay = make_gateway(cache=ResponseCache(cache_dir, "replay", run="run1"))
    client = client_for(replay)
    assert [ask(client).choices[0].message.content for _ in range(2)] == ["first", "second"]
    hit = replay.sink.records[-1]
    assert hit.cache_hit and hit.cost_usd == 0 and hit.prompt_tokens == 10
    # It pays nothing, but its budgets count what the recorded answers cost (same refusals, same stops).
    paid = [r.cost_usd for r in gw.sink.records if r.context.attempt_id == "a1" and r.error is None]
    assert replay.budgets.spent_run == pytest.approx(sum(paid)) and sum(paid) > 0
    with pytest.raises(openai.NotFoundError) as err:
        ask(client)  # a third sample was never recorded
    assert err.value.code == "replay_miss"
    with pytest.raises(openai.NotFoundError, match="replay mode"):
        ask(client, "a different question")
    assert replay.stats.replay_misses == 2 and replay.stats.upstream_calls == 0
    assert replay.stats.cache_hits == 2 and len(upstream.chat_requests) == 4


def test_cache_shared_across_attempts_when_asked(make_gateway, upstream, tmp_path):
    gw = make_gateway(cache=ResponseCache(tmp_path / "c", "read_write", run="run1", share_across_attempts=True))
    upstream.script(fu.ok("first"), fu.ok("second"))
    assert ask(client_for(gw)).choices[0].message.content == "first"
    other = client_for(gw, ctx(attempt="a2", node="n2"))
    assert [ask(other).choices[0].message.content for _ in range(2)] == ["first", "second"]
    assert gw.stats.cache_hits == 1 and len(upstream.chat_requests) == 2


def test_cache_off_always_asks_upstream(make_gateway, upstream, tmp_path):
    gw = make_gateway(cache=ResponseCache(tmp_path / "c", "off", run="run1"))
    client = client_for(gw)
    ask(client), ask(client_for(gw, ctx(attempt="a2")))
    assert len(upstream.chat_requests) == 2 and not (tmp_path / "c").exists()


# -- secrets -----------------------------------------------------------------------------------
def test_the_upstream_key_never_leaves_the_gateway(make_gateway, upstream, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    gw = make_gateway(tcp=True, cache=ResponseCache(tmp_path / "cache", run="run1"))
    token = gw.issue_token(ctx())
    env = gw.agent_env(token)
    env_tcp = gw.agent_env(token, use_tcp=True)
    assert KEY not in json.dumps([env, env_tcp])
    upstream.script(fu.echo_key(401), fu.echo_key(403), fu.echo_key(400), fu.echo_key(500), fu.echo_key(500),
                    fu.echo_key(500), fu.context_overflow(), fu.ok())
    raw = httpx2.Client(transport=httpx2.HTTPTransport(uds=str(gw.socket_path)))
    headers = {"Authorization": f"Bearer {token}"}
    bodies = []
    for _ in range(5):
        reply = raw.post("http://gateway/v1/chat/completions", headers=headers, json={"model": "task", "messages": MSG})
        bodies.append(reply.text)
        assert reply.status_code >= 400 and reply.json()["error"]["code"]
    ok = raw.post("http://gateway/v1/chat/completions", headers=headers, json={"model": "task", "messages": MSG})
    assert ok.status_code == 200
    bodies.append(raw.get("http://gateway/v1/models", headers=headers).text)
    bodies.append(raw.get("http://gateway/v1/nowhere", headers=headers).text)
    bodies.append(raw.post("http://gateway/v1/chat/completions", headers=headers, content=b"{not json").text)
    assert any("Incorrect API key provided: Bearer [redacted]" in b for b in bodies)
    assert all(KEY not in b for b in bodies), bodies
    assert KEY not in repr(gw.routes) and KEY not in caplog.text
    assert all(KEY not in (r.error or "") for r in gw.sink.records)
    assert KEY not in "".join(p.read_text() for p in (tmp_path / "cache").rglob("*.json"))
    assert upstream.chat_requests[0].headers["authorization"] == f"Bearer {KEY}"  # it was used, just not shown


def test_concurrent_requests_are_served_in_parallel(make_gateway, upstream):
    gw = make_gateway(budgets=Budgets(run_usd=100.0))
    results, errors = [], []

    def worker(i):
        try:
            results.append(ask(client_for(gw, ctx(attempt=f"a{i}")), f"q{i}").choices[0].message.content)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=20)
    assert not errors and results == ["hello"] * 8
    assert gw.budgets.spent_run == pytest.approx(8 * (10 * 2.5 + 5 * 10) / 1e6)
    assert len(gw.sink.records) == 8


def test_scripted_route_through_the_gateway():
    """The real scripted model (dgm.llm.scripted) behind the gateway: metered at $0, cached like any other."""
    routes = build_upstreams({"task": {"provider": "scripted"}})
    sink = MemorySink()
    with Gateway(routes, sink=sink) as gw:
        answer = ask(client_for(gw))
    assert answer.choices[0].message is not None
    (record,) = sink.records
    assert record.cost_usd == 0 and record.error is None and record.model == "scripted"
    with pytest.raises(ConfigError, match=r"llm.task: bad options for the scripted model"):
        build_upstreams({"task": {"provider": "scripted", "no_such_option": 1}})
    with pytest.raises(ConfigError, match=r"\['api_key_env'\] mean nothing for provider 'scripted'"):
        build_upstreams({"task": {"provider": "scripted", "api_key_env": "X"}})
