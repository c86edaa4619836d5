"""The seam between ranking strategies and chat models.

Strategies see a `ChatClient`: one `complete(request) -> reply` call. The real
one (`gateway.upstream.litellm_client`) goes through `litellm.acompletion`;
`MockChatClient` answers in process for unit tests, the way httpx's
`MockTransport` stands in for the network.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

Message = dict[str, str]
# One generated token and its alternatives (most likely first).
TokenLogprobs = tuple[str, list[tuple[str, float]]]

# What of an answer's text a client keeps: rankings and labels are short, and everything after
# this is neither parsed nor counted (an upstream can send megabytes).
MAX_ANSWER_CHARS = 20_000


@dataclass(frozen=True)
class ChatRequest:
    messages: list[Message]
    max_tokens: int
    top_logprobs: int = 0  # 0: do not ask for logprobs
    timeout: float | None = None  # this attempt's time left; capped at the model's own timeout
    expected_tokens: int = 0  # how long the answer usually is (0: max_tokens); hedging waits for it


@dataclass(frozen=True)
class ChatReply:
    text: str
    # Alternatives for the first generated token, most likely first; empty when
    # the model returned no logprobs.
    top_logprobs: list[tuple[str, float]] = field(default_factory=list)
    prompt_tokens: int | None = None  # None: the upstream did not report usage
    completion_tokens: int | None = None
    # Every generated token with its alternatives (a bounded prefix), for answers that
    # carry several labels; empty when the model returned no logprobs.
    token_logprobs: list[TokenLogprobs] = field(default_factory=list)
    # Duplicate attempts of this call that lost the race to it (hedging) and were cancelled:
    # the upstream may bill them, so usage counts them as this call's size again.
    hedged_losers: int = 0


class ChatClient(Protocol):
    async def complete(self, request: ChatRequest) -> ChatReply: ...

    def unavailable_reason(self) -> str | None: ...


class MockChatClient:
    """Answers every request with `handler(request)`; records what it was asked."""

    def __init__(self, handler: Callable[[ChatRequest], ChatReply | Awaitable[ChatReply]]) -> None:
        self.handler = handler
        self.requests: list[ChatRequest] = []

    async def complete(self, request: ChatRequest) -> ChatReply:
        self.requests.append(request)
        reply = self.handler(request)
        if isinstance(reply, Awaitable):
            reply = await reply
        return reply

    def unavailable_reason(self) -> str | None:
        return None
