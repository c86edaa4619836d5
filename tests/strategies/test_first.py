"""FIRST: a window ordered by the first token's distribution over identifiers."""

from __future__ import annotations

import math

import pytest

from gateway.config import ListwiseSettings
from gateway.strategies.base import CallStats
from gateway.strategies.first import first_ranking
from gateway.strategies.rankers import WindowRanker
from gateway.strategies.window import prepare
from gateway.upstream.chat import ChatReply, MockChatClient
from tests.support.scripted import ENC, prompt


def lp(p: float) -> float:
    return math.log(p)


def test_identifiers_are_ranked_by_probability_and_unranked_ones_are_left_out() -> None:
    alternatives = [("3", lp(0.5)), ("1", lp(0.3)), ("The", lp(0.1)), ("4", lp(0.05))]
    assert first_ranking(alternatives, 5) == [2, 0, 3]


def test_variants_of_one_identifier_add_up() -> None:
    alternatives = [("2", lp(0.3)), (" 1", lp(0.25)), ("1", lp(0.2)), ("[1", lp(0.1))]
    assert first_ranking(alternatives, 3) == [0, 1]


@pytest.mark.parametrize("token", ["0", "6", "12345", "-inf", "", "1.5", "nan"])
def test_tokens_that_are_no_identifier_of_the_window_are_ignored(token: str) -> None:
    assert first_ranking([(token, lp(0.9)), ("2", float("-inf")), ("3", float("nan"))], 5) == []


def test_ties_keep_input_order() -> None:
    assert first_ranking([("4", lp(0.25)), ("2", lp(0.25))], 5) == [1, 3]


def ranker(first: bool = True, consistency: int = 1) -> tuple[WindowRanker, CallStats]:
    stats = CallStats()
    return WindowRanker(prompt("listwise"), ListwiseSettings(consistency=consistency), ENC, stats, first), stats


@pytest.mark.anyio
async def test_a_first_window_is_one_call_of_one_token() -> None:
    chat = MockChatClient(lambda request: ChatReply("2", [("2", lp(0.6)), ("3", lp(0.3)), ("1", lp(0.05))]))
    window, stats = ranker()
    job = prepare(ENC, prompt("listwise"), "q", ["a", "b", "c", "d"], ListwiseSettings(), 128_000)
    result = await window.rank(chat, job, [0, 1, 2, 3])
    assert (result.order, result.named, result.ok) == ([1, 2, 0, 3], 3, True)
    [request] = chat.requests
    assert (request.max_tokens, request.top_logprobs) == (1, 20)
    assert "most relevant passage" in request.messages[-1]["content"]
    assert stats.calls == 1 and stats.first_fallbacks == 0


@pytest.mark.anyio
@pytest.mark.parametrize("alternatives", [[], [("The", lp(0.9)), ("[", lp(0.1))]], ids=["none", "no-identifier"])
async def test_an_answer_without_usable_logprobs_falls_back_to_a_permutation(alternatives: list) -> None:
    def handler(request):  # noqa: ANN001, ANN202
        return ChatReply("3", alternatives) if request.max_tokens == 1 else ChatReply("[3] > [1] > [2]")

    chat = MockChatClient(handler)
    window, stats = ranker()
    job = prepare(ENC, prompt("listwise"), "q", ["a", "b", "c"], ListwiseSettings(), 128_000)
    result = await window.rank(chat, job, [0, 1, 2])
    assert result.order == [2, 0, 1] and result.named == 3
    assert [r.max_tokens > 1 for r in chat.requests] == [False, True]
    assert stats.first_fallbacks == 1 and stats.calls == 2
