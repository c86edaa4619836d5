"""The one retry loop: attempts, backoff, fallbacks, circuit breakers and deadlines.

A `RequestChat` is the `ChatClient` strategies use for one rerank request. For
each call it walks the model's fallback chain; on each upstream it makes up to
`max_attempts` attempts, retrying only what may pass (429, 5xx, timeouts,
connection errors), waiting with full jitter or the upstream's `Retry-After`,
never past the request's deadline and never beyond the process's retry
budget. An upstream whose circuit is open is skipped without a call. An empty
answer (a 200 with no text and no logprobs) is tried once more on the same
upstream, within the same limits: it is usually a glitch, and otherwise it is a
window or a document left unranked.

Hedging (per model, `hedge_after_seconds`): an attempt that has not answered
that long after it should have (its expected decode time: the answer's usual
length, else max_tokens, over the model's `output_tokens_per_second`, when
known) gets a duplicate on the same upstream, then another every
`hedge_after_seconds`, up to `max_hedges`, when a slot is free at once; the
first answer wins and the others are cancelled. Hosted models' time to first
token is heavy-tailed, and a request that fans out waits for its slowest call:
hedging cuts that tail for a few extra calls.

A call that the request's deadline cuts (or leaves no time to make) raises
`CallCut`, so strategies can answer with what finished.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, replace
from typing import Any, Protocol

from gateway.config import ReliabilitySettings
from gateway.errors import CallCut, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from gateway.upstream.chat import ChatClient, ChatReply, ChatRequest
from gateway.upstream.resilience import CircuitBreaker, RetryBudget, backoff_delay

# (alias, seconds, failure kind or None): what metrics want to know of each attempt.
AttemptObserver = Callable[[str, float, "str | None"], None]
Deadline = float | Callable[[], float]  # time.monotonic(); a callable when waiters may push it later


class UsageSink(Protocol):
    """Told of every attempt that reached an upstream, for token accounting."""

    def answered(self, request: ChatRequest, reply: ChatReply) -> None: ...

    def cut(self, request: ChatRequest) -> None:
        """The attempt was sent but cut off before an answer (timeout, deadline, cancellation)."""
        ...


@dataclass(frozen=True)
class Upstream:
    """One alias's way to its LLM, with the breaker and slots of the LLM endpoint it calls."""

    alias: str
    chat: ChatClient
    breaker: CircuitBreaker
    slots: asyncio.Semaphore
    hedge_after: float = 0.0  # seconds before a duplicate attempt; 0: no hedging
    max_hedges: int = 0
    tokens_per_second: float = 0.0  # decode speed estimate: longer answers get a later hedge

    def hedge_delay(self, request: ChatRequest) -> float:
        """How long an attempt of `request` may run before it gets a duplicate."""
        tokens = request.expected_tokens or request.max_tokens
        decoding = tokens / self.tokens_per_second if self.tokens_per_second else 0.0
        return self.hedge_after + decoding


