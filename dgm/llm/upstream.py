"""Upstream models: where the gateway forwards requests, and how.

An alias (a model role: "task", "self_modify", "diagnosis") maps to a `Route`: an upstream plus the real model name and
per-model settings. Settings say what a model accepts (system role, temperature, tools, which
max-tokens field, output cap, context window); `apply_settings` is the one place a request is
adapted to a model, instead of string matching on model names all over the code.

Real servers differ from OpenAI in small ways, handled here once: content null next to tool
calls, tool-call arguments as objects or without ids (`normalize_response`), their own error
bodies for "prompt too long" and "no tools" (`_classify_status`), `/v1/models` missing or
authenticated differently, and where they report their context window (`preflight`).

`OpenAIUpstream` talks to any OpenAI-compatible base_url with the `openai` client. The API key
is read once, at construction, from the host environment variable *named* in the config; it is
never logged, and error messages are scrubbed of it before they leave this module.
Transient faults (429, 5xx, timeouts, connection errors, malformed answers) are retried with
exponential backoff and jitter (tenacity), honouring Retry-After.
"""

from __future__ import annotations

import dataclasses
import email.utils
import json
import logging
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import httpx2
import openai
import tenacity

from dgm.llm.base import CallContext, ContextOverflow, Upstream, UpstreamError
from dgm.llm.pricing import PriceTable, UnknownPrice

log = logging.getLogger(__name__)

DEFAULT_OPENAI_BASE_URL = "https://api.openai.com/v1"
# Output cap of a request that names none (or a larger one); a model's settings may change it.
DEFAULT_MAX_OUTPUT_TOKENS = 8192
PROVIDERS = ("openai", "scripted")


class ConfigError(ValueError):
    """An `llm.<role>` config entry is wrong; the message names the role and the key."""


class PreflightError(RuntimeError):
    """An upstream is not usable (unreachable, key rejected, model missing)."""


class TransientUpstreamError(UpstreamError):
    """A fault worth retrying; `retry_after` is the server's hint in seconds, if it gave one."""

    def __init__(self, message: str, *, status: int, code: str, retry_after: float | None = None):
        super().__init__(message, status=status, code=code)
        self.retry_after = retry_after


def _known_fields_only(cls, raw: Mapping[str, Any] | None, where: str, what: str) -> dict[str, Any]:
    """`raw` as a dict, after checking that every key is a field of dataclass `cls`."""
    raw = dict(raw or {})
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown {what} {sorted(unknown)} (known: {sorted(known)})")
    return raw


# -- per-model settings ----------------------------------------------------------------------
@dataclass(frozen=True)
class ModelSettings:
    supports_system_role: bool = True
    supports_temperature: bool = True  # o-series reasoning models reject temperature/top_p
    supports_tools: bool = True  # False: requests with tools get a clear "tools_unsupported" 400
    max_context_tokens: int | None = None  # the context window; None: learnt from the server at preflight
    max_output_tokens: int = DEFAULT_MAX_OUTPUT_TOKENS  # every request is capped at this many output tokens
    reasoning_effort: str | None = None  # "low" | "medium" | "high" for reasoning models
    max_tokens_param: str = "max_tokens"  # o-series want "max_completion_tokens"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str) -> "ModelSettings":
        raw = _known_fields_only(cls, raw, where, "model settings")
        if raw.get("max_tokens_param", "max_tokens") not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"{where}.max_tokens_param must be max_tokens or max_completion_tokens")
        for key in ("max_output_tokens", "max_context_tokens"):
            value = raw.get(key)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"{where}.{key} must be a positive integer, got {value!r}")
        return cls(**raw)


