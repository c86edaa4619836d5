"""The strategy protocol: what a strategy is given, what it returns, and the bookkeeping all share.

A strategy turns a `RankTask` (one request's query and passages, and what the
models that may answer can do) into a `Ranking`, through a `ChatClient`. Each
one lives in its own module and is listed in `gateway.strategies.registry`;
adding one is a module and a registry line.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar

import tiktoken

from gateway.errors import CallCut, UpstreamError
from gateway.strategies.prompts import Prompt
from gateway.strategies.sanitize import fold
from gateway.strategies.tokens import count_messages, count_text
from gateway.upstream.chat import MAX_ANSWER_CHARS, ChatClient, ChatReply, ChatRequest

# Model output is untrusted: parsers look at a bounded prefix only.
MAX_PARSED_CHARS = MAX_ANSWER_CHARS
# Building prompts is CPU work linear in the (cut) text: past this many characters of input it
# runs in a worker thread, so probes and other requests are answered meanwhile (tiktoken and
# the regexes let the event loop in between).
OFF_LOOP_CHARS = 200_000
T = TypeVar("T")


async def off_loop(texts: Sequence[str], work: Callable[[], T]) -> T:
    """`work()`, in a worker thread when `texts` are long enough to stall the event loop."""
    if sum(map(len, texts)) < OFF_LOOP_CHARS:
        return work()
    return await asyncio.to_thread(work)


@dataclass
class CallStats:
    """LLM calls made for one request, and the tokens they cost."""

    calls: int = 0
    failed_calls: int = 0
    parse_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cut_calls: int = 0  # calls the request's deadline cut or left no time for (not in `calls`)
    first_fallbacks: int = 0  # FIRST windows answered without usable logprobs, re-asked for a permutation
    hedged_losers: int = 0  # duplicate attempts that lost the race and were cancelled (billed as estimated)
    errors: list[UpstreamError] = field(default_factory=list)

    def record(self, enc: tiktoken.Encoding, request: ChatRequest, reply: ChatReply) -> None:
        """Count a finished call: the upstream's usage when reported, tiktoken's otherwise.

        Never more completion tokens than the call asked for, whatever the upstream says or sends.
        Cancelled hedges of the call may still be billed by the upstream; each is counted as the
        same size as the answer that won (an estimate).
        """
        self.calls += 1
        if reply.prompt_tokens is not None:
            prompt, completion = max(0, reply.prompt_tokens), reply.completion_tokens or 0
        else:
            prompt = count_messages(enc, request.messages)
            completion = count_text(enc, reply.text[:MAX_PARSED_CHARS])
        completion = min(max(0, completion), request.max_tokens)
        copies = 1 + reply.hedged_losers
        self.hedged_losers += reply.hedged_losers
        self.prompt_tokens += copies * prompt
        self.completion_tokens += copies * completion

    def record_failure(self, error: UpstreamError) -> None:
        if isinstance(error, CallCut):
            self.cut_calls += 1
            return
        self.calls += 1
        self.failed_calls += 1
        self.errors.append(error)


ScoreType = Literal["calibrated", "rank"]


@dataclass(frozen=True)
class Ranking:
    """Document indices best first, with their 0-1 scores (non-increasing).

    `score_type` says what a score means: "calibrated" is graded relevance (0.5 and
    above: relevant), "rank" comes from positions only. `unranked` counts documents
    that no finished call saw because the deadline cut theirs: they sit below the
    ranked ones in the caller's order (a partial answer).
    """

    order: list[int]
    scores: list[float]
    stats: CallStats
    score_type: ScoreType = "rank"
    unranked: int = 0


def clean_answer(text: str) -> str:
    """Normalize a model answer before parsing.

    Reasoning models put their thinking first; only what follows `</think>`
    is the answer. `fold` is the sanitizer's own: look-alike digits (full-width,
    circled, superscript) become ASCII and invisible characters go, so an answer
    and a document agree on what an identifier is.
    """
    text = text[:MAX_PARSED_CHARS]
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return fold(text)


@dataclass(frozen=True)
class RankTask:
    """One request's ranking job, as every strategy sees it."""

    query: str
    texts: Sequence[str]
    encoding: tiktoken.Encoding
    # The smallest context and the weakest abilities among the models that may
    # answer (fallbacks included): a prompt must suit every one of them.
    context_window: int
    logprobs: bool
    instruction: str | None = None
    token_budget: int | None = None  # the client's per-document budget, when it asked for one
    # What `prepared` built for this task, by its key: never part of equality.
    _prepared: dict[object, Any] = field(default_factory=dict, compare=False, repr=False)

    def prepared(self, key: object, build: Callable[[], T]) -> T:
        """`build()`, once per task and `key`: a metered request estimates its cost from the same
        prepared passages it is then ranked with, so they are prepared once, not twice."""
        if key not in self._prepared:
            self._prepared[key] = build()
        return self._prepared[key]  # type: ignore[no-any-return]