class RequestChat:
    """`ChatClient` for one request: a fallback chain under one deadline."""

    def __init__(self, chain: list[Upstream], policy: ReliabilitySettings, budget: RetryBudget,
                 deadline: Deadline, observe: AttemptObserver | None = None, usage: UsageSink | None = None) -> None:
        self.chain = chain
        self.observe = observe
        self.usage = usage
        self.policy = policy
        self.budget = budget
        self._deadline = deadline if callable(deadline) else (lambda: deadline)
        self.attempts = 0
        self.retries = 0
        self.hedges = 0  # duplicate attempts launched
        self.answered_by: Counter[str] = Counter()

    @property
    def deadline(self) -> float:
        """time.monotonic() by which calls stop; read afresh, since a joining request may extend it."""
        return self._deadline()

    def unavailable_reason(self) -> str | None:
        return None

    async def complete(self, request: ChatRequest) -> ChatReply:
        error: UpstreamError | None = None
        for upstream in self.chain:
            if time.monotonic() >= self.deadline:
                break
            if not upstream.breaker.allow():
                error = UpstreamUnavailable(
                    f"upstream for model {upstream.alias!r} is failing; circuit open, retry later",
                    retry_after=upstream.breaker.retry_after(),
                )
                continue
            try:
                reply = await self._call(upstream, request)
            except UpstreamError as exc:
                error = exc
                continue
            self.answered_by[upstream.alias] += 1  # (who answered each call: the request's, not the reply's)
            return reply
        raise error or CallCut("the request's deadline passed before the call could be made")

    async def _call(self, upstream: Upstream, request: ChatRequest) -> ChatReply:
        """Attempts on one upstream; the breaker already allowed the first."""
        self.budget.record_call()
        retry, empty = 0, False
        while True:
            try:
                reply = await self._hedged(upstream, request)
            except UpstreamError as exc:
                delay = self._retry_delay(upstream, exc, retry)
                if delay is None:
                    raise
            else:
                if empty or not is_empty(reply) or not self._may_retry_empty(retry):
                    return reply
                empty, delay = True, 0.0
            self.retries += 1
            retry += 1
            await asyncio.sleep(delay)

    async def _hedged(self, upstream: Upstream, request: ChatRequest) -> ChatReply:
        """One attempt, plus duplicates of it while it is slow; the first answer wins."""
        if upstream.hedge_after <= 0 or upstream.max_hedges <= 0:
            return await self._attempt(upstream, request)
        tasks = [asyncio.ensure_future(self._attempt(upstream, request))]
        error: BaseException | None = None
        first_delay, delay = upstream.hedge_delay(request), upstream.hedge_after
        try:
            while True:
                pending = [t for t in tasks if not t.done()]
                may_hedge = len(tasks) <= upstream.max_hedges
                wait = (first_delay if len(tasks) == 1 else delay) if may_hedge else None
                done, _ = await asyncio.wait(pending, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    if task.exception() is None:
                        losers = sum(not t.done() for t in tasks)
                        return replace(task.result(), hedged_losers=losers) if losers else task.result()
                    error = task.exception()
                if all(t.done() for t in tasks):
                    assert error is not None
                    raise error
                if not done and self._may_hedge(upstream, delay):
                    self.hedges += 1
                    tasks.append(asyncio.ensure_future(self._attempt(upstream, request)))
        finally:
            running = [t for t in tasks if not t.done()]
            for task in running:
                task.cancel()
            for task in tasks:  # an outcome nobody looked at is read, so none is reported as never retrieved
                if task.done() and not task.cancelled():
                    task.exception()
            if running:  # (the common case, one attempt that answered, has nothing to wait for)
                await asyncio.gather(*running, return_exceptions=True)

    def _may_hedge(self, upstream: Upstream, delay: float) -> bool:
        # Never queue a duplicate behind other calls, never near the deadline, never on a sick upstream.
        return (not upstream.slots.locked() and upstream.breaker.state == "closed"
                and time.monotonic() + delay < self.deadline)

    async def _attempt(self, upstream: Upstream, request: ChatRequest) -> ChatReply:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            upstream.breaker.release_probe()
            raise CallCut("the request's deadline passed before the call could be made")
        try:
            if upstream.slots.locked():  # wait_for costs a task per call: only when there is a wait
                await asyncio.wait_for(upstream.slots.acquire(), remaining)
            else:
                await upstream.slots.acquire()
        except TimeoutError:
            upstream.breaker.release_probe()
            raise CallCut(f"no free slot for model {upstream.alias!r} before the request's deadline") from None
        started = time.monotonic()
        try:
            self.attempts += 1
            # The client caps the attempt at the model's own timeout; the request's deadline
            # is watched here, since a request joining this computation may push it later.
            bare = request if request.timeout is None else replace(request, timeout=None)
            reply = await self._before_deadline(upstream.chat.complete(bare))
        except UpstreamError as exc:
            if self.usage is not None and isinstance(exc, UpstreamTimeout):
                self.usage.cut(request)
            if self.observe:
                self.observe(upstream.alias, time.monotonic() - started, exc.code if exc.status is None
                             else f"http_{exc.status}")
            # Only failures that say the upstream is unwell count against it; a 4xx
            # means it is up and answering (and a probe that got one succeeded).
            if exc.retryable:
                upstream.breaker.record_failure()
            else:
                upstream.breaker.record_success()
            # (A timer may fire a hair early: the deadline is "reached" within 5 ms of it.)
            if isinstance(exc, UpstreamTimeout) and time.monotonic() >= self.deadline - 0.005:
                raise CallCut(f"the request's deadline cut a call to model {upstream.alias!r}") from exc
            raise
        except BaseException:
            if self.usage is not None:
                self.usage.cut(request)
            # Cut at the request's deadline, the upstream was too slow: that counts against it.
            # Otherwise (the client left, a bug) there is no verdict on its health.
            if time.monotonic() >= self.deadline:
                upstream.breaker.record_failure()
            else:
                upstream.breaker.release_probe()
            raise
        finally:
            upstream.slots.release()
        upstream.breaker.record_success()
        if self.usage is not None:
            self.usage.answered(request, reply)
        if self.observe:
            self.observe(upstream.alias, time.monotonic() - started, None)
        return reply

    async def _before_deadline(self, call: Coroutine[Any, Any, ChatReply]) -> ChatReply:
        """`call`, cancelled when the request's deadline passes; a joining request may push the deadline
        later while it runs, so the timer looks again when it fires. In this task: no task per call."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            call.close()
            raise UpstreamTimeout("the request's deadline passed during the call")
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(None) as scope:
                def watch() -> None:
                    nonlocal timer
                    left = self.deadline - time.monotonic()
                    if left > 0:
                        timer = loop.call_later(left, watch)
                    else:
                        scope.reschedule(loop.time())  # expire now: the call is cancelled
                timer = loop.call_later(remaining, watch)
                try:
                    return await call
                finally:
                    timer.cancel()
        except TimeoutError:
            if scope.expired():
                raise UpstreamTimeout("the request's deadline passed during the call") from None
            raise

    def _may_retry_empty(self, retry: int) -> bool:
        return (retry + 1 < self.policy.max_attempts and time.monotonic() < self.deadline
                and self.budget.try_spend())

    def _retry_delay(self, upstream: Upstream, exc: UpstreamError, retry: int) -> float | None:
        """How long to wait before the next attempt, or None to give up on this upstream."""
        if not exc.retryable or retry + 1 >= self.policy.max_attempts:
            return None
        if exc.retry_after is not None:
            delay = exc.retry_after
        else:
            delay = backoff_delay(retry, self.policy.backoff_base_seconds, self.policy.backoff_max_seconds)
        if time.monotonic() + delay >= self.deadline:
            return None
        if upstream.breaker.state != "closed" or not self.budget.try_spend():
            return None
        return delay


def is_empty(reply: ChatReply) -> bool:
    """An answer with nothing in it to parse."""
    return not reply.text.strip() and not reply.top_logprobs
