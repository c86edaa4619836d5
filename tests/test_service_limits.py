"""The service's limits, in process over a scripted chat client: what is cached, what is refused before any call."""

from __future__ import annotations

import pytest

from gateway.config import LimitsSettings, ModelSettings, Settings
from gateway.errors import InvalidRequest
from gateway.service import RerankQuery, RerankService
from gateway.strategies.registry import build_strategies
from gateway.strategies.tokens import count_messages
from gateway.upstream.chat import ChatReply, MockChatClient
from gateway.upstream.runtime import ModelRuntime
from tests.support.scripted import ENC, PROMPTS

DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "France borders Spain."]


def service(handler, **limits: int) -> tuple[RerankService, MockChatClient]:  # noqa: ANN001
    model = ModelSettings(litellm_model="openai/m", api_base="http://127.0.0.1:9/v1", mode="pointwise",
                          logprobs=False, context_window=16_000, encoding="cl100k_base")
    settings = Settings(builtin_models=False, default_model="m", models={"m": model}, limits=LimitsSettings(**limits))
    chat = MockChatClient(handler)
    runtime = {"m": ModelRuntime("m", model, chat)}
    return RerankService(settings, runtime, build_strategies(settings, PROMPTS)), chat


def label(text: str):  # noqa: ANN201
    return lambda request: ChatReply(text, prompt_tokens=10, completion_tokens=1)


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["sliding", "tdpart", "pointwise", "batched"])
async def test_an_answer_with_parse_failures_is_never_cached(mode: str) -> None:
    rerank, chat = service(label("I cannot help with that."))
    first = await rerank.rerank(RerankQuery("capital", DOCS, mode=mode))
    second = await rerank.rerank(RerankQuery("capital", DOCS, mode=mode))
    assert first.meta.parse_failures and not second.hit and len(chat.requests) == 2 * first.meta.llm_calls


@pytest.mark.anyio
async def test_a_usable_answer_is_cached() -> None:
    rerank, chat = service(label("2"))
    await rerank.rerank(RerankQuery("capital", DOCS))
    assert (await rerank.rerank(RerankQuery("capital", DOCS))).hit and len(chat.requests) == len(DOCS)


@pytest.mark.anyio
@pytest.mark.parametrize(("field", "code"), [("query", "query_too_long"), ("instruction", "instruction_too_long")])
async def test_text_repeated_in_every_call_is_refused_past_its_tokens_before_any_call(field: str, code: str) -> None:
    rerank, chat = service(label("2"), max_query_tokens=50, max_instruction_tokens=20)
    text = "word " * 60
    query = RerankQuery(text if field == "query" else "q", DOCS, instruction=text if field == "instruction" else None)
    with pytest.raises(InvalidRequest) as error:
        await rerank.rerank(query)
    assert error.value.code == code and "tokens" in error.value.message and chat.requests == []


@pytest.mark.anyio
@pytest.mark.parametrize("mode", ["sliding", "tdpart", "pointwise", "batched"])
async def test_every_call_pays_for_the_query_and_instruction_at_most_their_limits(mode: str) -> None:
    """The class of item 3: whatever is repeated per call costs at most its limit in every call."""
    rerank, chat = service(label("2"), max_query_tokens=400, max_instruction_tokens=200)
    query = RerankQuery("capital " * 399, DOCS * 10, mode=mode, instruction="rank well " * 66)
    plain = RerankQuery("capital", DOCS * 10, mode=mode)
    await rerank.rerank(query)
    heavy = [count_messages(ENC, r.messages) for r in chat.requests]
    chat.requests.clear()
    await rerank.rerank(plain)
    light = [count_messages(ENC, r.messages) for r in chat.requests]
    assert len(heavy) == len(light)
    repeats = 2 if mode in ("sliding", "tdpart") else 1  # the listwise prompt states the query twice
    for big, small in zip(heavy, light, strict=True):
        assert big - small <= repeats * 400 + 200 + 10


@pytest.mark.anyio
async def test_completion_tokens_are_never_billed_past_what_was_asked() -> None:
    rerank, _ = service(lambda request: ChatReply("2", prompt_tokens=10, completion_tokens=1_250_005))
    answer = await rerank.rerank(RerankQuery("capital", DOCS))
    assert answer.completion_tokens == len(DOCS) * 3  # 3 tokens asked per document without logprobs