class Strategy(Protocol):
    """A ranking method: one request's passages in, a `Ranking` out."""

    name: str
    prompt_version: str

    def cache_params(self) -> dict[str, Any]:
        """Everything besides the task that decides this strategy's ranking (part of the cache key)."""
        ...

    def estimate_tokens(self, task: RankTask) -> int:
        """The tokens one `rank(chat, task)` will use: the prompt tokens of every call it makes plus
        the completion tokens it allows them (`max_tokens`), before any call is made.

        A key's token limit reserves this at admission and settles the real usage afterwards, so it
        should be close (a little over is fine) and cheap next to the calls themselves.
        `PromptedStrategy` has a generic upper bound; a strategy that knows its calls does better.
        """
        ...

    async def rank(self, chat: ChatClient, task: RankTask) -> Ranking: ...


class _Budgeted(Protocol):
    max_passage_tokens: int

    def model_copy(self, *, update: dict[str, Any]) -> Any: ...


S = TypeVar("S", bound=_Budgeted)


def with_budget(settings: S, token_budget: int | None) -> S:
    """The strategy's settings, with the client's per-document token budget when it is lower."""
    if token_budget and token_budget < settings.max_passage_tokens:
        return settings.model_copy(update={"max_passage_tokens": token_budget})  # type: ignore[no-any-return]
    return settings


class PromptedStrategy(Generic[S]):
    """The common part of strategies driven by one prompt file and one settings section."""

    name: ClassVar[str]

    def __init__(self, settings: S, prompt: Prompt) -> None:
        self.settings = settings
        self.prompt = prompt
        self.prompt_version = prompt.version

    def cache_params(self) -> dict[str, Any]:
        return {"settings": self.settings.model_dump(), "prompt": self.prompt.version}  # type: ignore[attr-defined]

    def estimate_tokens(self, task: RankTask) -> int:
        """Generic upper bound: every passage once at its full budget, with the query and the
        instruction, in one call per document, plus a little output each."""
        budget = with_budget(self.settings, task.token_budget).max_passage_tokens
        per_call = 64 + count_text(task.encoding, task.query[:4096]) + count_text(
            task.encoding, (task.instruction or "")[:4096])
        return len(task.texts) * (per_call + budget + 16)


class TokenUsage:
    """Counts the tokens one request's LLM calls used, whatever happens to the request afterwards.

    `RequestChat` reports each attempt: an answer counts the upstream's usage (tiktoken's when it
    reports none); an attempt cut off mid-way (its timeout, the request's deadline, a client gone)
    counts its prompt, which the upstream has most likely processed and billed. An attempt that
    failed with an error answer, or was never sent, counts nothing.
    """

    def __init__(self, encoding: tiktoken.Encoding) -> None:
        self.encoding = encoding
        self.tokens = 0

    def answered(self, request: ChatRequest, reply: ChatReply) -> None:
        # As `CallStats.record`: never more output than the call asked for.
        if reply.prompt_tokens is not None:
            completion = max(0, int(reply.completion_tokens or 0))
            self.tokens += max(0, int(reply.prompt_tokens)) + min(completion, request.max_tokens)
        else:
            completion = count_text(self.encoding, reply.text[:MAX_PARSED_CHARS])
            self.tokens += count_messages(self.encoding, request.messages) + min(completion, request.max_tokens)

    def cut(self, request: ChatRequest) -> None:
        self.tokens += count_messages(self.encoding, request.messages)
