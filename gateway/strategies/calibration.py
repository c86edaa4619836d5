"""Calibrated scores for listwise orders: graded relevance for the top k, fitted monotone to the order.

A listwise order says which document is better, not whether any is relevant. The
top k are graded pointwise (expected label from logprobs, 0-1) and the grades
are fitted to the order by isotonic regression (pool-adjacent-violators, Yan et
al. 2024's constrained regression in its simplest form): the scores that move
the grades least while never increasing down the list. Documents below the top
k score below the k-th, decaying linearly by rank: they keep the order and never
look better than a graded document, but they were not judged.

`Grader` runs the grading calls, started as early as a strategy knows a document
will be near the top, so grading overlaps the ordering instead of following it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence

import tiktoken

from gateway.config import PointwiseSettings
from gateway.strategies.base import CallStats
from gateway.strategies.pointwise import grade
from gateway.upstream.chat import ChatClient, Message


def isotonic_non_increasing(values: Sequence[float], weights: Sequence[float] | None = None) -> list[float]:
    """The non-increasing sequence closest to `values` in weighted least squares (pool-adjacent-violators)."""
    w = list(weights) if weights is not None else [1.0] * len(values)
    blocks: list[list[float]] = []  # [mean, weight, count]
    for value, weight in zip(values, w, strict=True):
        blocks.append([value, weight, 1])
        # A block above a smaller one is fine; a larger one below it is a violation: pool them.
        while len(blocks) > 1 and blocks[-2][0] < blocks[-1][0]:
            mean, weight, count = blocks.pop()
            prev = blocks[-1]
            total = prev[1] + weight
            prev[0] = (prev[0] * prev[1] + mean * weight) / total if total else (prev[0] + mean) / 2
            prev[1], prev[2] = total, prev[2] + count
    return [mean for mean, _, count in blocks for _ in range(count)]


def calibrated_scores(n: int, grades: Sequence[float | None]) -> list[float] | None:
    """Scores for a list of `n` whose first len(grades) positions were graded (None: no grade).

    Graded positions get the isotonic fit of their grades; an ungraded one among
    them lies between its graded neighbours; positions after the graded head decay
    linearly from the last head score. None when nothing was graded.
    """
    known = [(i, g) for i, g in enumerate(grades) if g is not None]
    if not known:
        return None
    fitted = dict(zip((i for i, _ in known), isotonic_non_increasing([g for _, g in known]), strict=True))
    head: list[float] = []
    for i in range(len(grades)):
        if i in fitted:
            head.append(fitted[i])
            continue
        above = head[-1] if head else None
        below = next((fitted[j] for j in range(i + 1, len(grades)) if j in fitted), None)
        head.append(above if below is None else below if above is None else (above + below) / 2)
    head = [min(1.0, max(0.0, s)) for s in head]
    k, last = len(head), head[-1]
    tail = [last * (n - p) / (n - k + 1) for p in range(k, n)]
    return head + tail


class Grader:
    """Pointwise grades of one request's documents, each computed at most once, concurrently."""

    def __init__(self, chat: ChatClient, enc: tiktoken.Encoding, conversation: Callable[[int], list[Message]],
                 settings: PointwiseSettings, stats: CallStats, cap: int | None = None) -> None:
        self.chat = chat
        self.enc = enc
        self.conversation = conversation
        self.settings = settings
        self.stats = stats
        self.limit = asyncio.Semaphore(settings.concurrency)
        self.tasks: dict[int, asyncio.Task[float | None]] = {}
        self.cap = cap  # at most this many documents are graded (what the token estimate reserved for)

    def start(self, documents: Iterable[int]) -> None:
        """Begin grading these documents (those not begun yet, up to the cap), without waiting."""
        for doc in documents:
            if doc not in self.tasks and (self.cap is None or len(self.tasks) < self.cap):
                self.tasks[doc] = asyncio.ensure_future(self._grade(doc))

    async def grades(self, documents: Sequence[int], start: bool = True) -> dict[int, float | None]:
        """The grades of these documents, starting any not begun (with `start`); None where there is
        no grade: grading failed, was cut, or (without `start`) never began."""
        if start:
            self.start(documents)
        wanted = [self.tasks[d] for d in documents if d in self.tasks]
        await asyncio.gather(*wanted, return_exceptions=True)
        return {d: _result(self.tasks[d]) if d in self.tasks else None for d in documents}

    async def close(self) -> None:
        """Cancel grading nobody waits for (documents that did not make the top)."""
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    async def _grade(self, doc: int) -> float | None:
        async with self.limit:
            return await grade(self.chat, self.enc, self.conversation(doc), self.settings, True, self.stats)


def _result(task: asyncio.Task[float | None]) -> float | None:
    if task.cancelled() or task.exception() is not None:
        return None
    return task.result()
