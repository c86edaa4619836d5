"""Permutation self-consistency: shuffled passes per window, aggregated by Borda."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import ListwiseSettings
from gateway.strategies.base import CallStats
from gateway.strategies.consistency import borda, shuffles
from gateway.strategies.rankers import WindowRanker
from gateway.strategies.window import prepare
from gateway.upstream.chat import ChatReply, MockChatClient
from tests.support.scripted import ENC, Model, number_in, prompt, window_passages


def test_borda_adds_up_points() -> None:
    # Two passes agree that 2 is best; they disagree on 0 and 1.
    assert borda([([2, 0, 1], 3), ([2, 1, 0], 3), ([0, 2, 1], 3)], 3) == ([2, 0, 1], 3)


def test_items_a_pass_did_not_place_share_its_last_points() -> None:
    # Pass one placed only 3; pass two placed 1 then 3.
    order, named = borda([([3, 0, 1, 2], 1), ([1, 3, 0, 2], 2)], 4)
    assert order[:2] == [3, 1] and named == 2 and sorted(order) == [0, 1, 2, 3]


@given(st.permutations(list(range(8))), st.integers(min_value=0, max_value=8))
def test_one_pass_aggregates_to_itself(order: list[int], named: int) -> None:
    expected = order[:named] + sorted(order[named:])
    assert borda([(order, named)], 8) == (expected, named)


def test_shuffles_are_seeded_by_the_window_and_the_first_is_unshuffled() -> None:
    passes = shuffles([5, 6, 7, 8, 9], 3)
    assert passes[0] == [5, 6, 7, 8, 9] and passes == shuffles([5, 6, 7, 8, 9], 3)
    assert all(sorted(p) == [5, 6, 7, 8, 9] for p in passes) and passes[1] != passes[0]


@pytest.mark.anyio
@pytest.mark.parametrize("first", [False, True])
async def test_m_passes_are_m_concurrent_calls_over_shuffled_windows_aggregated_by_borda(first: bool) -> None:
    model = Model(lambda text: number_in(text) / 4, delay=0.02)
    texts = [f"doc {k}" for k in range(10)]
    job = prepare(ENC, prompt("listwise"), "q", texts, ListwiseSettings(), 128_000)
    ranker = WindowRanker(prompt("listwise"), ListwiseSettings(consistency=5), ENC, CallStats(), first)
    result = await ranker.rank(model.client(), job, list(range(10)))
    assert len(model.calls) == 5 and model.rounds() == 1
    arrangements = {tuple(window_passages(c.request)) for c in model.calls}
    assert len(arrangements) == 5  # every pass saw the passages in another order
    assert result.order == list(range(9, -1, -1)) and result.ok  # a consistent model survives aggregation


@pytest.mark.anyio
async def test_position_bias_is_averaged_out() -> None:
    # A model that only reads positions: it always answers "[1] > [2] > ...". One pass keeps the
    # input order; shuffled passes spread every document's points toward the middle.
    chat = MockChatClient(lambda request: ChatReply(" > ".join(f"[{i}]" for i in range(1, 11))))
    job = prepare(ENC, prompt("listwise"), "q", [f"d{k}" for k in range(10)], ListwiseSettings(), 128_000)
    one = await WindowRanker(prompt("listwise"), ListwiseSettings(), ENC, CallStats()).rank(chat, job, range(10))
    ranker = WindowRanker(prompt("listwise"), ListwiseSettings(consistency=5), ENC, CallStats())
    five = await ranker.rank(chat, job, list(range(10)))
    passes = shuffles(range(10), 5)
    assert one.order == list(range(10))
    assert five.order == borda([(p, 10) for p in passes], 10)[0] != one.order
