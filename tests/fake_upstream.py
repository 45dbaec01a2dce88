"""A fake OpenAI-compatible upstream for gateway tests: a real HTTP server on 127.0.0.1.

It stands in for a paid API (which cannot be reached here). Each POST /v1/chat/completions
takes the next scripted `Reply` (default: a normal answer), so tests can inject faults:
429 with Retry-After, 5xx, hangs, truncated bodies, malformed JSON, malformed tool calls,
context-length errors, and errors that echo the API key back.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    kind: str
    params: dict = field(default_factory=dict)


def ok(content: str | None = "hello", *, prompt_tokens: int = 10, completion_tokens: int = 5,
       cached_tokens: int = 0, tool_calls: list | None = None, usage: bool = True) -> Reply:
    return Reply("ok", dict(content=content, prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                            cached_tokens=cached_tokens, tool_calls=tool_calls, usage=usage))


def status(code: int, body: Any = None, *, retry_after: str | None = None) -> Reply:
    return Reply("status", dict(code=code, body=body, retry_after=retry_after))


def hang(seconds: float = 5.0) -> Reply:
    return Reply("hang", dict(seconds=seconds))


def slow(seconds: float, content: str = "hello") -> Reply:
    """An answer that takes `seconds` to come (a call still in flight when something else happens)."""
    return Reply("slow", dict(seconds=seconds, content=content))


def truncated() -> Reply:
    return Reply("truncated")


def malformed_json() -> Reply:
    return Reply("malformed_json")


def bad_tool_call_structure() -> Reply:
    """tool_calls entries without a function name: not a usable answer."""
    return Reply("bad_tool_calls")


def context_overflow(*, with_code: bool = True) -> Reply:
    message = "This model's maximum context length is 128000 tokens. However, your messages resulted in 200000 tokens."
    error = {"message": message, "type": "invalid_request_error", "param": "messages",
             "code": "context_length_exceeded" if with_code else None}
    return status(400, {"error": error})


def raw(body: dict, code: int = 200) -> Reply:
    """Exactly this JSON body: a real server's own shape, copied from what it sent."""
    return status(code, body)


def echo_key(code: int = 401) -> Reply:
    """An error whose message repeats the Authorization header, as careless servers do."""
    return Reply("echo_key", dict(code=code))


def tool_call(name: str, arguments: str, call_id: str = "call_1") -> dict:
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


@dataclass
class Recorded:
    path: str
    headers: dict  # lower-case names
    body: Any


class FakeUpstream:
    def __init__(self, model: str = "fake-model", *, api_key: str | None = None, models: list[str] | None = None):
        self.model = model
        self.api_key = api_key  # if set, requests with another bearer key get 401
        self.models = models if models is not None else [model]
        self.get_routes: dict[str, tuple[int, Any]] = {}  # path -> (status, JSON body), before any auth check
        self.requests: list[Recorded] = []
        self._script: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._answers = 0

    # -- scripting -----------------------------------------------------------------------------
    def script(self, *replies: Reply) -> "FakeUpstream":
        with self._lock:
            self._script.extend(replies)
        return self

    def _next(self) -> Reply:
        with self._lock:
            return self._script.popleft() if self._script else ok()

    @property
    def chat_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    @property
    def base_url(self) -> str:
        assert self._server is not None, "fake upstream not started"
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    # -- answers -------------------------------------------------------------------------------
    def completion(self, reply: Reply) -> dict:
        p = reply.params
        with self._lock:
            self._answers += 1
            n = self._answers
        message: dict = {"role": "assistant", "content": p["content"]}
        if p["tool_calls"]:
            message["tool_calls"] = p["tool_calls"]
        body = {
            "id": f"chatcmpl-fake-{n}",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": self.model,
            "choices": [{"index": 0, "message": message,
                         "finish_reason": "tool_calls" if p["tool_calls"] else "stop"}],
        }
        if p["usage"]:
            body["usage"] = {
                "prompt_tokens": p["prompt_tokens"],
                "completion_tokens": p["completion_tokens"],
                "total_tokens": p["prompt_tokens"] + p["completion_tokens"],
                "prompt_tokens_details": {"cached_tokens": p["cached_tokens"]},
            }
        return body

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "FakeUpstream":
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output quiet
                pass

            def _send(self, code: int, payload: bytes, headers: dict | None = None):
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(payload)

            def _authorized(self) -> bool:
                if fake.api_key is None or self.headers.get("Authorization") == f"Bearer {fake.api_key}":
                    return True
                self._send(401, json.dumps({"error": {"message": "Incorrect API key provided",
                                                      "code": "invalid_api_key"}}).encode())
                return False

            def do_GET(self):
                fake.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, None))
                if self.path in fake.get_routes:
                    code, body = fake.get_routes[self.path]
                    return self._send(code, json.dumps(body).encode())
                if not self._authorized():
                    return
                if self.path.rstrip("/").endswith("/models"):
                    data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in fake.models]
                    self._send(200, json.dumps({"object": "list", "data": data}).encode())
                else:
                    self._send(404, b'{"error": {"message": "not found"}}')

            def do_POST(self):
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw
                fake.requests.append(Recorded(self.path, {k.lower(): v for k, v in self.headers.items()}, body))
                if not self._authorized():
                    return
                reply = fake._next()
                try:
                    self._play(reply)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout): fine

            def _play(self, reply: Reply):
                p = reply.params
                if reply.kind == "ok":
                    self._send(200, json.dumps(fake.completion(reply)).encode())
                elif reply.kind == "status":
                    body = p["body"] if p["body"] is not None else {"error": {"message": f"fake error {p['code']}"}}
                    headers = {"Retry-After": p["retry_after"]} if p["retry_after"] is not None else {}
                    self._send(p["code"], json.dumps(body).encode(), headers)
                elif reply.kind == "slow":
                    time.sleep(p["seconds"])
                    self._send(200, json.dumps(fake.completion(ok(p["content"]))).encode())
                elif reply.kind == "hang":
                    deadline = time.monotonic() + p["seconds"]
                    while time.monotonic() < deadline and not fake._stop.is_set():
                        time.sleep(0.02)
                    self.close_connection = True
                elif reply.kind == "truncated":
                    payload = json.dumps(fake.completion(ok())).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload[: len(payload) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                elif reply.kind == "malformed_json":
                    self._send(200, b'{"id": "chatcmpl-broken", "choices": [{"message": ')
                elif reply.kind == "bad_tool_calls":
                    answer = fake.completion(ok(tool_calls=[{"id": "call_x", "type": "function",
                                                             "function": {"arguments": "{}"}}]))
                    self._send(200, json.dumps(answer).encode())
                elif reply.kind == "echo_key":
                    key = self.headers.get("Authorization", "")
                    body = {"error": {"message": f"Incorrect API key provided: {key}", "code": "invalid_api_key"}}
                    self._send(p["code"], json.dumps(body).encode())
                else:
                    raise AssertionError(f"unknown reply kind {reply.kind}")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FakeUpstream":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
