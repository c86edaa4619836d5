"""Batched pointwise: several passages per call, one graded label each, all batches in one round.

The prompt lists `batch_size` passages as `[n] text` lines and asks for one line
per passage, `[n] label`. With logprobs each label is scored from the
alternatives of its own token (the expected label over 0..K, divided by K), as
single-document pointwise scores the first token. Calls drop k-fold against
one-per-document, and the rubric and query are sent once per batch, not once
per document.

Documents are dealt to batches round robin (document i to batch i mod B), so
every batch holds a mix of the caller's ranks instead of one batch of all the
best. A document a batch's answer leaves out is graded alone (one whose batch
call failed is not: the chain already retried it), once, up to one
such call per batch or one batch's worth (more left out means the model cannot
answer in batches: the rest stay unscored, below the scored ones, and the answer
counts the parse failures); that keeps what a request may cost bounded before
it is sent.

`consistency = m` deals the documents m times, the later passes shuffled, all in
the same round, and averages each document's m scores: a judgement that one
prompt got wrong weighs 1/m.
"""

from __future__ import annotations

import asyncio
import math
import re

from gateway.config import BatchedSettings, ConfigError, PointwiseSettings
from gateway.errors import UpstreamError
from gateway.strategies.base import CallStats, Ranking, RankTask, clean_answer, off_loop, with_budget
from gateway.strategies.consistency import shuffles
from gateway.strategies.pointwise import (
    check_labels,
    expected_label,
    grade,
    grading_bound,
    scored_ranking,
    task_builder,
)
from gateway.strategies.prompts import Prompt
from gateway.strategies.sanitize import instruction_line, safe_text
from gateway.strategies.tokens import count_messages, count_messages_above
from gateway.strategies.window import EMPTY_PASSAGE
from gateway.upstream.chat import ChatClient, ChatReply, ChatRequest, Message

# "[12] 3" then a line break: about 5 tokens in cl100k/o200k, and a little slack.
_TOKENS_PER_LINE = 6
_LINE = re.compile(r"^[ \t>*\-]*\[?[ \t]*(\d{1,4})[ \t]*\]?[ \t]*[:=.)\-]?[ \t]*(\d{1,2})(?![\d.])", re.MULTILINE)


def build_messages(prompt: Prompt, query: str, passages: list[str], max_label: int,
                   instruction: str = "") -> list[Message]:
    scale = "\n".join(f"{k} = {prompt.labels[k]}" for k in sorted(prompt.labels))
    lines = "\n".join(prompt.render_passages(passages))
    user = prompt.render("user", query=query, passages=lines, num=len(passages), max_label=max_label,
                         instruction=instruction)
    return [{"role": "system", "content": prompt.render("system", max_label=max_label, scale=scale)},
            {"role": "user", "content": user}]


def batches(n: int, size: int) -> list[list[int]]:
    """Document indices dealt round robin into ceil(n / size) batches."""
    count = max(1, math.ceil(n / size))
    return [list(range(b, n, count)) for b in range(count)]


def parse_labels(reply: ChatReply, n: int, max_label: int) -> dict[int, float]:
    """0-1 scores by 0-based position from "[id] label" lines: from each label token's logprobs when there are some."""
    text, offsets = _token_text(reply)
    if not offsets:
        text = clean_answer(reply.text)
    scores: dict[int, float] = {}
    thinking = text.rfind("</think>")  # a reasoning model's answer follows its thinking
    for match in _LINE.finditer(text, thinking + 1 if thinking >= 0 else 0):
        position, label = int(match.group(1)) - 1, int(match.group(2))
        if not 0 <= position < n or position in scores or label > max_label:
            continue
        expected = None
        if offsets:
            token = _token_at(offsets, match.start(2))
            expected = expected_label(reply.token_logprobs[token][1], max_label) if token is not None else None
        scores[position] = (label if expected is None else expected) / max_label
    return scores


def _token_text(reply: ChatReply) -> tuple[str, list[int]]:
    """The answer as its tokens spell it, and each token's start offset ([] without logprobs)."""
    if not reply.token_logprobs:
        return reply.text, []
    offsets, at = [], 0
    for token, _ in reply.token_logprobs:
        offsets.append(at)
        at += len(token)
    return "".join(token for token, _ in reply.token_logprobs)[:20_000], offsets


def _token_at(offsets: list[int], char: int) -> int | None:
    for index in range(len(offsets) - 1, -1, -1):
        if offsets[index] <= char:
            return index
    return None


