"""The retry loop's hedging and deadline cuts (RequestChat)."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import ReliabilitySettings
from gateway.errors import CallCut, UpstreamError, UpstreamTimeout
from gateway.upstream.chain import RequestChat, Upstream
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from gateway.upstream.resilience import CircuitBreaker, RetryBudget

REQUEST = ChatRequest([{"role": "user", "content": "hi"}], max_tokens=1)


def hedged(handler, after: float = 0.05, hedges: int = 1, slots: int = 4, tps: float = 0.0) -> Upstream:  # noqa: ANN001
    return Upstream("a", MockChatClient(handler), CircuitBreaker(100, 60), asyncio.Semaphore(slots), after, hedges,
                    tps)


def chat(upstream: Upstream, seconds: float = 30) -> RequestChat:
    return RequestChat([upstream], ReliabilitySettings(), RetryBudget(1.0), time.monotonic() + seconds)


async def hang(request: ChatRequest, seconds: float = 60) -> None:
    """Sleep like a slow upstream, but stop at the attempt's timeout the way the LiteLLM client does."""
    try:
        await asyncio.wait_for(asyncio.sleep(seconds), request.timeout)
    except TimeoutError:
        raise UpstreamTimeout("timed out") from None


def first_call_hangs(answers: list[str]):  # noqa: ANN201
    """The first attempt never answers (until cancelled); later ones answer at once."""
    started: list[int] = []
    cancelled: list[int] = []

    async def handler(request: ChatRequest) -> ChatReply:
        number = len(started)
        started.append(number)
        if number == 0:
            try:
                await hang(request)
            except asyncio.CancelledError:
                cancelled.append(number)
                raise
        return ChatReply(answers[number], prompt_tokens=10, completion_tokens=1)

    return handler, started, cancelled


@pytest.mark.anyio
async def test_a_slow_attempt_gets_a_duplicate_and_the_first_answer_wins() -> None:
    handler, started, cancelled = first_call_hangs(["slow", "fast"])
    requester = chat(hedged(handler))
    reply = await requester.complete(REQUEST)
    assert (reply.text, reply.hedged_losers) == ("fast", 1)
    assert started == [0, 1] and cancelled == [0]  # the loser was cancelled, not left running
    assert (requester.attempts, requester.hedges) == (2, 1)


@pytest.mark.anyio
async def test_a_fast_answer_is_never_hedged() -> None:
    requester = chat(hedged(lambda request: ChatReply("ok"), after=5))
    reply = await requester.complete(REQUEST)
    assert (reply.hedged_losers, requester.attempts, requester.hedges) == (0, 1, 0)


@pytest.mark.anyio
async def test_no_duplicate_waits_for_a_slot() -> None:
    handler, started, _ = first_call_hangs(["slow", "fast"])
    requester = chat(hedged(handler, slots=1), seconds=0.3)
    with pytest.raises(CallCut):
        await requester.complete(REQUEST)
    assert started == [0] and requester.hedges == 0


@pytest.mark.anyio
async def test_a_failed_duplicate_leaves_the_original_running() -> None:
    calls = []

    async def handler(request: ChatRequest) -> ChatReply:
        calls.append(len(calls))
        if len(calls) == 1:
            await asyncio.sleep(0.2)
            return ChatReply("original")
        raise UpstreamError("duplicate failed")

    reply = await chat(hedged(handler, hedges=1)).complete(REQUEST)
    assert reply.text == "original" and reply.hedged_losers == 0 and len(calls) == 2


def test_longer_answers_wait_longer_before_a_duplicate() -> None:
    upstream = hedged(lambda request: ChatReply("ok"), after=1.0, tps=50)
    assert upstream.hedge_delay(ChatRequest([], max_tokens=1)) == pytest.approx(1.02)
    assert upstream.hedge_delay(ChatRequest([], max_tokens=100)) == pytest.approx(3.0)
    assert upstream.hedge_delay(ChatRequest([], max_tokens=100, expected_tokens=50)) == pytest.approx(2.0)


@pytest.mark.anyio
async def test_a_call_the_deadline_cuts_is_a_call_cut() -> None:
    async def handler(request: ChatRequest) -> ChatReply:
        await hang(request, 5)
        return ChatReply("late")

    upstream = Upstream("a", MockChatClient(handler), CircuitBreaker(100, 60), asyncio.Semaphore(4))
    with pytest.raises(CallCut):
        await chat(upstream, seconds=0.1).complete(REQUEST)
    with pytest.raises(CallCut):  # and one the deadline leaves no time for
        await RequestChat([upstream], ReliabilitySettings(), RetryBudget(1.0), time.monotonic() - 1).complete(REQUEST)


@pytest.mark.anyio
async def test_a_deadline_pushed_later_while_a_call_runs_lets_it_finish() -> None:
    # A request joining this computation extends the deadline: the watch looks again when it fires.
    async def handler(request: ChatRequest) -> ChatReply:
        await asyncio.sleep(0.3)
        return ChatReply("ranked")

    deadline = [time.monotonic() + 0.1]
    upstream = Upstream("a", MockChatClient(handler), CircuitBreaker(100, 60), asyncio.Semaphore(4))
    chat_ = RequestChat([upstream], ReliabilitySettings(), RetryBudget(1.0), lambda: deadline[0])
    asyncio.get_running_loop().call_later(0.05, lambda: deadline.__setitem__(0, time.monotonic() + 1))
    assert (await chat_.complete(REQUEST)).text == "ranked"


@pytest.mark.anyio
async def test_a_cancelled_request_cancels_its_call_instead_of_counting_a_cut() -> None:
    # The client left: the call stops, and that is no deadline cut and no timeout of the upstream.
    cancelled = asyncio.Event()

    async def handler(request: ChatRequest) -> ChatReply:
        try:
            await asyncio.sleep(5)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return ChatReply("late")

    upstream = Upstream("a", MockChatClient(handler), CircuitBreaker(100, 60), asyncio.Semaphore(4))
    task = asyncio.ensure_future(chat(upstream).complete(REQUEST))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cancelled.is_set() and upstream.breaker.state == "closed" and not upstream.slots.locked()
