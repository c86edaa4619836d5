"""LiteLLMChatClient against the fake upstream over real HTTP."""

from __future__ import annotations

import aiohttp
import litellm
import pytest

from gateway.config import ModelSettings
from gateway.errors import ModelUnavailable, UpstreamError, UpstreamTimeout
from gateway.upstream.chat import ChatRequest
from gateway.upstream.litellm_client import LiteLLMChatClient, scrub
from tests.support.fake_upstream import FakeUpstream

KEY = "sk-test-secret-key-123456"
PASSAGE = "Query: capital of france\n\n<passage>\nParis is the capital of France\n</passage>"
POINTWISE = [{"role": "system", "content": "Rate."}, {"role": "user", "content": PASSAGE}]


def client(upstream: FakeUpstream, model: str, monkeypatch: pytest.MonkeyPatch, **extra: object) -> LiteLLMChatClient:
    monkeypatch.setenv("TEST_UPSTREAM_KEY", KEY)
    settings = ModelSettings(litellm_model=f"openai/{model}", api_base=f"http://127.0.0.1:{upstream.port}/v1",
                             api_key_env="TEST_UPSTREAM_KEY", **extra)  # type: ignore[attr-defined,arg-type]
    return LiteLLMChatClient(settings)


@pytest.mark.anyio
async def test_request_is_deterministic_and_authenticated(upstream: FakeUpstream, monkeypatch) -> None:
    reply = await client(upstream, "judge", monkeypatch).complete(ChatRequest(POINTWISE, max_tokens=1, top_logprobs=5))
    sent = upstream.last_request
    assert (sent["temperature"], sent["max_tokens"], sent["logprobs"], sent["top_logprobs"]) == (0, 1, True, 5)
    assert upstream.last_headers["authorization"] == f"Bearer {KEY}"
    assert reply.text == "2" and reply.prompt_tokens and reply.completion_tokens == 1
    assert reply.top_logprobs[0][0] == "2"
    assert [lp for _, lp in reply.top_logprobs] == sorted((lp for _, lp in reply.top_logprobs), reverse=True)


@pytest.mark.anyio
async def test_no_logprobs_are_asked_for_unless_wanted(upstream: FakeUpstream, monkeypatch) -> None:
    reply = await client(upstream, "judge", monkeypatch).complete(ChatRequest(POINTWISE, max_tokens=3))
    assert "logprobs" not in upstream.last_request and reply.top_logprobs == []


@pytest.mark.anyio
async def test_missing_usage_is_reported_as_unknown(upstream: FakeUpstream, monkeypatch) -> None:
    reply = await client(upstream, "judge-nousage", monkeypatch).complete(ChatRequest(POINTWISE, max_tokens=1))
    assert (reply.prompt_tokens, reply.completion_tokens) == (None, None)


@pytest.mark.anyio
async def test_a_failure_is_one_attempt_no_hidden_sdk_retries(upstream: FakeUpstream, monkeypatch) -> None:
    before = upstream.calls["fail500"]
    with pytest.raises(UpstreamError, match=r"HTTP 500\): upstream exploded"):
        await client(upstream, "fail500", monkeypatch).complete(ChatRequest(POINTWISE, max_tokens=1))
    assert upstream.calls["fail500"] - before == 1


def closed_pool_connection(times: int, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The first `times` sends fail as a pooled connection closing under the write does (wrapped
    as LiteLLM wraps it); later ones go to the upstream over real HTTP. The race itself cannot
    be produced on demand, so only its error is injected."""
    real, failed = litellm.acompletion, [0]

    async def acompletion(**kwargs: object) -> object:
        if failed[0] < times:
            failed[0] += 1
            try:
                raise aiohttp.ClientConnectionResetError("Cannot write to closing transport")
            except aiohttp.ClientConnectionResetError as exc:
                raise litellm.InternalServerError("Connection error.", "openai", str(kwargs["model"])) from exc
        return await real(**kwargs)

    monkeypatch.setattr(litellm, "acompletion", acompletion)
    return failed


@pytest.mark.anyio
async def test_a_request_a_closing_pooled_connection_never_sent_is_sent_again_once(
    upstream: FakeUpstream, monkeypatch
) -> None:
    chat = client(upstream, "judge", monkeypatch)
    before = upstream.calls["judge"]
    closed_pool_connection(1, monkeypatch)
    reply = await chat.complete(ChatRequest(POINTWISE, max_tokens=1))  # no attempt or retry spent on it
    assert reply.text and upstream.calls["judge"] - before == 1


@pytest.mark.anyio
async def test_a_connection_that_keeps_closing_is_still_a_failure(upstream: FakeUpstream, monkeypatch) -> None:
    chat = client(upstream, "judge", monkeypatch)
    failed = closed_pool_connection(5, monkeypatch)
    with pytest.raises(UpstreamError) as raised:
        await chat.complete(ChatRequest(POINTWISE, max_tokens=1))
    assert failed[0] == 2 and raised.value.code == "upstream_unreachable" and raised.value.retryable


@pytest.mark.anyio
async def test_upstream_messages_never_carry_a_key(upstream: FakeUpstream, monkeypatch) -> None:
    with pytest.raises(UpstreamError) as error:
        await client(upstream, "fail401", monkeypatch).complete(ChatRequest(POINTWISE, max_tokens=1))
    assert "HTTP 401" in error.value.message and "Incorrect API key provided: ***" in error.value.message
    assert "sk-test" not in error.value.message


@pytest.mark.anyio
async def test_a_slow_upstream_is_a_timeout(upstream: FakeUpstream, monkeypatch) -> None:
    slow = client(upstream, "slow", monkeypatch, timeout_seconds=0.3)
    with pytest.raises(UpstreamTimeout, match="timed out after 0.3s"):
        await slow.complete(ChatRequest(POINTWISE, max_tokens=1))


def test_a_missing_key_makes_a_hosted_model_unavailable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    hosted = LiteLLMChatClient(ModelSettings(litellm_model="openai/gpt-4o", api_key_env="NOT_SET_KEY"))
    assert "NOT_SET_KEY is not set" in (hosted.unavailable_reason() or "")
    self_hosted = LiteLLMChatClient(ModelSettings(
        litellm_model="openai/m", api_base="http://127.0.0.1:1/v1", api_key_env="NOT_SET_KEY"))
    assert self_hosted.unavailable_reason() is None


@pytest.mark.anyio
async def test_an_unavailable_model_raises_before_any_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOT_SET_KEY", raising=False)
    hosted = LiteLLMChatClient(ModelSettings(litellm_model="openai/gpt-4o", api_key_env="NOT_SET_KEY"))
    with pytest.raises(ModelUnavailable):
        await hosted.complete(ChatRequest(POINTWISE, max_tokens=1))


def test_scrub_removes_the_configured_key_and_key_like_strings(upstream: FakeUpstream, monkeypatch) -> None:
    client(upstream, "judge", monkeypatch)  # configuring a client registers its key
    assert scrub(f"bad key {KEY} or sk-live-ABCDEFGH123 here") == "bad key *** or *** here"
