"""Pointwise ranking: one graded-relevance judgement per document.

The model answers a single label 0..K. With logprobs, the score is the
expected label under the first token's `top_logprobs` distribution, divided
by K, which separates documents the bare label would tie. Without logprobs
it is the label itself over K. Calls fan out concurrently under a bound.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable, Sequence

import tiktoken

from gateway.config import ConfigError, PointwiseSettings
from gateway.errors import UpstreamError
from gateway.strategies.base import (
    CallStats,
    PromptedStrategy,
    Ranking,
    RankTask,
    clean_answer,
    off_loop,
    with_budget,
)
from gateway.strategies.prompts import Prompt
from gateway.strategies.sanitize import instruction_line, safe_text
from gateway.strategies.tokens import count_messages, count_messages_above
from gateway.upstream.chat import ChatClient, ChatReply, ChatRequest, Message

# A document whose call or parse failed scores this, and sorts after every
# document that was scored.
FALLBACK_SCORE = 0.0
_LABEL = re.compile(r"(?<!\d)(?<!\d\.)\d+(?!\d|\.\d)")  # an integer, not part of a decimal
_TOKEN_NOISE = " \t\n\"'*`.:()[]{}"


def check_labels(prompt: Prompt, max_label: int) -> None:
    """The prompt's rubric must define exactly the labels 0..max_label."""
    if sorted(prompt.labels) != list(range(max_label + 1)):
        raise ConfigError(
            f"{prompt.path or prompt.name}: labels: defines {sorted(prompt.labels)}, "
            f"but pointwise.max_label is {max_label} (needs 0..{max_label})"
        )


def system_text(prompt: Prompt, max_label: int) -> str:
    scale = "\n".join(f"{k} = {prompt.labels[k]}" for k in sorted(prompt.labels))
    return prompt.render("system", max_label=max_label, scale=scale)


def build_messages(
    prompt: Prompt, query: str, text: str, max_label: int, instruction: str = "", system: str | None = None,
) -> list[Message]:
    """One document's conversation; `system`: the rubric, when the caller rendered it once for many."""
    user = prompt.render("user", query=query, text=text, max_label=max_label, instruction=instruction)
    # Fresh dicts per conversation: LiteLLM may fix up a message in place.
    return [{"role": "system", "content": system if system is not None else system_text(prompt, max_label)},
            {"role": "user", "content": user}]


def expected_label(top_logprobs: list[tuple[str, float]], max_label: int) -> float | None:
    """E[label] under the label tokens among the alternatives; None if there are none.

    Variants of one label (" 2", "2", "**2") add up; other tokens are ignored.
    """
    mass = [0.0] * (max_label + 1)
    for token, logprob in top_logprobs:
        label = clean_answer(token).strip(_TOKEN_NOISE)
        if label.isdigit() and len(label) == 1 and int(label) <= max_label and math.isfinite(logprob):
            mass[int(label)] += math.exp(min(logprob, 0.0))  # a log-probability above 0 is malformed
    total = sum(mass)
    if total <= 0:
        return None
    return sum(k * m for k, m in enumerate(mass)) / total


def parse_label(text: str, max_label: int) -> int | None:
    """The first integer in the answer if it is on the scale; otherwise None."""
    match = _LABEL.search(clean_answer(text))
    if match is None or len(match.group()) > 2:
        return None
    label = int(match.group())
    return label if label <= max_label else None


def score_reply(reply: ChatReply, max_label: int) -> float | None:
    """0-1 score of one answer, or None when it holds no usable label."""
    expected = expected_label(reply.top_logprobs, max_label) if reply.top_logprobs else None
    if expected is None:
        label = parse_label(reply.text, max_label)
        expected = float(label) if label is not None else None
    return None if expected is None else min(1.0, max(0.0, expected / max_label))


