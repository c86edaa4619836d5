"""What a strategy returns, and the bookkeeping every strategy shares."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

import tiktoken

from gateway.errors import UpstreamError
from gateway.llm import ChatReply, ChatRequest
from gateway.tokens import count_messages, count_text

# Model output is untrusted: parsers look at a bounded prefix only.
MAX_PARSED_CHARS = 20_000


@dataclass
class CallStats:
    """LLM calls made for one request, and the tokens they cost."""

    calls: int = 0
    failed_calls: int = 0
    parse_failures: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    errors: list[UpstreamError] = field(default_factory=list)

    def record(self, enc: tiktoken.Encoding, request: ChatRequest, reply: ChatReply) -> None:
        """Count a finished call: the upstream's usage when reported, tiktoken's otherwise."""
        self.calls += 1
        if reply.prompt_tokens is not None:
            self.prompt_tokens += reply.prompt_tokens
            self.completion_tokens += reply.completion_tokens or 0
        else:
            self.prompt_tokens += count_messages(enc, request.messages)
            self.completion_tokens += count_text(enc, reply.text)

    def record_failure(self, error: UpstreamError) -> None:
        self.calls += 1
        self.failed_calls += 1
        self.errors.append(error)


@dataclass(frozen=True)
class Ranking:
    """Document indices best first, with their 0-1 scores (non-increasing)."""

    order: list[int]
    scores: list[float]
    stats: CallStats


def linear_scores(n: int) -> list[float]:
    """Scores by final rank r (1-based): 1 - (r-1)/(n-1); a single document scores 1."""
    if n == 1:
        return [1.0]
    return [1 - r / (n - 1) for r in range(n)]


def clean_answer(text: str) -> str:
    """Normalize a model answer before parsing.

    Reasoning models put their thinking first; only what follows `</think>`
    is the answer. NFKC folds look-alike digits (full-width, circled,
    superscript) into ASCII.
    """
    text = text[:MAX_PARSED_CHARS]
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    return unicodedata.normalize("NFKC", text)


def fuse(order: list[int], scores: list[float], weight: float) -> tuple[list[int], list[float]]:
    """Blend LLM scores with the caller's first-stage order: weight * llm + (1 - weight) * prior.

    The prior of the document at input position i of n is 1 - i/(n-1) (linear, like
    listwise scores), so weight 1 is the LLM alone and weight 0 the input order.
    Ties keep input order; the result is sorted, so scores stay non-increasing.
    """
    if weight >= 1:
        return order, scores
    prior = linear_scores(len(order))
    blended = {i: weight * s + (1 - weight) * prior[i] for i, s in zip(order, scores, strict=True)}
    fused = sorted(blended, key=lambda i: (-blended[i], i))
    return fused, [min(1.0, max(0.0, blended[i])) for i in fused]
