"""The LLM gateway: an OpenAI-compatible server that is the only road from agents to models.

It runs in a background thread of the framework process, listening on a Unix socket (bound
into sandboxes at /run/dgm/llm.sock) and optionally on loopback TCP (for the `local` backend).
For each request it:

1. authenticates the per-attempt bearer token it issued (so metering knows who is calling,
   and agents never see the real upstream key);
2. maps the model alias of the token (a model role: "task", "self_modify", "diagnosis") to a
   route (upstream + real model);
3. answers from the content-addressed cache when it can (cost $0), or in replay mode refuses
   a miss;
4. otherwise checks the budgets and forwards to the upstream (which retries transient faults),
   the request adapted to the model (`upstream.apply_settings`: max_tokens always set and capped);
5. meters every call - hit or miss, success or error - into the UsageSink.

A budget refusal is also remembered per caller (`budget_refusal(context)`), so the framework
learns that an agent's run was cut short by a budget from the gateway itself, not from whatever
the agent made of the 402 it got.

Stopping waits (`shutdown_grace_s`) for calls still running upstream, agents' abandoned ones
included: the upstream serves and bills them, so they are metered.

A refusal of the request itself (HTTP 400: prompt too long, tools not supported) is recorded in
the cache too, so a replay meets the same refusal. Preflight learns each model's context window
and keeps it next to the cache, so a replay fits prompts to the same window.

Every failure becomes an OpenAI-shaped JSON error ({"error": {"message", "type", "code"}}) so
the agent's `openai` client raises the usual exception classes. Error responses carry
`x-should-retry: false`: the gateway has already retried what was worth retrying.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import shutil
import socket
import tempfile
import threading
import time
from concurrent.futures import Future
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Mapping

import openai
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from dgm.llm.base import PURPOSES, CallContext, ContextOverflow, UpstreamError, UsageRecord, UsageSink
from dgm.llm.budget import BudgetExceeded, Budgets
from dgm.llm.cache import ResponseCache, SampleCounter, request_fingerprint
from dgm.llm.client import INSIDE_BASE_URL, uds_client
from dgm.llm.pricing import PriceTable, UnknownPrice
from dgm.llm.upstream import Route, preflight
from dgm.sandbox.base import INSIDE_LLM_SOCKET

log = logging.getLogger(__name__)

_ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 402: "insufficient_quota",
                404: "invalid_request_error", 429: "rate_limit_error"}


def error_body(status: int, code: str, message: str) -> dict:
    """The error JSON OpenAI uses, so clients map it to BadRequestError & co. with `.code` set."""
    kind = _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "code": code, "param": None}}


class GatewayError(UpstreamError):
    """A request the gateway itself refuses (bad request, wrong model, replay miss...)."""


@dataclass
class GatewayStats:
    upstream_calls: int = 0  # requests forwarded upstream (retries inside one call not counted)
    cache_hits: int = 0
    replay_misses: int = 0
    budget_refusals: int = 0
    errors: int = 0  # every non-200 answer, refusals included


@dataclass(frozen=True)
class _Grant:
    context: CallContext
    alias: str
    issued_as: str  # the token first issued for this work: revoking it revokes its retries' tokens
    try_no: int = 0  # 0, or which retry of a job whose worker died holds it

    @property
    def counting(self) -> str:
        """Where its sample indices are counted: per try, so a lost try's late requests steal none."""
        return f"{_sample_scope(self.context)}#{self.try_no}"


def _usage_numbers(response: Mapping[str, Any]) -> tuple[int, int, int]:
    """(prompt, completion, cached prompt) tokens from a response; missing numbers count as 0."""
    usage = response.get("usage") if isinstance(response, Mapping) else None
    if not isinstance(usage, Mapping):
        return 0, 0, 0
    details = usage.get("prompt_tokens_details")
    cached = details.get("cached_tokens") if isinstance(details, Mapping) else 0

    def as_int(value) -> int:
        return value if isinstance(value, int) and value >= 0 else 0

    return as_int(usage.get("prompt_tokens")), as_int(usage.get("completion_tokens")), as_int(cached)


