"""The real `ChatClient`: one configured model called through `litellm.acompletion`.

This is the only module that calls LiteLLM for chat; the embedded model is a
LiteLLM provider of its own (`gateway.upstream.local`), reached the same way.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any, TypeVar

import aiohttp
import httpx
import litellm

from gateway.config import ModelSettings
from gateway.errors import ModelUnavailable, UpstreamError, UpstreamTimeout
from gateway.upstream import dispatch, wire
from gateway.upstream.chat import MAX_ANSWER_CHARS, ChatReply, ChatRequest, TokenLogprobs
from gateway.upstream.redact import Redactor
from gateway.upstream.resilience import parse_retry_after

litellm.suppress_debug_info = True
litellm.drop_params = False  # a dropped `logprobs` would silently turn scores into guesses
if litellm.aclient_session is None:
    litellm.aclient_session = wire.bounded_session()  # what the OpenAI-compatible path may read

# Every configured upstream key, in any encoding, is scrubbed from every upstream's messages:
# an upstream may quote another alias's key as well as its own.
_redact = Redactor()
MAX_QUOTED_CHARS = 1000
# Alternatives read per generated token (OpenAI sends at most 20).
MAX_ALTERNATIVES = 64

LOCAL_PROVIDER = "local"  # litellm_model "local/<name>": the embedded model (gateway.upstream.local)
E = TypeVar("E", bound=BaseException)


class LiteLLMChatClient:
    """Calls one configured model through `litellm.acompletion`.

    Every argument comes from server-side config; nothing a client sends can
    reach `api_base`, `api_key` or extra LiteLLM parameters. The SDK's hidden
    retries are off (`max_retries=0`) so retry policy lives in one place.
    """

    def __init__(self, settings: ModelSettings) -> None:
        self.settings = settings
        self.api_base = settings.resolved_api_base()
        self.api_key = settings.resolved_api_key()
        if self.api_key:
            _redact.add(self.api_key)
        self.local_model = settings.litellm_model.removeprefix(f"{LOCAL_PROVIDER}/") \
            if settings.litellm_model.startswith(f"{LOCAL_PROVIDER}/") else None
        if self.local_model is not None:
            # The embedded model's provider, registered only when a config names it.
            from gateway.upstream import local as local_llm

            # Prompts are sized with tiktoken; SmolLM2's own tokenizer counts a few percent more
            # (up to 1.5x on odd passages), so the model gets a quarter more room than the budget.
            local_llm.register(n_ctx=settings.context_window + settings.context_window // 4,
                               n_threads=settings.n_threads)
        register_prices(settings)
        self.inline = dispatch.runs_inline(settings.litellm_model, self.api_base)
        # Keys, base URLs and installed packages do not change while the process runs, so
        # this is settled once here instead of on every request and call.
        self._unavailable = self._find_unavailable_reason()

    async def complete(self, request: ChatRequest) -> ChatReply:
        timeout = min(request.timeout or self.settings.timeout_seconds, self.settings.timeout_seconds)
        kwargs: dict[str, Any] = {
            "model": self.settings.litellm_model,
            "messages": request.messages,
            "temperature": 0,
            "max_tokens": request.max_tokens,
            # Always the model's own timeout: LiteLLM caches one HTTP client per distinct
            # timeout, so a per-call value would open (and leak) a client per call. The
            # shorter per-attempt limit is enforced around the call instead.
            "timeout": self.settings.timeout_seconds,
            "max_retries": 0,
            "api_base": self.api_base,
            "api_key": self._key(),
        }
        if request.top_logprobs:
            kwargs.update(logprobs=True, top_logprobs=request.top_logprobs)
        try:
            async with asyncio.timeout(timeout):
                with dispatch.inline_dispatch(self.inline):
                    response = await _send(kwargs)
        except (TimeoutError, litellm.Timeout) as exc:
            raise UpstreamTimeout(
                f"upstream model {self.settings.litellm_model} timed out after {timeout:g}s"
            ) from exc
        except Exception as exc:  # LiteLLM maps every provider failure onto its own tree
            too_large = _cause(exc, wire.AnswerTooLarge)
            if too_large is not None:
                raise UpstreamError(f"upstream model {self.settings.litellm_model} answered more than "
                                    f"{too_large.limit} bytes; the answer was refused unread") from exc
            summary, quoted = self.describe(exc)
            if connection_failure(exc) is not None:  # LiteLLM labels these HTTP 500; no response ever came
                raise UpstreamError(summary, retryable=True, code="upstream_unreachable") from exc
            status = getattr(exc, "status_code", None)
            raise UpstreamError(
                summary, quoted=quoted,
                status=status if isinstance(status, int) else None,
                retryable=_retryable(exc, status),
                retry_after=_retry_after(exc),
            ) from exc
        try:
            return self._reply(response, request)
        except (AttributeError, IndexError, TypeError, ValueError, OverflowError) as exc:
            raise UpstreamError(
                f"upstream model {self.settings.litellm_model} answered without a usable choice",
                retryable=True,
            ) from exc

    def _reply(self, response: Any, request: ChatRequest) -> ChatReply:
        """The answer, bounded: a prefix of its text, and usage no larger than the call could cost."""
        choice = response.choices[0]
        text = ((choice.message.content or "") if choice.message else "")[:MAX_ANSWER_CHARS]
        usage = getattr(response, "usage", None)
        # A prompt cannot be larger than the context it had to fit (the local model's has a margin).
        prompt = wire.usage_count(getattr(usage, "prompt_tokens", None), 2 * self.settings.context_window) or None
        completion = wire.usage_count(getattr(usage, "completion_tokens", None), request.max_tokens)
        if prompt is None:
            completion = None
        tokens = _token_logprobs(choice)
        return ChatReply(str(text), tokens[0][1] if tokens else [], prompt, completion, token_logprobs=tokens)

    def unavailable_reason(self) -> str | None:
        """Why this model cannot be called at all, or None when it can."""
        return self._unavailable

    def queue_status(self) -> dict[str, int] | None:
        """The embedded model's worker queue (queued, running, finished, cancelled); None for hosted models."""
        if self.local_model is None:
            return None
        from gateway.upstream import local as local_llm

        return local_llm.queue_stats().as_dict()

    def _find_unavailable_reason(self) -> str | None:
        if self.local_model is not None:
            from gateway.upstream import local as local_llm

            return local_llm.unavailable_reason(self.local_model)
        if self.api_key or self.api_base or not self.settings.api_key_env:
            return None
        return (
            f"model {self.settings.litellm_model!r} needs an API key: "
            f"environment variable {self.settings.api_key_env} is not set"
        )

    def _key(self) -> str | None:
        if self._unavailable:
            raise ModelUnavailable(self._unavailable)
        # Self-hosted OpenAI-compatible servers rarely check the key, but the SDK wants one.
        return self.api_key or ("no-key" if self.api_base else None)

    def describe(self, exc: Exception) -> tuple[str, str | None]:
        """(what failed, the upstream's reason) without LiteLLM's prefixes, tracebacks or any key."""
        refused = connection_failure(exc)
        if refused is not None:  # the reason is this host's, not text an upstream sent
            where = self.api_base or "its default API address"
            return (f"could not connect to upstream model {self.settings.litellm_model} at {where}: "
                    f"{scrub(str(refused) or type(refused).__name__)} (no HTTP response came)"), None
        status = getattr(exc, "status_code", None)
        reason = _LITELLM_PREFIX.sub("", str(getattr(exc, "message", None) or exc)) or type(exc).__name__
        where = f"HTTP {status}" if isinstance(status, int) else type(exc).__name__
        return f"upstream model {self.settings.litellm_model} failed ({where})", scrub(reason)


