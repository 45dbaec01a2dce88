"""Upstream models: where the gateway forwards requests, and how.

An alias (a model role: "task", "self_modify", "diagnosis") maps to a `Route`: an upstream plus the real model name and
per-model settings. Settings say what a model accepts (system role, temperature, tools, which
max-tokens field); `apply_settings` is the one place a request is adapted to a model, instead
of string matching on model names all over the code.

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
    max_context_tokens: int | None = None  # advertised in /v1/models
    reasoning_effort: str | None = None  # "low" | "medium" | "high" for reasoning models
    max_tokens_param: str = "max_tokens"  # o-series want "max_completion_tokens"

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | None, where: str) -> "ModelSettings":
        raw = _known_fields_only(cls, raw, where, "model settings")
        if raw.get("max_tokens_param", "max_tokens") not in ("max_tokens", "max_completion_tokens"):
            raise ConfigError(f"{where}.max_tokens_param must be max_tokens or max_completion_tokens")
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
    other = "max_tokens" if settings.max_tokens_param == "max_completion_tokens" else "max_completion_tokens"
    if other in req and settings.max_tokens_param not in req:
        req[settings.max_tokens_param] = req.pop(other)
    if settings.reasoning_effort is not None:
        req["reasoning_effort"] = settings.reasoning_effort
    req.update(extra_params or {})
    return req


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


_OVERFLOW_PATTERNS = re.compile(
    r"maximum context length|context[_ ]length[_ ]exceeded|context window|prompt is too long|too many tokens",
    re.IGNORECASE,
)


def is_context_overflow(code: str | None, message: str) -> bool:
    return code == "context_length_exceeded" or bool(_OVERFLOW_PATTERNS.search(message or ""))


def _error_detail(exc: openai.APIStatusError) -> tuple[str | None, str]:
    """(code, message) from an upstream error body, whatever shape the server used."""
    body = exc.body
    if isinstance(body, dict):
        message = body.get("message") or json.dumps(body)[:500]
        return (str(body["code"]) if body.get("code") is not None else None), str(message)
    return None, str(body if body is not None else exc.message)[:500]


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
            data = json.loads(text)
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
        if status >= 500:
            return TransientUpstreamError(
                f"{where} failed (HTTP {status}): {message}",
                status=502,
                code="upstream_error",
                retry_after=_retry_after_seconds(exc.response.headers),
            )
        if is_context_overflow(code, message):
            return ContextOverflow(f"{message} ({where})")
        if status in (401, 403):
            # Not the agent's token: the gateway's own key was refused. Say which env var.
            return UpstreamError(
                f"{where} rejected the API key from ${self.api_key_env} (HTTP {status}): {message}",
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
    def preflight(self, alias: str, timeout: float = 30.0) -> None:
        """Raise PreflightError unless the endpoint answers, accepts the key and has the model."""
        where = f"model alias {alias!r} ({self.model} at {self.base_url}, key from ${self.api_key_env or '-'})"
        if not self._has_key:
            raise PreflightError(f"{where}: environment variable {self.api_key_env} is not set")
        try:
            listed = {m.id for m in self._client.with_options(timeout=timeout).models.list()}
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise PreflightError(f"{where}: the API key was rejected (HTTP {exc.status_code})") from None
        except openai.APIConnectionError as exc:
            raise PreflightError(f"{where}: cannot reach the server ({type(exc).__name__})") from None
        except openai.APIError:
            listed = set()  # some servers have no /models; fall back to a 1-token call
        if self.model in listed:
            return
        probe = self.prepare({"messages": [{"role": "user", "content": "ping"}], "max_tokens": 1})
        try:
            self._send_once(probe, timeout=timeout)
        except UpstreamError as exc:
            raise PreflightError(f"{where}: a 1-token test call failed: {self.redact(str(exc))}") from None


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


def preflight(route: Route, timeout: float = 30.0) -> None:
    """Check a route can answer before a run spends hours; raises PreflightError naming the alias."""
    check = getattr(route.upstream, "preflight", None)
    if route.is_scripted or check is None:
        return
    check(route.alias, timeout=timeout)
