"""Ranking one window of passages: a generated permutation, or FIRST's single token; optionally several shuffled passes.

`WindowRanker.rank` is what sliding windows and TDPart call for each window. It
never raises for a failed or unusable call: the window then keeps its input
order (`ok` False), and the failure is counted in the request's `CallStats`
(a call the deadline cut as `cut_calls`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import tiktoken

from gateway.config import ListwiseSettings
from gateway.errors import CallCut, UpstreamError
from gateway.strategies.base import CallStats
from gateway.strategies.consistency import borda, shuffles
from gateway.strategies.first import first_ranking
from gateway.strategies.prompts import Prompt
from gateway.strategies.window import (
    ListwiseJob,
    answer_ids,
    build_messages,
    expected_tokens,
    is_acknowledgement,
    output_tokens,
    parse_ranking,
)
from gateway.upstream.chat import ChatClient, ChatReply, ChatRequest


@dataclass(frozen=True)
class WindowOrder:
    """A window's ranking: positions into the window's members, best first (a full permutation)."""

    order: list[int]
    named: int  # the first `named` were placed by the model; the rest keep input order
    ok: bool  # at least one pass gave a usable answer
    cut: bool = False  # no pass finished: the deadline cut them

    @classmethod
    def unchanged(cls, n: int, cut: bool = False) -> WindowOrder:
        return cls(list(range(n)), 0, False, cut)


class WindowRanker:
    """Ranks windows for one request, with its prompt, settings and call accounting."""

    def __init__(self, prompt: Prompt, settings: ListwiseSettings, enc: tiktoken.Encoding, stats: CallStats,
                 first: bool = False) -> None:
        self.prompt = prompt
        self.settings = settings
        self.enc = enc
        self.stats = stats
        self.first = first

    async def rank(self, chat: ChatClient, job: ListwiseJob, members: Sequence[int],
                   limit: int | None = None) -> WindowOrder:
        """Order `members` (document indices); `limit`: only the best `limit` are needed (a shorter answer)."""
        n = len(members)
        if n < 2:
            return WindowOrder(list(range(n)), n, True)
        if self.settings.consistency <= 1:  # one pass: no task to gather it in, no Borda
            return await self._once(chat, job, list(members), limit)
        passes = shuffles(range(n), self.settings.consistency)
        results = await asyncio.gather(*(self._once(chat, job, [members[i] for i in p], limit) for p in passes))
        finished = [(p, r) for p, r in zip(passes, results, strict=True) if r.ok]
        if not finished:
            return WindowOrder.unchanged(n, cut=all(r.cut for r in results))
        # Each pass ranked its own arrangement: map its positions back to the window's.
        aligned = [([p[i] for i in r.order], r.named) for p, r in finished]
        order, named = borda(aligned, n)
        return WindowOrder(order, named, True)

    async def _once(self, chat: ChatClient, job: ListwiseJob, members: list[int], limit: int | None) -> WindowOrder:
        passages = [job.passages[i] for i in members]
        if self.first:
            request = ChatRequest(build_messages(self.prompt, job.query, passages, job.instruction, first=True),
                                  max_tokens=1, top_logprobs=self.settings.first_top_logprobs)
            reply = await self._call(chat, request, len(members))
            if isinstance(reply, WindowOrder):
                return reply
            ranked = first_ranking(reply.top_logprobs, len(members))
            if ranked:
                return _complete(ranked, len(members))
            # No logprobs came back (or none named a passage): ask this window for a permutation.
            self.stats.first_fallbacks += 1
        ids = answer_ids(len(members), limit)
        request = ChatRequest(build_messages(self.prompt, job.query, passages, job.instruction),
                              max_tokens=output_tokens(ids), expected_tokens=expected_tokens(ids))
        reply = await self._call(chat, request, len(members))
        if isinstance(reply, WindowOrder):
            return reply
        ranked = parse_ranking(reply.text, len(members))
        if ranked and is_acknowledgement(self.prompt, reply.text):
            # Small models echo the conversation's "Received passage [20]." instead of ranking.
            ranked = []
        if not ranked:
            self.stats.parse_failures += 1
            return WindowOrder.unchanged(len(members))
        return _complete(ranked, len(members))

    async def _call(self, chat: ChatClient, request: ChatRequest, n: int) -> ChatReply | WindowOrder:
        """The reply, or for a failed call the window unchanged (counted, never raised)."""
        try:
            reply = await chat.complete(request)
        except UpstreamError as exc:
            self.stats.record_failure(exc)
            return WindowOrder.unchanged(n, cut=isinstance(exc, CallCut))
        self.stats.record(self.enc, request, reply)
        return reply


def _complete(ranked: list[int], n: int) -> WindowOrder:
    taken = set(ranked)
    return WindowOrder(ranked + [i for i in range(n) if i not in taken], len(ranked), True)