def _new_token() -> str:
    return "dgm-" + secrets.token_urlsafe(24)


def _sample_scope(ctx: CallContext) -> str:
    return f"{ctx.attempt_id or 'node:' + str(ctx.node_id)}/{ctx.purpose}/{ctx.task_id}"


GATEWAY_DIR_PREFIX = "dgm-gw-"
CONTEXT_WINDOWS_FILE = "context_windows.json"  # in the cache directory: what preflight learnt, for replays


def remove_stale_gateway_dirs(root: Path | None = None, min_age_s: float = 60.0) -> int:
    """Remove socket dirs of gateways whose process died (kill -9 leaves them); live ones answer connect()."""
    removed = 0
    for directory in Path(root or tempfile.gettempdir()).glob(GATEWAY_DIR_PREFIX + "*"):
        try:
            if time.time() - directory.stat().st_mtime < min_age_s:  # may be a gateway starting right now
                continue
        except OSError:
            continue
        sock = directory / "llm.sock"
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.connect(str(sock))
        except OSError:  # nobody listens (or no socket at all): stale
            shutil.rmtree(directory, ignore_errors=True)
            removed += 1
        finally:
            probe.close()
    return removed


def _recorded_refusal(entry: Mapping) -> UpstreamError:
    error = entry["error"] if isinstance(entry.get("error"), Mapping) else {}
    message = str(error.get("message") or "refused by the upstream")
    code = str(error.get("code") or "upstream_bad_request")
    if code == "context_length_exceeded":
        return ContextOverflow(message)
    return UpstreamError(message, status=400, code=code)


