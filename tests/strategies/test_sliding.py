"""The sliding window (RankGPT): the reference listwise strategy, with permutations or FIRST."""

from __future__ import annotations

import pytest

from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.errors import CallCut, UpstreamError
from gateway.strategies.sliding import SlidingFirst, SlidingWindow, window_spans
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from tests.support.scripted import Model, number_in, prompt, task

DOCS = [f"doc {i}" for i in range(100)]


def sliding(cls: type[SlidingWindow] = SlidingWindow, **settings: object) -> SlidingWindow:
    return cls(ListwiseSettings(**settings), prompt("listwise"), PointwiseSettings(), prompt("pointwise"))


def by_number(text: str) -> float:
    """Higher number = more relevant, as a grade 0..3 with ties broken by the number."""
    return number_in(text) / 33


def test_windows_slide_back_to_front() -> None:
    assert window_spans(100, 20, 10) == [(80, 100), (70, 90), (60, 80), (50, 70), (40, 60),
                                         (30, 50), (20, 40), (10, 30), (0, 20)]


@pytest.mark.parametrize(("n", "spans"), [(1, [(0, 1)]), (20, [(0, 20)]), (25, [(5, 25), (0, 15)])])
def test_short_lists_still_end_on_a_window_at_the_front(n: int, spans: list[tuple[int, int]]) -> None:
    assert window_spans(n, 20, 10) == spans


@pytest.mark.anyio
async def test_one_pass_brings_the_best_ten_to_the_front_in_nine_sequential_calls() -> None:
    model = Model(by_number, delay=0.02)
    ranking = await sliding(calibrate_top=0).rank(model.client(), task(DOCS))
    assert ranking.order[:10] == list(range(99, 89, -1))
    assert sorted(ranking.order) == list(range(100))
    assert len(model.calls) == ranking.stats.calls == 9 and model.rounds() == 9
    assert ranking.score_type == "rank" and ranking.scores[0] == 1.0 and ranking.scores[-1] == 0.0


@pytest.mark.anyio
async def test_calibration_grades_the_front_window_while_it_is_ranked() -> None:
    model = Model(by_number, delay=0.02)
    ranking = await sliding().rank(model.client(), task(DOCS))
    assert ranking.score_type == "calibrated"
    assert len(model.of("pointwise")) == 20 and len(model.of("listwise")) == 9
    assert model.rounds() == 9  # grading overlapped the last window: no extra round
    assert all(a >= b for a, b in zip(ranking.scores, ranking.scores[1:], strict=False))
    assert max(ranking.scores[20:]) < ranking.scores[19]


@pytest.mark.anyio
async def test_without_logprobs_scores_are_rank_scores_and_nothing_is_graded() -> None:
    model = Model(by_number, logprobs=False)
    ranking = await sliding().rank(model.client(), task(DOCS, logprobs=False))
    assert ranking.score_type == "rank" and not model.of("pointwise")


@pytest.mark.anyio
async def test_sliding_first_ranks_each_window_with_one_token() -> None:
    model = Model(by_number)
    ranking = await sliding(SlidingFirst, calibrate_top=0).rank(model.client(), task(DOCS))
    assert ranking.order[:10] == list(range(99, 89, -1))
    assert len(model.of("first")) == 9 and not model.of("listwise")
    assert all(c.request.max_tokens == 1 and c.request.top_logprobs == 20 for c in model.calls)


@pytest.mark.anyio
async def test_a_single_document_needs_no_call() -> None:
    model = Model(by_number)
    ranking = await sliding().rank(model.client(), task(["only"]))
    assert (ranking.order, ranking.scores, model.calls) == ([0], [1.0], [])


@pytest.mark.anyio
async def test_unparseable_and_failed_windows_keep_input_order_and_are_counted() -> None:
    answers = iter(["no idea", UpstreamError("boom")])

    def handler(request: ChatRequest) -> ChatReply:
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return ChatReply(answer)

    ranking = await sliding().rank(MockChatClient(handler), task([f"d{i}" for i in range(25)], logprobs=False))
    assert ranking.order == list(range(25))
    assert (ranking.stats.calls, ranking.stats.parse_failures, ranking.stats.failed_calls) == (2, 1, 1)


@pytest.mark.anyio
async def test_windows_the_deadline_cut_leave_their_documents_in_the_callers_order() -> None:
    def cut_after_three(request: ChatRequest) -> Exception | None:
        return CallCut("deadline") if len(model.calls) > 3 else None

    model = Model(by_number, fail=cut_after_three)
    ranking = await sliding(calibrate_top=0).rank(model.client(), task(DOCS))
    assert ranking.stats.cut_calls == 6 and ranking.stats.failed_calls == 0
    # Three windows finished (80..100, 70..90, 60..80): documents 0..59 no finished window saw.
    assert ranking.unranked == 60 and ranking.order[:60] == list(range(60))
    assert ranking.order[60:70] == list(range(99, 89, -1))


@pytest.mark.anyio
async def test_an_echoed_acknowledgement_is_not_a_ranking() -> None:
    chat = MockChatClient(lambda request: ChatReply("Received passage [3]."))
    strategy = SlidingWindow(ListwiseSettings(), prompt("rankgpt"), PointwiseSettings(), prompt("pointwise"))
    ranking = await strategy.rank(chat, task(["a", "b", "c"], logprobs=False))
    assert ranking.order == [0, 1, 2] and ranking.stats.parse_failures == 1


@pytest.mark.anyio
async def test_usage_is_counted_with_tiktoken_when_the_upstream_reports_none() -> None:
    from gateway.strategies.tokens import count_messages
    from tests.support.scripted import ENC

    chat = MockChatClient(lambda request: ChatReply("[2] > [1]"))
    ranking = await sliding().rank(chat, task(["a", "b"], logprobs=False))
    assert ranking.stats.prompt_tokens == count_messages(ENC, chat.requests[0].messages)
    assert ranking.stats.completion_tokens == len(ENC.encode("[2] > [1]"))
    assert chat.requests[0].max_tokens >= 4 * 2


@pytest.mark.anyio
async def test_a_hedged_call_is_billed_for_its_cancelled_duplicates() -> None:
    chat = MockChatClient(lambda request: ChatReply("[2] > [1]", prompt_tokens=100, completion_tokens=6,
                                                    hedged_losers=1))
    ranking = await sliding().rank(chat, task(["a", "b"], logprobs=False))
    assert (ranking.stats.prompt_tokens, ranking.stats.completion_tokens, ranking.stats.hedged_losers) == (200, 12, 1)
