"""The rerank use case with in-process models: document budgets, request fallbacks, what meta says."""

from __future__ import annotations

import pytest

from gateway.config import CacheSettings, ModelSettings, Settings
from gateway.errors import UpstreamError
from gateway.service import RerankQuery, RerankService
from gateway.strategies.registry import build_strategies
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from gateway.upstream.runtime import ModelRuntime
from tests.support.scripted import PROMPTS

DOCS = [f"document number {i}" for i in range(6)]


def graded_by_position(request: ChatRequest) -> ChatReply:
    """A pointwise model that prefers later documents: label = the document's number mod 4."""
    number = int(request.messages[-1]["content"].split("document number ")[1][0])
    return ChatReply(str(min(3, number)), prompt_tokens=10, completion_tokens=1)


def unreachable(request: ChatRequest) -> ChatReply:
    raise UpstreamError("could not connect to upstream model openai/x at http://127.0.0.1:9/v1: refused",
                        retryable=True, code="upstream_unreachable")


def bad_key(request: ChatRequest) -> ChatReply:
    raise UpstreamError("upstream model openai/x failed (HTTP 401): invalid key", status=401, retryable=False)


def service(models: dict[str, tuple[ModelSettings, MockChatClient]], default: str = "main",
            **extra: object) -> RerankService:
    settings = Settings(builtin_models=False, default_model=default,  # type: ignore[arg-type]
                        models={alias: s for alias, (s, _) in models.items()}, **extra)
    runtimes = {alias: ModelRuntime(alias, s, chat) for alias, (s, chat) in models.items()}
    return RerankService(settings, runtimes, build_strategies(settings, PROMPTS))


def pointwise(**extra: object) -> ModelSettings:
    return ModelSettings(litellm_model="openai/x", mode="pointwise", logprobs=False, **extra)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_a_document_budget_ranks_the_first_n_and_keeps_the_rest_in_the_callers_order() -> None:
    chat = MockChatClient(graded_by_position)
    answer = await service({"main": (pointwise(max_ranked_documents=3), chat)}).rerank(RerankQuery("q", DOCS))
    assert len(chat.requests) == 3
    assert [i for i, _ in answer.results] == [2, 1, 0, 3, 4, 5]
    assert answer.meta.ranked_documents == 3 and answer.documents == 6
    assert answer.meta.warnings == ["'main' ranked only the first 3 of 6 documents (max_ranked_documents); "
                                    "the other 3 follow in your order"]
    scores = [s for _, s in answer.results]
    assert scores == sorted(scores, reverse=True)


@pytest.mark.anyio
async def test_the_budget_holds_with_fusion_too() -> None:
    chat = MockChatClient(graded_by_position)
    rerank = service({"main": (pointwise(max_ranked_documents=2, fusion_weight=0.5), chat)}).rerank
    answer = await rerank(RerankQuery("q", DOCS))
    assert [i for i, _ in answer.results][2:] == [2, 3, 4, 5]


@pytest.mark.anyio
async def test_an_unreachable_model_hands_the_whole_request_to_its_request_fallback() -> None:
    primary, backup = MockChatClient(unreachable), MockChatClient(graded_by_position)
    rerank = service({"main": (ModelSettings(litellm_model="openai/x", request_fallback="backup"), primary),
                      "backup": (pointwise(), backup)}).rerank
    answer = await rerank(RerankQuery("q", DOCS[:4]))
    assert primary.requests and len(backup.requests) == 4  # backup ranked with its own mode (pointwise)
    assert answer.meta.model_alias == "backup" and answer.meta.mode == "pointwise"
    assert answer.meta.fallbacks == ["backup"]
    assert [i for i, _ in answer.results] == [3, 2, 1, 0]
    assert answer.meta.warnings[0].startswith("model 'main' could not answer (1 of 1 LLM calls failed; last "
                                              "error: could not connect to upstream model openai/x")
    assert answer.meta.warnings[0].endswith("'backup' answered the whole request instead")


@pytest.mark.anyio
async def test_a_refused_key_is_reported_not_papered_over_by_the_fallback() -> None:
    backup = MockChatClient(graded_by_position)
    rerank = service({"main": (ModelSettings(litellm_model="openai/x", request_fallback="backup"),
                               MockChatClient(bad_key)), "backup": (pointwise(), backup)}).rerank
    with pytest.raises(UpstreamError, match="HTTP 401"):
        await rerank(RerankQuery("q", DOCS[:2]))
    assert not backup.requests


@pytest.mark.anyio
async def test_when_the_fallback_fails_too_the_original_error_is_raised() -> None:
    rerank = service({"main": (ModelSettings(litellm_model="openai/x", request_fallback="backup"),
                               MockChatClient(unreachable)),
                      "backup": (pointwise(), MockChatClient(bad_key))}).rerank
    with pytest.raises(UpstreamError, match="could not connect"):
        await rerank(RerankQuery("q", DOCS[:2]))


@pytest.mark.anyio
async def test_an_embedded_model_says_it_is_a_demo_and_how_far_it_moved_the_order() -> None:
    local = ModelSettings(litellm_model="local/smollm2-135m", mode="pointwise", logprobs=False)
    answer = await service({"main": (local, MockChatClient(graded_by_position))}).rerank(RerankQuery("q", DOCS[:4]))
    assert [i for i, _ in answer.results] == [3, 2, 1, 0]
    assert answer.meta.input_order_tau == -1.0
    assert len(answer.meta.warnings) == 1
    assert "embedded demo model local/smollm2-135m" in answer.meta.warnings[0]
    assert "Kendall tau -1.00" in answer.meta.warnings[0]


@pytest.mark.anyio
async def test_a_hosted_model_answer_has_no_warnings() -> None:
    answer = await service({"main": (pointwise(), MockChatClient(graded_by_position))}).rerank(
        RerankQuery("q", DOCS[:3], fusion_weight=0.0))
    assert answer.meta.warnings == [] and answer.meta.input_order_tau == 1.0 and answer.meta.ranked_documents == 3


@pytest.mark.anyio
async def test_with_the_cache_off_every_request_is_ranked_anew_and_none_is_a_hit() -> None:
    chat = MockChatClient(graded_by_position)
    rerank = service({"main": (pointwise(), chat)}, cache=CacheSettings(enabled=False)).rerank
    first, second = await rerank(RerankQuery("q", DOCS[:4])), await rerank(RerankQuery("q", DOCS[:4]))
    assert len(chat.requests) == 8
    assert not first.hit and not second.hit
    assert first.results == second.results
