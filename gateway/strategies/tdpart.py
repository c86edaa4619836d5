"""Top-down partitioning (TDPart; Parry, MacAvaney and Ganguly 2024, arXiv 2405.14589): three rounds, not nine.

    round 1  rank the first window (the caller's top `window`); its document at
             rank `pivot` becomes the pivot: those above are candidates, those
             below go to the backfill
    round 2  the rest, in chunks of window - 1, each with the pivot added, all
             windows at once: documents ranked above the pivot join the
             candidates, the others the backfill
    round 3  order the candidates (at most `final_window` of them) in one window;
             skipped when round 2 found none

The answer is candidates, pivot, backfill. For a model that ranks windows
perfectly its top `pivot` equals a full sort's. Two choices differ from the
paper's code, which compares chunks one after the other and recurses when the
candidates overflow: chunks are compared concurrently (the paper notes they are
independent), and overflowing candidates are ordered in one larger final window
instead of another round, so 100 documents always take at most 3 rounds. The
pivot is placed last in each chunk's window: listwise models favour early
passages, and a pivot that looks too good would turn away documents that belong
at the top (an extra candidate only costs a slot in round 3).

Round 2 only needs the documents above the pivot, so generated permutations are
cut at `pivot` + 1 identifiers there; the last round asks for `window`.

Grading for calibration overlaps the rounds: the first window's candidates and
pivot as round 2 starts, each chunk's best few candidates as it answers, the
likely rest of the top while round 3 orders the candidates. No round waits for
grades: a document round 3 moves into the top that was not graded gets a score
between its graded neighbours (the isotonic fit bounds it there anyway).

At the deadline: a cut first window leaves nothing (the service answers 504); a
cut chunk leaves its documents below the backfill in the caller's order; a cut
last round leaves the candidates in the order they were found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateway.config import ListwiseSettings
from gateway.strategies.calibration import Grader
from gateway.strategies.listwise import ListwiseStrategy, Placement
from gateway.strategies.rankers import WindowOrder, WindowRanker
from gateway.strategies.window import ListwiseJob, Window
from gateway.upstream.chat import ChatClient


def chunks(items: Sequence[int], size: int) -> list[list[int]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]


def interleave(lists: Sequence[Sequence[int]]) -> list[int]:
    """Round robin: the first of each list, then the second of each, ..."""
    out: list[int] = []
    for depth in range(max((len(x) for x in lists), default=0)):
        out += [x[depth] for x in lists if depth < len(x)]
    return out


def split_at_pivot(window: list[int], result: WindowOrder, pivot: int) -> tuple[list[int], list[int]]:
    """(above, below) the pivot in a ranked window; what the model did not place counts as below."""
    ordered = [window[i] for i in result.order]
    named = ordered[:result.named]
    above = named[:named.index(pivot)] if pivot in named else named
    taken = set(above) | {pivot}
    return above, [d for d in ordered if d not in taken]


def newcomers_graded(top: int, pivot_rank: int, groups: int) -> int:
    """How many of each round-2 chunk's candidates are graded as it answers: the chunks share the
    `top - pivot_rank` places left in the top, and one more each."""
    return -(-max(0, top - pivot_rank) // groups) + 1


async def partition(chat: ChatClient, job: ListwiseJob, ranker: WindowRanker, window: int, pivot_rank: int,
                    final_window: int, grader: Grader | None = None, top: int = 0) -> Placement:
    n = len(job.passages)
    docs = list(range(n))
    first = docs[:window]
    if grader is not None and n <= window and top >= n:
        grader.start(first)  # one window is the whole answer: grade it while it is ranked
    r1 = await ranker.rank(chat, job, first)
    o1 = [first[i] for i in r1.order]
    if r1.cut:
        return Placement(docs, n)
    if n <= window:
        return Placement(o1)
    pivot = o1[pivot_rank - 1]
    candidates, backfill = o1[:pivot_rank - 1], o1[pivot_rank:]
    groups = chunks(docs[window:], window - 1)
    if grader is not None:
        grader.start((candidates + [pivot])[:top])  # the top of the answer, but for newcomers
    # Newcomers compete for the `top - pivot_rank` places left: each chunk's best few are graded
    # as soon as it answers.
    per_chunk = newcomers_graded(top, pivot_rank, len(groups))

    async def compare(group: list[int]) -> tuple[WindowOrder, list[int], list[int]]:
        members = group + [pivot]
        result = await ranker.rank(chat, job, members, limit=pivot_rank + 1)
        if not result.ok:
            return result, [], group
        above, below = split_at_pivot(members, result, pivot)
        if grader is not None:
            grader.start(above[:per_chunk])
        return result, above, below

    compared = await asyncio.gather(*(compare(g) for g in groups))
    found = interleave([above for result, above, _ in compared if result.ok])
    below = interleave([below for result, _, below in compared if result.ok])
    unexamined = [d for (result, _, rest) in compared if not result.ok for d in rest]
    unranked = sum(len(g) for (result, _, _), g in zip(compared, groups, strict=True) if result.cut)

    head = candidates + found
    rest = [pivot] + backfill + below + unexamined
    if found:
        pool, overflow = head[:final_window], head[final_window:]
        if grader is not None:
            grader.start((pool + rest)[:top])  # the likely top, graded while round 3 orders it
        r3 = await ranker.rank(chat, job, pool, limit=window)
        head = [pool[i] for i in r3.order] + overflow
    elif grader is not None:
        grader.start((head + rest)[:top])
    return Placement(head + rest, unranked)


class TopDownPartitioning(ListwiseStrategy):
    """`Strategy` "tdpart": top-down partitioning with generated permutations, at most 3 rounds."""

    name = "tdpart"
    grade_stragglers = False  # what round 3 promotes ungraded lies between graded neighbours: no extra round

    def largest_window(self, settings: ListwiseSettings) -> int:
        return max(settings.final_window, settings.window)

    @staticmethod
    def layout(settings: ListwiseSettings) -> tuple[int, int, int]:
        """(window, pivot rank, final window): the pivot is a rank inside the first window; the last
        window holds at least a window."""
        return settings.window, min(settings.pivot, settings.window - 1), max(settings.final_window, settings.window)

    def windows(self, n: int, settings: ListwiseSettings) -> list[Window]:
        window, pivot, final = self.layout(settings)
        if n <= window:
            return [Window(range(n))]
        groups = chunks(range(window, n), window - 1)
        # Round 3 orders the candidates: the first window's above the pivot, and round 2's finds.
        pool = min(final, pivot - 1 + n - window)
        return [Window(range(window)), *(Window(g, 1, pivot + 1) for g in groups), Window((), pool, window)]

    def max_graded(self, n: int, settings: ListwiseSettings) -> int:
        window, pivot, _ = self.layout(settings)
        top = settings.calibrate_top
        if n <= window:
            return min(n, top)
        # The likely top (which holds the first window's candidates), the pivot, and each chunk's newcomers.
        groups = -(-(n - window) // (window - 1))
        return min(n, top + 1 + groups * newcomers_graded(top, pivot, groups))

    async def place(self, chat: ChatClient, job: ListwiseJob, ranker: WindowRanker,
                    grader: Grader | None) -> Placement:
        window, pivot, final = self.layout(self.settings)
        return await partition(chat, job, ranker, window, pivot, final, grader, self.settings.calibrate_top)


class TopDownFirst(TopDownPartitioning):
    """`Strategy` "tdpart-first": top-down partitioning, each window ranked by FIRST's single token."""

    name = "tdpart-first"
    first = True
