"""Batched pointwise: k passages per call, one `[id] label` line each, every label from its own token."""

from __future__ import annotations

import math

import pytest

from gateway.config import BatchedSettings, ConfigError, PointwiseSettings
from gateway.errors import CallCut, UpstreamError
from gateway.strategies.batched import BatchedPointwise, batches, build_messages, parse_labels
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from tests.support.scripted import Model, number_in, prompt, task, window_passages


def lp(p: float) -> float:
    return math.log(p)


def batched(size: int = 5) -> BatchedPointwise:
    return BatchedPointwise(BatchedSettings(batch_size=size), PointwiseSettings(), prompt("batched"),
                            prompt("pointwise"))


def test_documents_are_dealt_round_robin() -> None:
    assert batches(7, 3) == [[0, 3, 6], [1, 4], [2, 5]]
    assert batches(1, 5) == [[0]]


def test_the_prompt_lists_passages_as_lines_and_asks_for_one_line_each() -> None:
    messages = build_messages(prompt("batched"), "q", ["alpha", "beta"], 3)
    user = messages[1]["content"]
    assert "[1] alpha\n[2] beta" in user and "one line per passage" in user and "0 to 3" in messages[0]["content"]
    assert window_passages(ChatRequest(messages, max_tokens=1)) == ["alpha", "beta"]


def test_each_label_is_scored_from_its_own_token() -> None:
    tokens = [("[", []), ("1", []), ("]", []), (" 3", [(" 3", lp(0.5)), (" 2", lp(0.5))]), ("\n", []),
              ("[", []), ("2", []), ("]", []), (" 0", [(" 0", lp(1.0))])]
    reply = ChatReply("[1] 3\n[2] 0", token_logprobs=tokens)
    assert parse_labels(reply, 2, 3) == pytest.approx({0: 2.5 / 3, 1: 0.0})


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[1] 3\n[2] 0", {0: 1.0, 1: 0.0}),
        ("1: 2\n2 - 1", {0: 2 / 3, 1: 1 / 3}),
        ("[2] 1\n[2] 3\n[9] 3\n[1] 7", {1: 1 / 3}),  # duplicates, out of range, off the scale
        ("<think>[1] 0</think>\n[1] 3", {0: 1.0}),
        ("I cannot judge these.", {}),
        ("[1] 2.5", {}),
    ],
)
def test_labels_from_text_without_logprobs(text: str, expected: dict[int, float]) -> None:
    assert parse_labels(ChatReply(text), 2, 3) == pytest.approx(expected)


@pytest.mark.anyio
async def test_a_hundred_documents_are_twenty_calls_in_one_round() -> None:
    model = Model(lambda text: number_in(text) / 33, delay=0.02)
    texts = [f"doc {i}" for i in range(100)]
    ranking = await batched(5).rank(model.client(), task(texts))
    assert len(model.calls) == 20 and model.rounds() == 1 and all(c.kind == "batched" for c in model.calls)
    assert all(c.request.top_logprobs == 10 and c.request.max_tokens >= 5 * 5 for c in model.calls)
    assert ranking.score_type == "calibrated"
    # Grades (number / 33, rounded) tie in blocks; ties keep the caller's order.
    assert [round(s * 3) for s in ranking.scores[:5]] == [3] * 5
    assert all(a >= b for a, b in zip(ranking.scores, ranking.scores[1:], strict=False))


@pytest.mark.anyio
async def test_documents_a_batch_left_out_are_graded_alone() -> None:
    def handler(request: ChatRequest) -> ChatReply:
        if "<passage>" in request.messages[-1]["content"]:
            return ChatReply("2")
        return ChatReply("[1] 3")  # names only the first passage of the batch

    chat = MockChatClient(handler)
    ranking = await batched(3).rank(chat, task(["a", "b", "c"], logprobs=False))
    assert len(chat.requests) == 3 and ranking.order == [0, 1, 2]
    assert ranking.scores == pytest.approx([1.0, 2 / 3, 2 / 3])


@pytest.mark.anyio
async def test_cut_batches_leave_their_documents_unscored_below() -> None:
    def cut_second(request: ChatRequest) -> Exception | None:
        return CallCut("deadline") if "doc 1" in request.messages[-1]["content"] else None

    model = Model(lambda text: number_in(text) / 3, fail=cut_second)
    ranking = await batched(2).rank(model.client(), task([f"doc {i}" for i in range(4)]))
    assert ranking.stats.cut_calls == 1 and ranking.unranked == 2
    assert ranking.order == [2, 0, 1, 3]  # batch [0, 2] scored; batch [1, 3] cut, in the caller's order


def test_labels_must_match_the_scale() -> None:
    with pytest.raises(ConfigError, match="needs 0..4"):
        BatchedPointwise(BatchedSettings(), PointwiseSettings(max_label=4), prompt("batched"), prompt("pointwise"))


@pytest.mark.anyio
async def test_consistency_deals_the_documents_m_times_in_one_round_and_averages() -> None:
    wrong_once = {"count": 0}

    def grade(text: str) -> float:
        if text == "doc 0" and wrong_once["count"] == 0:  # one pass calls the worst document perfect
            wrong_once["count"] += 1
            return 3
        return number_in(text) / 3

    model = Model(grade, delay=0.02)
    strategy = BatchedPointwise(BatchedSettings(batch_size=2, consistency=3), PointwiseSettings(),
                                prompt("batched"), prompt("pointwise"))
    ranking = await strategy.rank(model.client(), task([f"doc {i}" for i in range(10)]))
    assert len(model.calls) == 3 * 5 and model.rounds() == 1
    assert len({tuple(window_passages(c.request)) for c in model.calls}) > 5  # other neighbours each pass
    scores = dict(zip(ranking.order, ranking.scores, strict=True))
    assert scores[0] == pytest.approx(1 / 3, abs=0.02)  # its one wrong judgement (3 of 3) weighs a third
    assert ranking.order[0] != 0


@pytest.mark.anyio
async def test_hedging_waits_for_a_batch_s_usual_answer_not_its_cap() -> None:
    model = Model(lambda text: 1)
    await batched(5).rank(model.client(), task([f"doc {i}" for i in range(10)]))
    assert all(0 < c.request.expected_tokens < c.request.max_tokens for c in model.calls)


@pytest.mark.anyio
async def test_a_failed_batch_is_not_asked_again_document_by_document() -> None:
    model = Model(lambda text: 2, fail=lambda request: UpstreamError("unreachable", status=502))
    ranking = await batched(3).rank(model.client(), task(["a", "b", "c", "d", "e", "f"]))
    assert len(model.calls) == 2 and ranking.stats.failed_calls == 2  # the chain retried; no 6 lone calls


@pytest.mark.anyio
async def test_documents_graded_alone_are_capped_at_one_per_batch() -> None:
    def handler(request: ChatRequest) -> ChatReply:
        if "<passage>" in request.messages[-1]["content"]:
            return ChatReply("3")
        return ChatReply("These passages are all fine.")  # a batch answer with no label lines

    chat = MockChatClient(handler)
    ranking = await batched(3).rank(chat, task([f"doc {i}" for i in range(12)], logprobs=False))
    # 4 batches, then 4 documents alone (what the token estimate reserved), the other 8 unscored below.
    assert len(chat.requests) == 8 and ranking.order[:4] == [0, 1, 2, 3] and ranking.stats.parse_failures == 4
    assert ranking.scores[:4] == [1.0] * 4 and ranking.scores[4:] == [0.0] * 8