class BatchedPointwise:
    """`Strategy` "batched": graded labels for `batch_size` documents per call, every batch at once."""

    name = "batched"

    def __init__(self, settings: BatchedSettings, pointwise: PointwiseSettings, prompt: Prompt,
                 single: Prompt) -> None:
        if prompt.kind != "batched":
            raise ConfigError(f"batched.prompt: {prompt.path or prompt.name}: is a {prompt.kind} prompt, "
                              "expected batched")
        check_labels(prompt, pointwise.max_label)
        self.settings = settings
        self.pointwise = pointwise
        self.prompt = prompt
        self.single = single  # for documents a batch's answer left out
        self.prompt_version = prompt.version

    def cache_params(self) -> dict[str, object]:
        return {"settings": self.settings.model_dump(), "pointwise": self.pointwise.model_dump(),
                "prompt": self.prompt.version, "single": self.single.version}

    def calls(self, task: RankTask) -> list[tuple[list[int], ChatRequest]]:
        """Every batch call of a request, with the documents it holds: `consistency` passes, the first
        in the caller's order, the others shuffled (seeded), so each document meets other neighbours
        at another place."""
        settings = with_budget(self.settings, task.token_budget)
        enc, texts, max_label = task.encoding, list(task.texts), self.pointwise.max_label
        query = safe_text(enc, task.query, task.context_window // 4)
        extra = instruction_line(enc, task.instruction, task.context_window)
        size = min(settings.batch_size, len(texts))
        full = task.context_window - (_TOKENS_PER_LINE + settings.max_passage_tokens) * size
        skeleton = count_messages_above(enc, build_messages(self.prompt, query, [""] * size, max_label, extra), full)
        room = task.context_window - skeleton - _TOKENS_PER_LINE * size
        budget = min(settings.max_passage_tokens, max(16, room // size))
        passages = [safe_text(enc, t, budget) or EMPTY_PASSAGE for t in texts]
        top_logprobs = self.pointwise.top_logprobs if task.logprobs else 0
        calls = []
        for order in shuffles(range(len(texts)), settings.consistency):
            for positions in batches(len(texts), size):
                batch = [order[i] for i in positions]
                messages = build_messages(self.prompt, query, [passages[i] for i in batch], max_label, extra)
                calls.append((batch, ChatRequest(messages, max_tokens=_TOKENS_PER_LINE * len(batch) + 4,
                                                 top_logprobs=top_logprobs,
                                                 expected_tokens=_TOKENS_PER_LINE * len(batch))))
        return calls

    def max_alone(self, n: int) -> int:
        """Documents graded alone at most: one per batch of a pass, or one batch's worth, whichever is
        more; a model that cannot answer in batches (or an upstream failing them) then costs about
        twice the calls, not a call per document on top."""
        size = min(self.settings.batch_size, n)
        return min(n, max(size, len(batches(n, size))))

    def estimate_tokens(self, task: RankTask) -> int:
        """Exact batch prompts and the lines they may answer, plus the costliest documents that may be
        graded alone."""
        if not task.texts:
            return 0
        calls = sum(count_messages(task.encoding, r.messages) + r.max_tokens for _, r in self.calls(task))
        return calls + grading_bound(task.encoding, task_builder(task, self.single, self.pointwise), task.texts,
                                     self.max_alone(len(task.texts)), task.logprobs)

    async def rank(self, chat: ChatClient, task: RankTask) -> Ranking:
        enc, texts, max_label = task.encoding, list(task.texts), self.pointwise.max_label
        stats = CallStats()
        judged: list[list[float]] = [[] for _ in texts]
        answered: set[int] = set()  # documents some batch answer was about
        limit = asyncio.Semaphore(self.pointwise.concurrency)

        async def judge(batch: list[int], request: ChatRequest) -> None:
            async with limit:
                try:
                    reply = await chat.complete(request)
                except UpstreamError as exc:
                    stats.record_failure(exc)
                    return
            stats.record(enc, request, reply)
            answered.update(batch)
            found = parse_labels(reply, len(batch), max_label)
            if not found:
                stats.parse_failures += 1
            for position, doc in enumerate(batch):
                if position in found:
                    judged[doc].append(found[position])

        calls = await off_loop(texts, lambda: self.calls(task))
        await asyncio.gather(*(judge(batch, request) for batch, request in calls))
        scores: list[float | None] = [sum(s) / len(s) if s else None for s in judged]
        # Only what an answer left out: a batch whose call failed was retried by the chain already, and
        # asking the same upstream once per document would multiply the failures, not cure them.
        left_out = [doc for doc, s in enumerate(scores) if s is None and doc in answered][:self.max_alone(len(texts))]
        if left_out and not stats.cut_calls:
            build = task_builder(task, self.single, self.pointwise)
            settings = with_budget(self.pointwise, task.token_budget)

            async def alone(doc: int) -> None:
                async with limit:
                    scores[doc] = await grade(chat, enc, build(texts[doc]), settings, task.logprobs, stats)

            await asyncio.gather(*(alone(d) for d in left_out))
        cut = sum(s is None for s in scores) if stats.cut_calls else 0
        return scored_ranking(scores, stats, cut=cut)