def apply_settings(
    request: dict, model: str, settings: ModelSettings, extra_params: Mapping[str, Any] | None = None
) -> dict:
    """The request as this model should receive it. Idempotent: applying it twice changes nothing."""
    req = dict(request)
    req["model"] = model
    if not settings.supports_temperature:
        req.pop("temperature", None)
        req.pop("top_p", None)
    if not settings.supports_system_role and "messages" in req:
        # Models without a system role still get the instructions, as a user turn.
        req["messages"] = [
            dict(m, role="user") if isinstance(m, dict) and m.get("role") in ("system", "developer") else m
            for m in req["messages"]
        ]
    if "messages" in req:
        req["messages"] = [_portable_message(m) for m in req["messages"]]
    # Every request gets an output cap: a weak model that never stops would otherwise never return.
    param = settings.max_tokens_param
    asked = [req.pop(k) for k in ("max_tokens", "max_completion_tokens") if k in req]
    asked = [n for n in asked if isinstance(n, int) and n > 0]
    req[param] = min([*asked, settings.max_output_tokens])
    if settings.reasoning_effort is not None:
        req["reasoning_effort"] = settings.reasoning_effort
    req.update(extra_params or {})
    return req


def _portable_message(message: Any) -> Any:
    """An assistant turn with tool calls and no text, as every server accepts it: content null.

    Clients send "" (or leave content out) next to tool calls; Anthropic's endpoint rejects
    an empty text block and some servers reject a missing key. OpenAI's own form is null.
    """
    if isinstance(message, dict) and message.get("role") == "assistant" and message.get("tool_calls"):
        if not message.get("content"):
            return {**message, "content": None}
    return message


# -- retries ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 6
    max_seconds: float = 600.0  # give up retrying after this long (the last attempt may still run)
    wait_initial: float = 1.0  # first backoff, doubled each retry, plus up to `jitter` random seconds
    wait_max: float = 60.0
    jitter: float = 1.0
    wait_scale: float = 1.0  # multiplies every wait (incl. Retry-After); tests set it tiny
    timeout_s: float = 600.0  # per HTTP request to the upstream

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str) -> "RetryPolicy":
        policy = cls(**_known_fields_only(cls, raw, where, "retry keys"))
        if policy.max_attempts < 1:
            raise ConfigError(f"{where}.max_attempts must be >= 1, got {policy.max_attempts}")
        return policy


def _retry_after_seconds(headers: Any) -> float | None:
    value = headers.get("retry-after") if headers is not None else None
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:  # HTTP-date form
        when = email.utils.parsedate_to_datetime(value)
        return max(when.timestamp() - time.time(), 0.0)
    except (TypeError, ValueError):
        return None


# How servers say "the prompt does not fit": OpenAI and vLLM ("maximum context length"), Anthropic
# ("prompt is too long"), llama.cpp ("exceeds the available context size", type exceed_context_size_error).
_OVERFLOW_PATTERNS = re.compile(
    r"maximum context length|context[_ ]length[_ ]exceeded|context window|prompt is too long|too many tokens"
    r"|exceeds? the available context size|exceed_context_size",
    re.IGNORECASE,
)
# How servers say "this model (or this launch of me) cannot take `tools`": Ollama ("does not support
# tools"), vLLM ("auto" tool choice requires --enable-auto-tool-choice), llama.cpp without --jinja,
# OpenRouter ("No endpoints found that support tool use").
_NO_TOOLS_PATTERNS = re.compile(
    r"does not support tools|tool choice requires|tools param requires|tools? (are|is) not supported"
    r"|support tool use",
    re.IGNORECASE,
)


def is_context_overflow(code: str | None, message: str) -> bool:
    return code == "context_length_exceeded" or bool(_OVERFLOW_PATTERNS.search(message or ""))


def _error_detail(exc: openai.APIStatusError) -> tuple[str | None, str]:
    """(code, message) from an upstream error body, whatever shape the server used.

    A numeric `code` (llama.cpp repeats the HTTP status there) says nothing; its `type` does.
    """
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or json.dumps(body)[:500]
        code = body.get("code")
        if code is None or isinstance(code, int) or str(code).isdigit():
            code = body.get("type") if isinstance(body.get("type"), str) else None
        return (str(code) if code is not None else None), str(message)
    return None, str(body if body is not None else exc.message)[:500]