def scrub(message: str) -> str:
    """An upstream's message as the gateway may repeat it: bounded, without tracebacks or keys."""
    message = _TRACEBACK.split(message[: MAX_QUOTED_CHARS * 4], 1)[0].strip()
    return _redact(message)[:MAX_QUOTED_CHARS]


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """`exc`, then each exception of its cause/context chain, once (a chain may loop)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _cause(exc: BaseException, kind: type[E]) -> E | None:
    """`exc` or the first exception of its cause/context chain that is a `kind`."""
    return next((c for c in _chain(exc) if isinstance(c, kind)), None)


_RETRYABLE = (
    litellm.RateLimitError, litellm.InternalServerError, litellm.ServiceUnavailableError,
    litellm.BadGatewayError, litellm.APIConnectionError,
)


def _retryable(exc: Exception, status: object) -> bool:
    """429, 5xx and connection failures may pass; other 4xx will not."""
    if isinstance(exc, _RETRYABLE):
        return True
    return isinstance(status, int) and (status == 429 or status >= 500)


async def _send(kwargs: dict[str, Any]) -> Any:
    """One LiteLLM call, sent again at once if a pooled connection was closed before it was written.

    An upstream closes idle keep-alive connections on its own schedule; a request that
    picks one up just as it closes fails before a byte reaches the upstream. Sending it
    again is no retry: the upstream never saw it, so it costs no attempt, budget or
    breaker verdict. Only once, so a connection that always fails is still a failure.
    """
    try:
        return await litellm.acompletion(**kwargs)
    except Exception as exc:
        # Raised by the write to a connection that was already closing, before any byte left.
        if _cause(exc, aiohttp.ClientConnectionResetError) is None:
            raise
    return await litellm.acompletion(**kwargs)


def connection_failure(exc: BaseException) -> BaseException | None:
    """The innermost cause when `exc` is a failure to connect (refused, no route, no DNS), else None.

    LiteLLM wraps the OpenAI SDK's APIConnectionError (around httpx's ConnectError) in an
    InternalServerError with status 500, although no HTTP response ever came.
    """
    import openai

    connect, innermost = False, exc
    for cause in _chain(exc):
        if isinstance(cause, openai.APITimeoutError):
            return None
        if isinstance(cause, openai.APIConnectionError | httpx.ConnectError | ConnectionError):
            connect = True
        innermost = cause
    return innermost if connect else None


def _retry_after(exc: Exception) -> float | None:
    headers = getattr(exc, "litellm_response_headers", None) or getattr(
        getattr(exc, "response", None), "headers", None
    )
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return max(0.0, float(headers["retry-after-ms"]) / 1000)
    except (TypeError, ValueError):
        pass
    return parse_retry_after(headers.get("retry-after"))


_LITELLM_PREFIX = re.compile(r"^(litellm\.\w+: )?(\w+: )?(\w+Exception - )?")
_TRACEBACK = re.compile(r"Traceback \(most recent call last\)|received_args=")


# Answers are read from a bounded prefix; so are their logprobs.
MAX_LOGPROB_TOKENS = 2048


def _token_logprobs(choice: Any) -> list[TokenLogprobs]:
    """Each generated token with its alternatives, most likely first; [] without logprobs."""
    logprobs = _get(choice, "logprobs")
    content = _get(logprobs, "content") if logprobs is not None else None
    if not content:
        return []
    tokens = []
    for entry in content[:MAX_LOGPROB_TOKENS]:
        if isinstance(entry, dict):
            token, alternatives = entry.get("token"), entry.get("top_logprobs") or []
            pairs = [(str(a.get("token"))[:64], float(a.get("logprob"))) for a in alternatives[:MAX_ALTERNATIVES]]
        else:  # LiteLLM's objects: plain attribute reads (this runs for every generated token)
            token, alternatives = entry.token, entry.top_logprobs or []
            pairs = [(str(a.token)[:64], float(a.logprob)) for a in alternatives[:MAX_ALTERNATIVES]]
        pairs.sort(key=lambda pair: pair[1], reverse=True)
        tokens.append((str(token or "")[:64], pairs))
    return tokens


def _get(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)


def register_prices(settings: ModelSettings) -> None:
    """Tell LiteLLM the model's price so it stops searching its map on every call."""
    provider, _, name = settings.litellm_model.partition("/")
    if not name:
        return
    entry = {
        "input_cost_per_token": settings.input_cost_per_million / 1e6,
        "output_cost_per_token": settings.output_cost_per_million / 1e6,
        "litellm_provider": provider,
        "mode": "chat",
    }
    litellm.register_model({name: entry, settings.litellm_model: entry})
