"""RankGPT's sliding window (Sun et al. 2023): the reference listwise strategy.

Windows move from the back of the list to the front, so strong passages found
late in the input are carried upward one window at a time; with window 20 and
step 10, one pass over 100 documents is 9 sequential calls and puts the best 10
in front (for a model that ranks each window perfectly). The last window, the
one at the front, holds the final top of the list: its documents are graded for
calibration while it is being ranked.

At a deadline the list is answered as the finished windows left it; documents
that no finished window saw keep the caller's order where they are.
"""

from __future__ import annotations

import tiktoken

from gateway.config import ListwiseSettings
from gateway.strategies.base import CallStats, Ranking
from gateway.strategies.calibration import Grader
from gateway.strategies.listwise import ListwiseStrategy, Placement
from gateway.strategies.prompts import Prompt
from gateway.strategies.rankers import WindowRanker
from gateway.strategies.scoring import linear_scores
from gateway.strategies.window import ListwiseJob, Window
from gateway.upstream.chat import ChatClient


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


async def slide(chat: ChatClient, job: ListwiseJob, ranker: WindowRanker, window: int, step: int,
                grader: Grader | None = None, top: int = 0) -> Placement:
    """One back-to-front pass of the sliding window over `job.passages`."""
    n = len(job.passages)
    order = list(range(n))
    seen: set[int] = set()
    for start, end in window_spans(n, window, step):
        members = order[start:end]
        if start == 0 and grader is not None and top >= len(members):
            grader.start(members)  # the front window becomes the top of the list: grade it meanwhile
        result = await ranker.rank(chat, job, members)
        if not result.cut:
            seen.update(members)
        order[start:end] = [members[p] for p in result.order]
    return Placement(order, n - len(seen))


class SlidingWindow(ListwiseStrategy):
    """`Strategy` "sliding": RankGPT's back-to-front sliding window with generated permutations."""

    name = "sliding"

    def windows(self, n: int, settings: ListwiseSettings) -> list[Window]:
        # The passages before the previous window's start were in no window yet: still the caller's.
        shapes, previous = [], n
        for start, end in window_spans(n, settings.window, settings.step):
            shapes.append(Window(range(start, previous), end - previous))
            previous = start
        return shapes

    async def place(self, chat: ChatClient, job: ListwiseJob, ranker: WindowRanker,
                    grader: Grader | None) -> Placement:
        return await slide(chat, job, ranker, self.settings.window, self.settings.step, grader,
                           self.settings.calibrate_top)


class SlidingFirst(SlidingWindow):
    """`Strategy` "sliding-first": the sliding window, each window ranked by FIRST's single token."""

    name = "sliding-first"
    first = True


async def rank_listwise(chat: ChatClient, enc: tiktoken.Encoding, prompt: Prompt, job: ListwiseJob,
                        settings: ListwiseSettings) -> Ranking:
    """One sliding pass with generated permutations and rank scores, outside any strategy (benchmarks)."""
    stats = CallStats()
    placement = await slide(chat, job, WindowRanker(prompt, settings, enc, stats), settings.window, settings.step)
    return Ranking(placement.order, linear_scores(len(placement.order)), stats, "rank", placement.unranked)