def normalize_response(data: Any) -> Any:
    """Smooth over servers' variations of a chat.completion, before it is checked.

    Tool-call arguments given as a JSON object (not a string) are serialised; tool calls
    without an id or type get them (the agent must echo an id back in its tool message).
    """
    choices = data.get("choices") if isinstance(data, dict) else None
    for choice in choices if isinstance(choices, list) else []:
        message = choice.get("message") if isinstance(choice, dict) else None
        calls = message.get("tool_calls") if isinstance(message, dict) else None
        for call in calls if isinstance(calls, list) else []:
            if not isinstance(call, dict):
                continue
            call.setdefault("type", "function")
            if not call.get("id"):  # unique in the conversation: some servers insist
                call["id"] = f"call_{secrets.token_hex(8)}"
            fn = call.get("function")
            if isinstance(fn, dict) and isinstance(fn.get("arguments"), (dict, list)):
                fn["arguments"] = json.dumps(fn["arguments"])
    return data


def check_response(data: Any) -> None:
    """Raise ValueError if `data` is not a usable chat.completion.

    Tool-call *arguments* that are not valid JSON are passed through: that is model behaviour
    the agent must handle. A broken *structure* is the server's fault.
    """
    if not isinstance(data, dict):
        raise ValueError("response is not a JSON object")
    if "error" in data and "choices" not in data:
        raise ValueError(f"response is an error object: {str(data['error'])[:300]}")
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("response has no choices")
    for choice in choices:
        message = choice.get("message") if isinstance(choice, dict) else None
        if not isinstance(message, dict):
            raise ValueError("a choice has no message object")
        calls = message.get("tool_calls")
        if calls is None:
            continue
        if not isinstance(calls, list):
            raise ValueError("message.tool_calls is not a list")
        for call in calls:
            fn = call.get("function") if isinstance(call, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                raise ValueError("a tool call has no function name")
            if not isinstance(fn.get("arguments"), str):
                raise ValueError(f"tool call {fn.get('name')!r} has non-string arguments")


# -- the OpenAI-compatible upstream ----------------------------------------------------------
class OpenAIUpstream:
    """Any OpenAI-compatible chat.completions endpoint."""

    is_scripted = False

    def __init__(
        self,
        base_url: str,
        api_key_env: str | None,
        model: str,
        extra_params: Mapping[str, Any] | None = None,
        settings: ModelSettings | None = None,
        *,
        retry: RetryPolicy | None = None,
        name: str | None = None,
        sleep: Callable[[float], None] = time.sleep,
        require_key: bool = True,
    ):
        self.name = name or model
        self.base_url = base_url
        self.api_key_env = api_key_env
        self.model = model
        self.extra_params = dict(extra_params or {})
        self.settings = settings or ModelSettings()
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        key = os.environ.get(api_key_env) if api_key_env else "no-key"  # local servers need no key
        self._missing_key = (
            f"model {self.name!r}: environment variable {api_key_env} is not set "
            f"(it must hold the API key for {base_url})"
        )
        if not key:
            if require_key:
                raise ConfigError(self._missing_key)
            key = None  # replaying from the cache needs no key; a real call then fails clearly
        self._secret = key if api_key_env else None
        # Our own retry loop replaces the client's (max_retries=0) so waits are configurable.
        self._client = openai.OpenAI(
            base_url=base_url, api_key=key or "missing-key", max_retries=0, timeout=self.retry.timeout_s
        )
        self._has_key = key is not None

    def __repr__(self) -> str:  # never show the key
        return f"OpenAIUpstream(name={self.name!r}, base_url={self.base_url!r}, model={self.model!r})"

    def redact(self, text: str) -> str:
        return text.replace(self._secret, "[redacted]") if self._secret else text

    def prepare(self, request: dict) -> dict:
        return apply_settings(request, self.model, self.settings, self.extra_params)

    # one HTTP exchange, errors classified --------------------------------------------------
    def _send_once(self, request: dict, timeout: float | None = None) -> dict:
        where = f"upstream {self.base_url} (model {self.model})"
        try:
            options = {"timeout": timeout} if timeout is not None else {}
            response = self._client.post(
                "/chat/completions", body=request, cast_to=httpx2.Response, options=options
            )
            text = response.text
        except openai.APITimeoutError:
            raise TransientUpstreamError(f"{where} timed out", status=504, code="upstream_timeout") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise TransientUpstreamError(
                self.redact(f"{where} connection failed: {type(cause).__name__}: {cause}"),
                status=502,
                code="upstream_unreachable",
            ) from None
        except openai.APIStatusError as exc:
            raise self._classify_status(exc, where) from None
        except httpx2.HTTPError as exc:  # body read failures (truncated body) surface here
            raise TransientUpstreamError(
                self.redact(f"{where} broke off the answer: {type(exc).__name__}: {exc}"),
                status=502,
                code="upstream_unreachable",
            ) from None
        try:
            data = normalize_response(json.loads(text))
            check_response(data)
        except ValueError as exc:
            raise TransientUpstreamError(
                self.redact(f"{where} returned a malformed answer: {exc}"),
                status=502,
                code="upstream_malformed_response",
            ) from None
        return data

    def _classify_status(self, exc: openai.APIStatusError, where: str) -> UpstreamError:
        status = exc.status_code
        code, message = _error_detail(exc)
        message = self.redact(message)
        if status == 429:
            return TransientUpstreamError(
                f"{where} rate-limited the request (HTTP 429): {message}",
                status=429,
                code="rate_limited",
                retry_after=_retry_after_seconds(exc.response.headers),
            )
        if is_context_overflow(code, message):
            return ContextOverflow(f"{message} ({where})")
        if _NO_TOOLS_PATTERNS.search(message):  # some servers say these with a 500; retrying cannot help
            return UpstreamError(f"{where} does not accept tool calls: {message}", status=400, code="tools_unsupported")
        if status >= 500:
            return TransientUpstreamError(
                f"{where} failed (HTTP {status}): {message}",
                status=502,
                code="upstream_error",
                retry_after=_retry_after_seconds(exc.response.headers),
            )
        if status in (401, 403):
            # Not the agent's token: the gateway's own key was refused. Say which env var.
            return UpstreamError(
                f"{where} rejected the API key from ${self.api_key_env} (HTTP {status}): {message}"
                if self.api_key_env else f"{where} wants an API key; set api_key_env (HTTP {status}): {message}",
                status=502,
                code="upstream_auth_failed",
            )
        # Other 4xx: the request itself is wrong (bad tool schema, bad parameter); tell the agent.
        return UpstreamError(
            f"{where} refused the request (HTTP {status}): {message}",
            status=400 if status in (400, 404, 413, 422) else 502,
            code=code or "upstream_bad_request",
        )

    # the Upstream protocol -----------------------------------------------------------------
    def complete(self, request: dict, context: CallContext | None = None) -> dict:
        if not self._has_key:
            raise UpstreamError(self._missing_key, status=502, code="upstream_key_missing")
        prepared = self.prepare(request)
        policy = self.retry

        def wait(state: tenacity.RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome else None
            hint = getattr(exc, "retry_after", None)
            if hint is not None:
                seconds = min(hint, policy.wait_max)
            else:
                seconds = tenacity.wait_exponential_jitter(
                    multiplier=policy.wait_initial, max=policy.wait_max, jitter=policy.jitter
                )(state)
            log.info("retrying %s in %.3fs after: %s", self.name, seconds * policy.wait_scale, exc)
            return seconds * policy.wait_scale

        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type(TransientUpstreamError),
            stop=tenacity.stop_after_attempt(policy.max_attempts) | tenacity.stop_after_delay(policy.max_seconds),
            wait=wait,
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(self._send_once, prepared)
        except TransientUpstreamError as exc:
            attempts = retrying.statistics.get("attempt_number", 1)
            raise UpstreamError(f"{exc} (gave up after {attempts} attempts)", status=exc.status, code=exc.code) from None

    # preflight -----------------------------------------------------------------------------
    def preflight(self, alias: str, timeout: float = 30.0) -> dict | None:
        """Raise PreflightError unless the endpoint answers, accepts the key and has the model.
        Returns the answer to the 1-token test call, if one was made (it is paid: meter it).

        Also learns the context window the server reports, if the config did not give one.
        `/models` is only a hint: some servers do not serve it, or authenticate it differently
        (Anthropic's compatible endpoint), so anything but "unreachable" falls back to a 1-token call.
        """
        key = f"key from ${self.api_key_env}" if self.api_key_env else "no key: api_key_env is not set"
        where = f"model alias {alias!r} ({self.model} at {self.base_url}, {key})"
        if not self._has_key:
            raise PreflightError(f"{where}: environment variable {self.api_key_env} is not set")
        try:
            response = self._client.get("/models", cast_to=httpx2.Response, options={"timeout": timeout})
            listed = [m for m in response.json().get("data") or [] if isinstance(m, dict)]
        except openai.APIConnectionError as exc:
            raise PreflightError(f"{where}: cannot reach the server ({type(exc).__name__})") from None
        except (openai.APIError, ValueError, AttributeError):
            listed = []
        if self.settings.max_context_tokens is None:
            self.learnt_context_tokens = _context_window(listed, self.model)
            if self.learnt_context_tokens is None and any(m.get("owned_by") == "llamacpp" for m in listed):
                self.learnt_context_tokens = self._llama_cpp_context(timeout)
        if any(m.get("id") == self.model for m in listed):
            return None
        probe = self.prepare({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
        try:
            return self._send_once(probe, timeout=timeout)
        except UpstreamError as exc:
            raise PreflightError(f"{where}: a 1-token test call failed: {self.redact(str(exc))}") from None

    learnt_context_tokens: int | None = None

    def _llama_cpp_context(self, timeout: float) -> int | None:
        """llama.cpp's server tells its per-slot `--ctx-size` at /props (outside /v1)."""
        url = re.sub(r"/v1/?$", "", self.base_url.rstrip("/")) + "/props"
        try:
            props = self._client.get(url, cast_to=httpx2.Response, options={"timeout": timeout}).json()
            n_ctx = props["default_generation_settings"]["n_ctx"]
        except (openai.APIError, ValueError, KeyError, TypeError, AttributeError):
            return None
        return n_ctx if isinstance(n_ctx, int) and n_ctx > 0 else None


def _context_window(listed: list[dict], model: str) -> int | None:
    """The model's context window from a /models listing, in the fields servers use for it:
    vLLM `max_model_len`, OpenRouter `context_length`, others `context_window`."""
    for entry in listed:
        if entry.get("id") != model:
            continue
        for key in ("max_model_len", "context_length", "context_window"):
            value = entry.get(key)
            if isinstance(value, int) and value > 0:
                return value
    return None


# -- routes ----------------------------------------------------------------------------------
@dataclass
class Route:
    """What an alias means: which upstream, which real model, which settings."""

    alias: str
    upstream: Upstream
    model: str
    settings: ModelSettings = field(default_factory=ModelSettings)
    extra_params: dict = field(default_factory=dict)

    @property
    def is_scripted(self) -> bool:
        return bool(getattr(self.upstream, "is_scripted", False))

    def prepare(self, request: dict) -> dict:
        return apply_settings(request, self.model, self.settings, self.extra_params)

    @property
    def context_window(self) -> int | None:
        """Prompt + output tokens this model takes: from the config, else as learnt at preflight."""
        return self.settings.max_context_tokens or getattr(self.upstream, "learnt_context_tokens", None)

    def redact(self, text: str) -> str:
        redact = getattr(self.upstream, "redact", None)
        return redact(text) if redact else text


_OPENAI_KEYS = {"provider", "base_url", "api_key_env", "model", "settings", "extra_params", "retry"}


def _build_route(
    alias: str, entry: Mapping[str, Any], prices: PriceTable, scripted_kwargs: Mapping, require_keys: bool
) -> Route:
    where = f"llm.{alias}"
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a mapping, got {entry!r}")
    provider = entry.get("provider", "openai")
    if provider not in PROVIDERS:
        raise ConfigError(f"{where}.provider must be one of {PROVIDERS}, got {provider!r}")
    if provider == "scripted":
        from dgm.llm.scripted import ScriptedUpstream  # lazy: only test/offline runs need it

        unused = set(entry) & {"base_url", "api_key_env", "retry"}
        if unused:
            raise ConfigError(f"{where}: {sorted(unused)} mean nothing for provider 'scripted'; remove them")
        model = str(entry.get("model", "scripted"))
        settings = ModelSettings.from_dict(entry.get("settings"), f"{where}.settings")
        extra = dict(entry.get("extra_params") or {})
        # Any other keys are the scripted model's own options, plus what the caller passes.
        kwargs = {k: v for k, v in entry.items() if k not in ("provider", "model", "settings", "extra_params")}
        kwargs.update(scripted_kwargs)
        try:
            upstream = ScriptedUpstream(**kwargs)
        except TypeError as exc:
            raise ConfigError(f"{where}: bad options for the scripted model: {exc}") from None
        return Route(alias, upstream, model, settings, extra)

    unknown = set(entry) - _OPENAI_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(_OPENAI_KEYS)})")
    model = entry.get("model")
    if not isinstance(model, str) or not model:
        raise ConfigError(f"{where}.model must name the upstream model, got {model!r}")
    if prices.price(model) is None:
        raise ConfigError(f"{where}.model: {UnknownPrice(model)}")
    settings_raw = {**prices.default_settings(model), **dict(entry.get("settings") or {})}
    settings = ModelSettings.from_dict(settings_raw, f"{where}.settings")
    extra = entry.get("extra_params") or {}
    if not isinstance(extra, Mapping):
        raise ConfigError(f"{where}.extra_params must be a mapping, got {extra!r}")
    upstream = OpenAIUpstream(
        base_url=str(entry.get("base_url") or DEFAULT_OPENAI_BASE_URL),
        api_key_env=entry.get("api_key_env", "OPENAI_API_KEY"),
        model=model,
        extra_params=extra,
        settings=settings,
        retry=RetryPolicy.from_dict(entry.get("retry"), f"{where}.retry"),
        name=alias,
        require_key=require_keys,
    )
    return Route(alias, upstream, model, settings, dict(extra))


def build_upstreams(
    models_config: Mapping[str, Mapping[str, Any]],
    *,
    prices: PriceTable | None = None,
    scripted_kwargs: Mapping[str, Any] | None = None,
    require_keys: bool = True,
) -> dict[str, Route]:
    """alias -> Route from the model roles of a run config ({role: entry of `llm.<role>`}).

    `scripted_kwargs` are passed to every ScriptedUpstream (on top of the entry's own keys).
    `require_keys=False` (for replay from the cache) accepts unset API-key variables; a call that
    actually reaches such an upstream then fails with code "upstream_key_missing".
    """
    if not isinstance(models_config, Mapping) or not models_config:
        raise ConfigError("llm: must map at least one model role (e.g. 'task') to a model entry")
    prices = prices or PriceTable.load()
    scripted_kwargs = scripted_kwargs or {}
    return {
        alias: _build_route(alias, entry, prices, scripted_kwargs, require_keys)
        for alias, entry in models_config.items()
    }


def preflight(route: Route, timeout: float = 30.0) -> dict | None:
    """Check a route can answer before a run spends hours; raises PreflightError naming the alias.
    Returns the answer to a test call, if one was made."""
    check = getattr(route.upstream, "preflight", None)
    if route.is_scripted or check is None:
        return None
    return check(route.alias, timeout=timeout)