def conversation_builder(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, settings: PointwiseSettings, context_window: int,
    instruction: str | None = None,
) -> Callable[[str], list[Message]]:
    """A function from a document's text to its conversation, the passage cut to fit the context."""
    query = safe_text(enc, query, context_window // 4)
    extra = instruction_line(enc, instruction, context_window)
    full = context_window - 8 - settings.max_passage_tokens
    skeleton = count_messages_above(enc, build_messages(prompt, query, "", settings.max_label, extra), full)
    budget = min(settings.max_passage_tokens, max(16, context_window - skeleton - 8))
    system = system_text(prompt, settings.max_label)  # the same rubric for every document
    return lambda text: build_messages(prompt, query, safe_text(enc, text, budget), settings.max_label, extra,
                                       system)


def task_builder(task: RankTask, prompt: Prompt, settings: PointwiseSettings) -> Callable[[str], list[Message]]:
    """`conversation_builder` for one request's task, under the client's per-document budget."""
    return conversation_builder(task.encoding, prompt, task.query, with_budget(settings, task.token_budget),
                                task.context_window, task.instruction)


def prepare(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, texts: list[str],
    settings: PointwiseSettings, context_window: int, instruction: str | None = None,
) -> list[list[Message]]:
    """One conversation per document, each passage cut to fit the context."""
    build = conversation_builder(enc, prompt, query, settings, context_window, instruction)
    return [build(t) for t in texts]


def answer_tokens(logprobs: bool) -> int:
    """One token is the answer; without logprobs a little slack lets "2." or " 2" through."""
    return 1 if logprobs else 3


def grading_bound(enc: tiktoken.Encoding, build: Callable[[str], list[Message]], texts: Sequence[str], count: int,
                  logprobs: bool) -> int:
    """Tokens of the `count` costliest single-document calls among `texts`: a bound on grading any `count`."""
    if count <= 0:
        return 0
    costs = sorted((count_messages(enc, build(t)) for t in texts), reverse=True)
    return sum(costs[:count]) + min(count, len(costs)) * answer_tokens(logprobs)


async def grade(chat: ChatClient, enc: tiktoken.Encoding, messages: list[Message], settings: PointwiseSettings,
                logprobs: bool, stats: CallStats) -> float | None:
    """One document's 0-1 score, or None when its call failed or its answer held no label (counted in `stats`)."""
    request = ChatRequest(messages, max_tokens=answer_tokens(logprobs),
                          top_logprobs=settings.top_logprobs if logprobs else 0)
    try:
        reply = await chat.complete(request)
    except UpstreamError as exc:
        stats.record_failure(exc)
        return None
    stats.record(enc, request, reply)
    score = score_reply(reply, settings.max_label)
    if score is None:
        stats.parse_failures += 1
    return score


async def rank_pointwise(
    chat: ChatClient, enc: tiktoken.Encoding, conversations: list[list[Message]],
    settings: PointwiseSettings, logprobs: bool,
) -> Ranking:
    stats = CallStats()
    limit = asyncio.Semaphore(settings.concurrency)

    async def judge(messages: list[Message]) -> float | None:
        async with limit:
            return await grade(chat, enc, messages, settings, logprobs, stats)

    # A TaskGroup cancels the siblings if one call raises something that is not
    # a per-document failure (a missing key, say), instead of leaving them running.
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(judge(m)) for m in conversations]
    except ExceptionGroup as failure:
        raise failure.exceptions[0] from None
    return scored_ranking([task.result() for task in tasks], stats, cut=stats.cut_calls)


def scored_ranking(scores: list[float | None], stats: CallStats, cut: int = 0) -> Ranking:
    """Scored documents first by score, then the unscored ones (failures, cut calls) in input order.

    Ties keep input order. `cut` documents were never scored because the deadline came.
    """
    order = sorted(range(len(scores)), key=lambda i: (scores[i] is None, -(scores[i] or 0.0), i))
    return Ranking(order, [scores[i] if scores[i] is not None else FALLBACK_SCORE for i in order], stats,
                   "calibrated", cut)


class Pointwise(PromptedStrategy[PointwiseSettings]):
    """`Strategy` "pointwise": one graded judgement per document, fanned out concurrently."""

    name = "pointwise"

    def __init__(self, settings: PointwiseSettings, prompt: Prompt) -> None:
        check_labels(prompt, settings.max_label)
        super().__init__(settings, prompt)

    def estimate_tokens(self, task: RankTask) -> int:
        """Exact prompts (one per document) plus the label each call may answer."""
        settings = with_budget(self.settings, task.token_budget)
        conversations = self._conversations(task, settings)
        return sum(count_messages(task.encoding, m) + answer_tokens(task.logprobs) for m in conversations)

    async def rank(self, chat: ChatClient, task: RankTask) -> Ranking:
        settings = with_budget(self.settings, task.token_budget)
        conversations = await off_loop(task.texts, lambda: self._conversations(task, settings))
        return await rank_pointwise(chat, task.encoding, conversations, settings, task.logprobs)

    def _conversations(self, task: RankTask, settings: PointwiseSettings) -> list[list[Message]]:
        return task.prepared(self, lambda: prepare(task.encoding, self.prompt, task.query, list(task.texts), settings,
                                                   task.context_window, task.instruction))
