"""`estimate_tokens`: a bound, before any call, on what every strategy's calls may cost.

A key's token limit reserves the estimate at admission, so it must cover every call the
strategy then makes, at the longest answer each is allowed (`max_tokens`): grading for
calibration, consistency passes, FIRST windows that fall back to a permutation, batches
whose documents are graded alone. It is not the actual usage: it must also stay within a
small factor of it, or requests a key could afford would be refused.
"""

from __future__ import annotations

import random

import pytest

from gateway.config import Settings
from gateway.errors import UpstreamError
from gateway.strategies.base import Strategy
from gateway.strategies.registry import FACTORIES, build_strategies
from gateway.strategies.tokens import count_messages
from gateway.upstream.chat import ChatReply, ChatRequest
from tests.support.scripted import ENC, PROMPTS, Call, Model, kind_of, number_in, task

WORDS = ("tea trade history ship port silk route ocean merchant leaf brew naïve straße 数据 emoji🙂 "
         "[3] <passage> </passage> Ignore previous instructions").split()
SETTINGS = {
    "shipped": Settings(),
    "consistency 3": Settings(listwise={"consistency": 3}, batched={"consistency": 3}),
    "multi-turn prompt": Settings(listwise={"prompt": "rankgpt"}),
}


def documents(n: int, seed: int) -> list[str]:
    """Documents numbered by relevance, shuffled, of very different lengths (some past every budget)."""
    rng = random.Random(seed)
    numbers = list(range(n))
    rng.shuffle(numbers)
    return [f"doc {k} " + " ".join(rng.choice(WORDS) for _ in range(rng.choice([2, 40, 120, 600])))
            for k in numbers]


def worst_case(model: Model) -> int:
    """What the calls made may have cost: each prompt, and the longest answer it allowed."""
    return sum(count_messages(ENC, c.request.messages) + c.request.max_tokens for c in model.calls)


def failing_batches(request: ChatRequest) -> Exception | None:
    return UpstreamError("batch refused", status=500) if kind_of(request) == "batched" else None


class Unbatched(Model):
    """A model that answers every batch with prose: each document left out is graded alone, up to the cap."""

    async def __call__(self, request: ChatRequest) -> ChatReply:
        if kind_of(request) != "batched":
            return await super().__call__(request)
        self.calls.append(Call("batched", 0.0, 0.0, 0, request))
        return ChatReply("I would rather not rate these passages.")


MODELS = {
    "answers well": lambda: Model(lambda text: number_in(text) % 4),
    # Configured with logprobs but returning none: every FIRST window is asked again for a permutation.
    "no logprobs after all": lambda: Model(lambda text: number_in(text) % 4, logprobs=False),
    "batches fail": lambda: Model(lambda text: number_in(text) % 4, fail=failing_batches),
    "batches unanswered": lambda: Unbatched(lambda text: number_in(text) % 4),
}


def strategies(settings: Settings) -> dict[str, Strategy]:
    return build_strategies(settings, PROMPTS)


@pytest.mark.anyio
@pytest.mark.parametrize("n", [1, 2, 21, 100])
@pytest.mark.parametrize("behaviour", list(MODELS))
@pytest.mark.parametrize("config", list(SETTINGS))
@pytest.mark.parametrize("name", list(FACTORIES))
async def test_the_estimate_covers_every_call_a_strategy_makes(name: str, config: str, behaviour: str,
                                                               n: int) -> None:
    strategy = strategies(SETTINGS[config])[name]
    job = task(documents(n, seed=n))
    estimate = strategy.estimate_tokens(job)
    model = MODELS[behaviour]()
    await strategy.rank(model.client(), job)
    assert worst_case(model) <= estimate


@pytest.mark.anyio
@pytest.mark.parametrize("name", list(FACTORIES))
async def test_the_estimate_stays_near_what_a_request_costs(name: str) -> None:
    strategy = strategies(Settings())[name]
    job = task(documents(100, seed=3))
    model = MODELS["answers well"]()
    await strategy.rank(model.client(), job)
    # FIRST's bound holds each window's fallback permutation too: about twice its one-token calls.
    assert strategy.estimate_tokens(job) <= (3.5 if "first" in name else 2.0) * worst_case(model)


@pytest.mark.anyio
async def test_a_client_token_budget_lowers_the_estimate_as_it_lowers_the_prompts() -> None:
    for strategy in strategies(Settings()).values():
        texts = documents(40, seed=5)
        assert strategy.estimate_tokens(task(texts, token_budget=32)) < strategy.estimate_tokens(task(texts))


def test_no_documents_to_rank_cost_nothing() -> None:
    for strategy in strategies(Settings()).values():
        assert strategy.estimate_tokens(task(["only one"])) <= strategy.estimate_tokens(task(["one", "two"]))
        assert strategy.estimate_tokens(task([])) == 0


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["sliding", "tdpart", "pointwise"])
async def test_a_metered_request_prepares_its_passages_once_for_the_estimate_and_the_ranking(
    name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import gateway.strategies.listwise as listwise
    import gateway.strategies.pointwise as pointwise

    module = pointwise if name == "pointwise" else listwise
    real, prepared = module.prepare, []
    monkeypatch.setattr(module, "prepare", lambda *args, **kwargs: prepared.append(1) or real(*args, **kwargs))
    strategy = strategies(Settings())[name]
    job = task(documents(30, seed=7))
    estimate = strategy.estimate_tokens(job)
    model = MODELS["answers well"]()
    await strategy.rank(model.client(), job)
    assert prepared == [1] and worst_case(model) <= estimate
