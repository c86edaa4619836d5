"""Retry policy pieces and the retry loop, with a fake clock and a scripted chat client."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateway.config import ReliabilitySettings
from gateway.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.chain import RequestChat, Upstream
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from gateway.upstream.resilience import CircuitBreaker, RetryBudget, backoff_delay, parse_retry_after

POLICY = ReliabilitySettings(max_attempts=3, backoff_base_seconds=0.001, backoff_max_seconds=0.002)
REQUEST = ChatRequest([{"role": "user", "content": "q"}], max_tokens=1)


def test_backoff_is_full_jitter_capped() -> None:
    assert backoff_delay(0, 0.25, 4, rand=lambda: 1.0) == 0.25
    assert backoff_delay(3, 0.25, 4, rand=lambda: 1.0) == 2.0
    assert backoff_delay(10, 0.25, 4, rand=lambda: 1.0) == 4.0
    assert backoff_delay(10, 0.25, 4, rand=lambda: 0.0) == 0.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2", 2.0), ("0.5", 0.5), ("-3", 0.0), ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0), ("soon", None),
     ("", None), (None, None), ("nan", None)],
)
def test_retry_after_header(value: str | None, seconds: float | None) -> None:
    now = 1445412480.0  # 10 s before the date above
    assert parse_retry_after(value, now=now) == seconds


def test_retry_budget_allows_a_share_of_calls() -> None:
    budget = RetryBudget(ratio=0.1, reserve=2)
    assert budget.try_spend() and budget.try_spend() and not budget.try_spend()
    for _ in range(10):
        budget.record_call()
    assert budget.try_spend() and not budget.try_spend()


def test_breaker_opens_probes_once_and_recovers() -> None:
    now = [0.0]
    breaker = CircuitBreaker(threshold=2, cooldown=5, clock=lambda: now[0])
    breaker.record_failure()
    assert breaker.allow()
    breaker.record_failure()
    assert breaker.state == "open" and not breaker.allow() and breaker.retry_after() == 5
    now[0] = 5
    assert breaker.allow() and not breaker.allow()  # one probe at a time
    breaker.record_failure()  # failed probe: open for twice as long
    now[0] = 14
    assert not breaker.allow()
    now[0] = 15
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state == "closed" and breaker.allow()


def upstream(alias: str, handler, threshold: int = 100) -> Upstream:  # noqa: ANN001
    return Upstream(alias, MockChatClient(handler), CircuitBreaker(threshold, 60), asyncio.Semaphore(4))


def failing(*errors: UpstreamError):  # noqa: ANN201
    queue = list(errors)

    def handler(request: ChatRequest) -> ChatReply:
        if queue:
            raise queue.pop(0)
        return ChatReply("ok")

    return handler


def chat(*chain: Upstream, budget: RetryBudget | None = None, seconds: float = 5) -> RequestChat:
    return RequestChat(list(chain), POLICY, budget or RetryBudget(1.0), time.monotonic() + seconds)


@pytest.mark.anyio
async def test_retryable_errors_are_retried_up_to_max_attempts() -> None:
    requester = chat(upstream("a", failing(UpstreamError("x", retryable=True), UpstreamTimeout("t"))))
    reply = await requester.complete(REQUEST)
    assert (reply.text, requester.attempts, requester.retries, dict(requester.answered_by)) == ("ok", 3, 2, {"a": 1})


@pytest.mark.anyio
async def test_non_retryable_errors_go_straight_to_the_fallback() -> None:
    primary = upstream("a", failing(UpstreamError("bad request", status=400)))
    requester = chat(primary, upstream("b", failing()))
    reply = await requester.complete(REQUEST)
    assert (reply.text, requester.attempts, dict(requester.answered_by)) == ("ok", 2, {"b": 1})


@pytest.mark.anyio
async def test_an_empty_retry_budget_stops_retries() -> None:
    budget = RetryBudget(ratio=0.0, reserve=0)
    requester = chat(upstream("a", failing(UpstreamError("x", retryable=True))), budget=budget)
    with pytest.raises(UpstreamError):
        await requester.complete(REQUEST)
    assert requester.attempts == 1


@pytest.mark.anyio
async def test_an_open_circuit_is_skipped_without_a_call() -> None:
    broken = upstream("a", failing(), threshold=1)
    broken.breaker.record_failure()
    requester = chat(broken)
    with pytest.raises(UpstreamUnavailable) as error:
        await requester.complete(REQUEST)
    assert requester.attempts == 0 and error.value.retry_after and error.value.status_code == 503


@pytest.mark.anyio
async def test_an_attempt_is_cut_at_the_deadline_which_may_move_later_while_it_runs() -> None:
    answered: list[bool] = []

    async def slow(request: ChatRequest) -> ChatReply:
        await asyncio.sleep(0.3)
        answered.append(True)
        return ChatReply("ok")

    with pytest.raises(UpstreamTimeout):
        await chat(upstream("a", slow), seconds=0.1).complete(REQUEST)
    assert not answered  # the caller had its timeout before the call could answer
    # A request joining this computation pushed the deadline out: the call runs to its answer.
    deadline = [time.monotonic() + 0.1]
    requester = RequestChat([upstream("b", slow)], POLICY, RetryBudget(1.0), lambda: deadline[0])
    call = asyncio.create_task(requester.complete(REQUEST))
    await asyncio.sleep(0.05)
    deadline[0] += 1
    assert (await call).text == "ok"


def test_the_embedded_models_breaker_never_opens() -> None:
    from gateway.upstream.resilience import NeverOpen

    breaker = NeverOpen()
    for _ in range(100):  # slow answers cut at deadlines: load on the machine, not an outage
        breaker.record_failure()
    assert breaker.state == "closed" and breaker.allow() and breaker.retry_after() == 0.0


def test_upstreams_give_embedded_models_a_breaker_that_never_opens() -> None:
    from gateway.config import Settings
    from gateway.upstream.chat import MockChatClient
    from gateway.upstream.resilience import NeverOpen
    from gateway.upstream.runtime import ModelRuntime, Upstreams

    settings = Settings()
    models = {alias: ModelRuntime(alias, s, MockChatClient(lambda r: None)) for alias, s in settings.models.items()}
    upstreams = Upstreams(settings, models)  # type: ignore[arg-type]
    assert isinstance(upstreams.by_alias["local"].breaker, NeverOpen)
    assert not isinstance(upstreams.by_alias["gpt-4-turbo-preview"].breaker, NeverOpen)


def answering(*texts: str):  # noqa: ANN201
    queue = list(texts)
    return lambda request: ChatReply(queue.pop(0) if queue else "ok")


@pytest.mark.anyio
@pytest.mark.parametrize("empty", ["", "  \n"])
async def test_an_empty_answer_is_tried_once_more(empty: str) -> None:
    requester = chat(upstream("a", answering(empty)))
    reply = await requester.complete(REQUEST)
    assert (reply.text, requester.attempts, requester.retries) == ("ok", 2, 1)


@pytest.mark.anyio
async def test_an_answer_that_stays_empty_is_returned_after_one_retry() -> None:
    requester = chat(upstream("a", answering("", "", "")))
    reply = await requester.complete(REQUEST)
    assert (reply.text, requester.attempts) == ("", 2)  # once more, not max_attempts times


@pytest.mark.anyio
async def test_an_empty_answer_with_logprobs_is_an_answer() -> None:
    requester = chat(upstream("a", lambda request: ChatReply("", top_logprobs=[("2", -0.1)])))
    await requester.complete(REQUEST)
    assert requester.attempts == 1


@pytest.mark.anyio
async def test_the_empty_retry_respects_the_budget() -> None:
    requester = chat(upstream("a", answering("")), budget=RetryBudget(ratio=0.0, reserve=0))
    assert (await requester.complete(REQUEST)).text == "" and requester.attempts == 1