class Gateway:
    # stop() waits this long for calls still waiting on an upstream (an agent that gave up on one
    # leaves it running there): they are paid, so they are metered. Output caps keep calls short.
    shutdown_grace_s = 120.0

    def __init__(
        self,
        routes: Mapping[str, Route],
        *,
        sink: UsageSink | None = None,
        budgets: Budgets | None = None,
        cache: ResponseCache | None = None,
        prices: PriceTable | None = None,
        tcp: bool = False,
        tcp_host: str = "127.0.0.1",
    ):
        if not routes:
            raise ValueError("the gateway needs at least one model route")
        self.routes = dict(routes)
        self.sink = sink
        self.budgets = budgets or Budgets()
        self.cache = cache
        self.prices = prices or PriceTable.load()
        for alias, route in self.routes.items():  # metering a paid call at $0 would make budgets lie
            if not route.is_scripted and self.prices.price(route.model) is None:
                raise ValueError(f"model alias {alias!r}: {UnknownPrice(route.model)}")
        self.tcp = tcp
        self.tcp_host = tcp_host  # loopback, or the driver's address on a cluster's network (Ray workers)
        self._grants: dict[str, _Grant] = {}
        self._refusals: dict[CallContext, BudgetExceeded] = {}
        self._samples = SampleCounter()
        self._flights: dict[str, Future] = {}  # cache key -> the upstream call answering it
        self._stats = GatewayStats()
        self._lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._dir: str | None = None
        self.socket_path: Path | None = None
        self.tcp_port: int | None = None
        self.app = self._build_app()

    # -- tokens and what agents get ----------------------------------------------------------
    def issue_token(self, context: CallContext, model_alias: str | None = None) -> str:
        """A token for `context`, served by `model_alias` (default: the route named after its purpose)."""
        model_alias = model_alias or context.purpose
        if model_alias not in self.routes:
            raise ValueError(f"unknown model alias {model_alias!r} (configured: {sorted(self.routes)})")
        if context.purpose not in PURPOSES:
            raise ValueError(f"unknown call purpose {context.purpose!r} (one of {PURPOSES})")
        token = _new_token()
        with self._lock:
            self._grants[token] = _Grant(context, model_alias, issued_as=token)
        return token

    def revoke(self, token: str) -> None:
        """`token` and the tokens of its retries stop working."""
        with self._lock:
            for held in [t for t, grant in self._grants.items() if t == token or grant.issued_as == token]:
                del self._grants[held]

    def retry_token(self, token: str) -> str:
        """A token for the job holding `token`, which lost its worker and runs again from the start.

        `token` is revoked: a request the lost try still had on its way is refused, never paid. The
        retry counts its samples from the start again, so each request it repeats gets the index it had
        in the lost try and the answer the lost try paid for comes from the record (or, still upstream,
        is shared)."""
        new = _new_token()
        with self._lock:
            lost = self._grants.pop(token, None)
            if lost is None:
                raise ValueError("retry_token: unknown or revoked token")
            self._grants[new] = replace(lost, try_no=lost.try_no + 1)
        self._samples.forget(lost.counting)
        return new

    def _grant(self, token: str) -> _Grant | None:
        with self._lock:
            return self._grants.get(token)

    def agent_env(
        self,
        token: str,
        model_alias: str | None = None,
        *,
        inside_socket: str | Path = INSIDE_LLM_SOCKET,
        use_tcp: bool = False,
    ) -> dict[str, str]:
        """Environment for an agent using `token`.

        Default: the sandbox binds `socket_path` at /run/dgm/llm.sock. Without a socket binding
        (local backend) pass `inside_socket=gateway.socket_path`, or `use_tcp=True` for a
        loopback TCP base URL (needs `Gateway(tcp=True)`).
        """
        grant = self._grant(token)
        if grant is None:
            raise ValueError("agent_env: unknown or revoked token")
        alias = model_alias or grant.alias
        if alias != grant.alias:
            raise ValueError(f"agent_env: token was issued for model {grant.alias!r}, not {alias!r}")
        env = {"OPENAI_API_KEY": token, "DGM_MODEL": alias}
        if use_tcp:
            if self.tcp_port is None:
                raise RuntimeError("agent_env(use_tcp=True) needs a started Gateway(tcp=True)")
            env["OPENAI_BASE_URL"] = self.tcp_base_url
        else:
            env["OPENAI_BASE_URL"] = INSIDE_BASE_URL
            env["DGM_LLM_SOCKET"] = str(inside_socket)
        return env

    @property
    def tcp_base_url(self) -> str:
        return f"http://{self.tcp_host}:{self.tcp_port}/v1"

    def client(self, token: str, **kwargs) -> openai.OpenAI:
        """The framework's own client (diagnosis calls), over the Unix socket."""
        if self.socket_path is None:
            raise RuntimeError("the gateway is not started")
        return uds_client(self.socket_path, token, **kwargs)

    # -- state the loop reads ----------------------------------------------------------------
    @property
    def stats(self) -> GatewayStats:
        with self._lock:
            return GatewayStats(**asdict(self._stats))

    @property
    def run_budget_exhausted(self) -> bool:
        return self.budgets.run_exhausted

    def budget_refusal(self, context: CallContext) -> BudgetExceeded | None:
        """The budget refusal (the first) the gateway answered a caller with, if any."""
        with self._lock:
            return self._refusals.get(context)

    def preflight(self, timeout: float = 30.0) -> None:
        """Check every route (raises PreflightError naming the alias). Replay needs no upstream.

        Context windows learnt from the servers are saved next to the cache, so a replay builds
        the very prompts the recorded run built (a trimmed prompt is another cache key).
        """
        if self.cache is not None and self.cache.mode == "replay":
            self._load_context_windows()
            return
        for route in self.routes.values():
            started = time.monotonic()
            answer = preflight(route, timeout=timeout)
            if answer is not None:  # a paid 1-token test call: metered like any other
                context = CallContext("", None, None, "preflight")
                cost = 0.0 if route.is_scripted else self.prices.cost(route.model, *_usage_numbers(answer))
                self.budgets.charge(context, cost)
                self._meter(context, route.model, answer, cost, False, started)
        self._save_context_windows()

    def context_window(self, alias: str) -> int | None:
        """Prompt + output tokens the model behind `alias` takes (None: unknown, no trimming)."""
        return self.routes[alias].context_window

    def _windows_file(self) -> Path | None:
        return Path(self.cache.root) / CONTEXT_WINDOWS_FILE if self.cache is not None else None

    def _save_context_windows(self) -> None:
        path = self._windows_file()
        learnt = {alias: route.context_window for alias, route in self.routes.items() if route.context_window}
        if path is None or not self.cache.writes or not learnt:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(learnt, indent=1, sort_keys=True))
        except OSError as exc:
            log.error("gateway: cannot save context windows to %s: %s", path, exc)

    def _load_context_windows(self) -> None:
        path = self._windows_file()
        try:
            saved = json.loads(path.read_text()) if path is not None and path.is_file() else {}
        except (OSError, ValueError) as exc:
            log.error("gateway: cannot read context windows from %s: %s", path, exc)
            return
        for alias, tokens in saved.items():
            route = self.routes.get(alias)
            if route is not None and route.settings.max_context_tokens is None and isinstance(tokens, int):
                route.upstream.learnt_context_tokens = tokens

    def _count(self, **increments: int) -> None:
        with self._lock:
            for name, n in increments.items():
                setattr(self._stats, name, getattr(self._stats, name) + n)

    # -- request handling (plain Python; the HTTP layer only parses and serialises) ----------
    def handle_chat(self, token: str | None, raw_body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON body) for one POST /v1/chat/completions."""
        grant = self._grant(token) if token else None
        if grant is None:
            self._count(errors=1)
            return 401, error_body(401, "invalid_api_key", "unknown or revoked gateway token")
        started = time.monotonic()
        model_name = grant.alias
        try:
            body = self._parse_body(raw_body)
            route = self._route_for(grant, body)
            model_name = route.model
            return 200, self._answer(grant, route, route.prepare(body), started)
        except UpstreamError as exc:
            message = self._redact(str(exc))
            if isinstance(exc, BudgetExceeded):
                with self._lock:
                    self._refusals.setdefault(grant.context, exc)
            self._count(errors=1, budget_refusals=int(isinstance(exc, BudgetExceeded)))
            self._meter(grant.context, model_name, {}, 0.0, False, started, error=f"{exc.code}: {message}")
            return exc.status, error_body(exc.status, exc.code, message)
        except Exception as exc:  # a gateway bug must not take the gateway down
            log.exception("gateway: unexpected error")
            message = self._redact(f"internal gateway error: {type(exc).__name__}: {exc}")
            self._count(errors=1)
            self._meter(grant.context, model_name, {}, 0.0, False, started, error=f"gateway_error: {message}")
            return 500, error_body(500, "gateway_error", message)

    def _parse_body(self, raw_body: bytes) -> dict:
        try:
            body = json.loads(raw_body)
        except ValueError as exc:
            raise GatewayError(f"request body is not valid JSON: {exc}", status=400, code="invalid_json") from None
        if not isinstance(body, dict):
            raise GatewayError("request body must be a JSON object", status=400, code="invalid_request")
        if body.get("stream"):
            raise GatewayError(
                "stream=true is not supported by the dgm gateway; send non-streaming requests",
                status=400,
                code="stream_unsupported",
            )
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            raise GatewayError("'messages' must be a non-empty list", status=400, code="invalid_request")
        return body

    def _route_for(self, grant: _Grant, body: dict) -> Route:
        route = self.routes[grant.alias]
        asked = body.get("model")
        # The agent may name its alias or the real model it stands for; nothing else.
        if asked not in (None, "", grant.alias, route.model):
            raise GatewayError(
                f"this token may use model {grant.alias!r} (set by DGM_MODEL), not {asked!r}",
                status=404,
                code="model_not_found",
            )
        if body.get("tools") and not route.settings.supports_tools:
            raise GatewayError(
                f"model {grant.alias!r} ({route.model}) does not support tool calls; "
                "send the request without 'tools' and parse actions from the text",
                status=400,
                code="tools_unsupported",
            )
        return route

    def _answer(self, grant: _Grant, route: Route, request: dict, started: float) -> dict:
        ctx = grant.context
        # Sample indices count identical requests per caller scope (per try of a job: retry_token); the
        # cache key has the scope, not the try, so a retry's repeated requests find the lost try's answers.
        scope = _sample_scope(ctx)
        fingerprint = request_fingerprint(request)
        index = self._samples.reserve(grant.counting, fingerprint)
        answered = False
        try:
            replaying = self.cache is not None and self.cache.mode == "replay"
            if replaying:  # the recorded run checked its budgets here, before asking upstream
                self.budgets.check(ctx)
            key = self.cache.key(request, index, scope) if self.cache else ""
            cached = self.cache.get(key) if self.cache else None
            if cached is not None and "error" in cached:
                # A recorded refusal (see below): a replay sees it again; a live run asks again.
                if replaying:
                    self._count(cache_hits=1)
                    raise _recorded_refusal(cached)
                cached = None
            if cached is not None:
                if replaying:
                    self._spend_as_recorded(ctx, route, cached)
                answered = True
                self._count(cache_hits=1)
                self._meter(ctx, route.model, cached, 0.0, True, started)
                return cached
            if replaying:
                self._count(replay_misses=1)
                raise GatewayError(
                    f"replay mode: no cached answer for this request (model {route.model}, sample {index}, "
                    f"key {key[:12]}); the agent diverged from the recorded run",
                    status=404,
                    code="replay_miss",
                )
            first, flight = self._join_flight(key)
            if not first:  # this very call is on its way upstream for a job that died: share its answer
                response = flight.result()
                answered = True
                self._count(cache_hits=1)
                self._meter(ctx, route.model, response, 0.0, True, started)
                return response
            try:
                response = self._ask_upstream(ctx, route, request, key, index, scope, started)
                flight.set_result(response)
            except BaseException as exc:
                flight.set_exception(exc)
                raise
            finally:
                self._land_flight(key)
            answered = True
            return response
        finally:
            if not answered:
                self._samples.release(grant.counting, fingerprint, index)

    def _ask_upstream(self, ctx: CallContext, route: Route, request: dict, key: str, index: int, scope: str,
                      started: float) -> dict:
        self.budgets.check(ctx)
        self._count(upstream_calls=1)
        try:
            response = route.upstream.complete(request, ctx)
        except UpstreamError as exc:
            # The server refused this very request (prompt too long, tools not supported): it
            # would refuse it again, so a replay must see the same refusal, not a replay miss.
            if exc.status == 400:
                self._store(key, request, index, error_body(exc.status, exc.code, self._redact(str(exc))), scope)
            raise
        prompt, completion, cached_tokens = _usage_numbers(response)
        cost = 0.0 if route.is_scripted else self.prices.cost(route.model, prompt, completion, cached_tokens)
        self.budgets.charge(ctx, cost)
        self._store(key, request, index, response, scope)
        self._meter(ctx, route.model, response, cost, False, started)
        return response

    def _spend_as_recorded(self, ctx: CallContext, route: Route, recorded: dict) -> None:
        """A replay pays nothing, but its budgets count what the recorded run paid for each answer, so
        it meets the same budget refusals at the same calls (and stops where the recorded run stopped)."""
        if not route.is_scripted:
            self.budgets.charge(ctx, self.prices.cost(route.model, *_usage_numbers(recorded)))

    def _join_flight(self, key: str) -> tuple[bool, Future]:
        """(True, a new flight) for the first caller of `key`; (False, its flight) for a caller that
        asks the same sample while it is still upstream. That happens when a job's worker dies with a
        call in flight and the job, run again elsewhere, asks it again (retry_token): one payment."""
        with self._lock:
            if key and key in self._flights:
                return False, self._flights[key]
            flight: Future = Future()
            if key:
                self._flights[key] = flight
            return True, flight

    def _land_flight(self, key: str) -> None:
        with self._lock:
            self._flights.pop(key, None)

    def _store(self, key: str, request: dict, index: int, response: dict, scope: str) -> None:
        if not self.cache:
            return
        try:
            self.cache.put(key, request, index, response, scope)
        except OSError as exc:  # a paid answer is still returned; only its replay is lost
            log.error("gateway: cannot write cache entry %s: %s", key[:12], exc)

    def _meter(self, ctx: CallContext, model: str, response: Mapping, cost: float, hit: bool, started: float,
               error: str | None = None) -> None:
        if self.sink is None:
            return
        prompt, completion, cached = _usage_numbers(response)
        record = UsageRecord(ctx, model, prompt, completion, cached, cost, hit, time.monotonic() - started, error)
        try:
            self.sink.record_llm_call(record)
        except Exception:
            log.exception("gateway: the usage sink failed to record a call (cost $%.6f)", cost)

    def _redact(self, text: str) -> str:
        for route in self.routes.values():
            text = route.redact(text)
        return text

    def models_for(self, token: str | None) -> tuple[int, dict]:
        grant = self._grant(token) if token else None
        if grant is None:
            return 401, error_body(401, "invalid_api_key", "unknown or revoked gateway token")
        route = self.routes[grant.alias]
        entry = {"id": grant.alias, "object": "model", "created": 0, "owned_by": "dgm-gateway",
                 "context_window": route.context_window}
        return 200, {"object": "list", "data": [entry]}

    # -- HTTP layer ----------------------------------------------------------------------------
    def _build_app(self) -> FastAPI:
        app = FastAPI(title="dgm LLM gateway", docs_url=None, redoc_url=None, openapi_url=None)

        def reply(status: int, payload: dict) -> JSONResponse:
            headers = {"x-should-retry": "false"} if status >= 400 else None
            return JSONResponse(payload, status_code=status, headers=headers)

        def bearer(request: Request) -> str | None:
            auth = request.headers.get("authorization", "")
            return auth[7:].strip() if auth.lower().startswith("bearer ") else None

        @app.post("/v1/chat/completions")
        async def chat_completions(request: Request) -> JSONResponse:
            raw = await request.body()
            # Upstream calls block for seconds to minutes: run them in the thread pool.
            try:
                return reply(*await run_in_threadpool(self.handle_chat, bearer(request), raw))
            except asyncio.CancelledError:
                # stop() gave in-flight calls a grace period and they outlived it: abandon them with
                # one line each, not a traceback (the caller, if still there, gets a clear 503).
                log.warning("gateway: stopped while a call was still waiting on the upstream; abandoned it "
                            "(if the upstream finishes it, it is paid but not metered)")
                return reply(503, error_body(503, "gateway_stopped", "the dgm gateway stopped during this call"))

        @app.get("/v1/models")
        async def list_models(request: Request) -> JSONResponse:
            return reply(*self.models_for(bearer(request)))

        @app.exception_handler(StarletteHTTPException)
        async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
            return reply(exc.status_code, error_body(exc.status_code, "not_found", f"{request.method} "
                         f"{request.url.path}: {exc.detail} (the gateway serves /v1/chat/completions, /v1/models)"))

        return app

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self, timeout: float = 10.0) -> "Gateway":
        if self._thread is not None:
            raise RuntimeError("gateway already started")
        remove_stale_gateway_dirs()
        # A short fresh directory: Unix socket paths are limited to 108 bytes.
        self._dir = tempfile.mkdtemp(prefix=GATEWAY_DIR_PREFIX)
        self.socket_path = Path(self._dir) / "llm.sock"
        uds = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        uds.bind(str(self.socket_path))
        # The token is the access control; a sandbox may run the agent under another uid.
        os.chmod(self.socket_path, 0o666)
        sockets = [uds]
        if self.tcp:
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            tcp.bind((self.tcp_host, 0))
            self.tcp_port = tcp.getsockname()[1]
            sockets.append(tcp)
        config = uvicorn.Config(self.app, log_level="warning", access_log=False, lifespan="off",
                                timeout_graceful_shutdown=self.shutdown_grace_s)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": sockets}, name="dgm-llm-gateway", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the LLM gateway failed to start (see the log above)")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.config.timeout_graceful_shutdown = self.shutdown_grace_s
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=self.shutdown_grace_s + 15)
        self._server = self._thread = None
        if self._dir:
            shutil.rmtree(self._dir, ignore_errors=True)
        self._dir = None
        self.socket_path = None
        self.tcp_port = None

    def __enter__(self) -> "Gateway":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
