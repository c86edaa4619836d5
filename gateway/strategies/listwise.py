"""Listwise ranking: RankGPT's sliding window over the candidate list.

Windows move from the back of the list to the front, so strong passages
found late in the input are carried upward one window at a time; with
window 20 and step 10, one pass over 100 documents is 9 sequential calls and
puts the best 10 in front (for a model that ranks each window perfectly).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import tiktoken

from gateway.config import ListwiseSettings
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
from gateway.strategies.sanitize import IDENTIFIER, instruction_line, safe_text
from gateway.strategies.scoring import linear_scores
from gateway.strategies.tokens import count_messages, count_text
from gateway.upstream.chat import ChatClient, ChatRequest, Message

_NUMBER = re.compile(r"\d+")
# "[12] > " costs about 4 tokens in cl100k/o200k; the rest is slack for spacing.
_TOKENS_PER_ID = 5
_MIN_PASSAGE_TOKENS = 16


@dataclass(frozen=True)
class ListwiseJob:
    query: str
    passages: list[str]  # already neutralized and truncated
    instruction: str = ""


def window_spans(n: int, window: int, step: int) -> list[tuple[int, int]]:
    """[start, end) spans, back to front, the last one starting at 0."""
    spans = []
    end = n
    while True:
        start = max(0, end - window)
        spans.append((start, end))
        if start == 0:
            return spans
        end -= step


def build_messages(prompt: Prompt, query: str, passages: list[str], instruction: str = "") -> list[Message]:
    """RankGPT's conversation: one user turn per passage, each acknowledged."""
    num = len(passages)
    messages = [
        {"role": "system", "content": prompt.render("system")},
        {"role": "user", "content": prompt.render("prefix", num=num, query=query, instruction=instruction)},
        {"role": "assistant", "content": prompt.render("prefix_ack")},
    ]
    for i, text in enumerate(passages, start=1):
        messages.append({"role": "user", "content": prompt.render("passage", id=i, text=text)})
        messages.append({"role": "assistant", "content": prompt.render("passage_ack", id=i)})
    messages.append(
        {"role": "user", "content": prompt.render("suffix", num=num, query=query, instruction=instruction)}
    )
    return messages


def parse_permutation(text: str, n: int) -> tuple[list[int], bool]:
    """Read a ranking such as "[2] > [3] > [1]" (or "⟦2⟧ > ⟦3⟧", see sanitize.IDENTIFIER) into 0-based positions.

    Identifiers are kept in answer order; duplicates and out-of-range ones are
    dropped and the missing ones appended in input order, so the result is
    always a full permutation of range(n). The flag says whether the answer
    held at least one usable identifier; when it is False the result is the
    input order.
    """
    answer = clean_answer(text)
    found = IDENTIFIER.findall(answer) or _NUMBER.findall(answer)
    seen: dict[int, None] = {}
    for token in found:
        if len(token) > 6:  # a digit run this long is no identifier (and int() on it is costly)
            continue
        position = int(token) - 1
        if 0 <= position < n:
            seen.setdefault(position, None)
    ranked = list(seen)
    ranked += [i for i in range(n) if i not in seen]
    return ranked, bool(seen)


def is_acknowledgement(prompt: Prompt, answer: str) -> bool:
    """Whether `answer` is one of the prompt's own "Received passage [n]." turns, echoed."""
    pattern = re.escape(prompt.render("passage_ack", id="987654321")).replace("987654321", r"\d+")
    return re.fullmatch(pattern, answer.strip()) is not None


def passage_budget(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, settings: ListwiseSettings, context_window: int,
    instruction: str = "",
) -> int:
    """Tokens each passage may use so a full window fits the model's context."""
    window = settings.window
    skeleton = count_messages(enc, build_messages(prompt, query, [""] * window, instruction))
    room = context_window - skeleton - output_tokens(window)
    # The floor keeps passages readable in a tiny context; a lower configured or
    # client-requested budget still wins.
    return min(settings.max_passage_tokens, max(_MIN_PASSAGE_TOKENS, room // window))


def output_tokens(window: int) -> int:
    return _TOKENS_PER_ID * window + 10


def prepare(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, texts: list[str],
    settings: ListwiseSettings, context_window: int, instruction: str | None = None,
) -> ListwiseJob:
    query = safe_text(enc, query, context_window // 4)
    extra = instruction_line(enc, instruction, context_window)
    budget = passage_budget(enc, prompt, query, settings, context_window, extra)
    return ListwiseJob(query, [safe_text(enc, t, budget) for t in texts], extra)


async def rank_listwise(
    chat: ChatClient, enc: tiktoken.Encoding, prompt: Prompt, job: ListwiseJob, settings: ListwiseSettings
) -> Ranking:
    """One back-to-front pass of the sliding window over `job.passages`."""
    n = len(job.passages)
    order = list(range(n))
    stats = CallStats()
    if n > 1:
        for start, end in window_spans(n, settings.window, settings.step):
            window = order[start:end]
            messages = build_messages(prompt, job.query, [job.passages[i] for i in window], job.instruction)
            request = ChatRequest(messages, max_tokens=output_tokens(len(window)))
            try:
                reply = await chat.complete(request)
            except UpstreamError as exc:
                stats.record_failure(exc)  # the window keeps its input order
                continue
            stats.record(enc, request, reply)
            permutation, parsed = parse_permutation(reply.text, len(window))
            if parsed and is_acknowledgement(prompt, reply.text):
                # Small models echo the conversation's "Received passage [20]." instead of ranking.
                permutation, parsed = list(range(len(window))), False
            if not parsed:
                stats.parse_failures += 1
            order[start:end] = [window[p] for p in permutation]
    return Ranking(order, linear_scores(n), stats)


class SlidingWindow(PromptedStrategy[ListwiseSettings]):
    """`Strategy` "listwise": RankGPT's back-to-front sliding window."""

    name = "listwise"

    def estimate_tokens(self, task: RankTask) -> int:
        """Each window's prompt with passages of the job's mean length (which passages a window
        holds depends on the answers before it), plus the identifiers it may answer."""
        settings = with_budget(self.settings, task.token_budget)
        job = prepare(task.encoding, self.prompt, task.query, list(task.texts), settings, task.context_window,
                      task.instruction)
        n = len(job.passages)
        if n < 2:
            return 0
        mean = sum(count_text(task.encoding, p) for p in job.passages) / n
        skeletons: dict[int, int] = {}
        total = 0.0
        for start, end in window_spans(n, settings.window, settings.step):
            size = end - start
            if size not in skeletons:
                empty = build_messages(self.prompt, job.query, [""] * size, job.instruction)
                skeletons[size] = count_messages(task.encoding, empty)
            total += skeletons[size] + size * mean + output_tokens(size)
        return math.ceil(total)

    async def rank(self, chat: ChatClient, task: RankTask) -> Ranking:
        settings = with_budget(self.settings, task.token_budget)
        job = await off_loop(task.texts, lambda: prepare(task.encoding, self.prompt, task.query, list(task.texts),
                                                         settings, task.context_window, task.instruction))
        return await rank_listwise(chat, task.encoding, self.prompt, job, settings)
