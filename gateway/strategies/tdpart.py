"""Top-down partitioning (TDPart; Parry, MacAvaney and Ganguly 2024, arXiv 2405.14589): two rounds, not nine.

    round 1  rank the first window (the caller's top `window`) and, at the same
             time, the rest in chunks of window - `anchors`, each chunk's window
             closed by the same `anchors` documents of the first window
    (pivot)  the first anchor the first window ranks at `pivot` or below becomes
             the pivot: first-window documents above it, and each chunk's
             documents ranked above it, are the candidates; the rest the backfill
    round 2  order the candidates (at most `final_window` of them) in one window;
             skipped when no chunk found any

When the first window ranks every anchor above `pivot` (rare: they sit in its
lower half), each chunk's best few below the lowest anchor meet the first
window's document at `pivot` in one more round, the paper's, so the top stays exact.

The answer is candidates, pivot, backfill. For a model that ranks windows
perfectly its top `pivot` equals a full sort's. The paper ranks the first window
first, to learn its pivot, and only then compares the rest with it: three rounds.
Carrying a few first-window documents into every chunk lets the chunks run
alongside the first window; which of them is the pivot is settled once the first
window answers, and a hosted model's round costs a second or more. `anchors = 0`
is the paper's order (round 2 waits for the first window's pivot, 3 rounds).
Two more choices differ from the paper's code, which compares chunks one after
the other and recurses when the candidates overflow: chunks are compared
concurrently (the paper notes they are independent), and overflowing candidates
are ordered in one larger final window instead of another round. The anchors
close each chunk's window: listwise models favour early passages, and a pivot
that looks too good would turn away documents that belong at the top (an extra
candidate only costs a slot in the last round).

Only the documents above the pivot matter in the first round, so generated
permutations are cut at `pivot` + 1 identifiers there: a document of the top
`pivot` - 1 has fewer than that above it in any window. The last round asks for `window`.

Grading for calibration overlaps the rounds: the first window's candidates and
pivot as soon as it answers, each chunk's best few candidates once both it and
the first window have, the likely rest of the top while the last round orders
the candidates. No round waits for grades: a document the last round moves into
the top that was not graded gets a score between its graded neighbours (the
isotonic fit bounds it there anyway).

At the deadline: a cut first window leaves nothing (the service answers 504); a
cut chunk leaves its documents below the backfill in the caller's order; a cut
last round leaves the candidates in the order they were found.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, replace

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
    """How many of each chunk's candidates are graded as it answers: the chunks share the
    `top - pivot_rank` places left in the top, and one more each."""
    return -(-max(0, top - pivot_rank) // groups) + 1


def anchor_positions(window: int, pivot_rank: int, anchors: int) -> list[int]:
    """Where in the caller's first window the anchors sit: spread from the pivot's rank to the
    window's end, so one of them is likely to rank at the pivot or below."""
    count = max(0, min(anchors, window - pivot_rank + 1, window - 2))
    if count == 0:
        return []
    low, high = pivot_rank - 1, window - 1
    if count == 1:
        return [high]
    return sorted({low + round(i * (high - low) / (count - 1)) for i in range(count)})


def choose_pivot(ranked: list[int], anchors: Sequence[int], pivot_rank: int) -> int:
    """The first anchor the first window placed at `pivot_rank` or below; when every anchor
    ranked above it, the lowest one."""
    placed = {doc: rank for rank, doc in enumerate(ranked, 1)}
    below = [a for a in anchors if placed[a] >= pivot_rank]
    return min(below, key=placed.__getitem__) if below else max(anchors, key=placed.__getitem__)


@dataclass(frozen=True)
class Layout:
    """Where one request's documents go, settled once: the rounds follow it, and the cost bound and
    the grading cap are read from it, so the three cannot drift apart."""

    n: int
    window: int
    pivot_rank: int  # a rank inside the first window
    final_window: int  # the last round holds at least a window
    anchors: list[int]  # positions in the first window, at or below the pivot's rank
    groups: list[list[int]]  # the documents beyond the first window, in chunks
    per_chunk: int  # how many of each chunk's candidates are graded as it answers

    @classmethod
    def of(cls, n: int, settings: ListwiseSettings) -> Layout:
        window = settings.window
        pivot = min(settings.pivot, window - 1)
        spread = n > window  # one window is the whole answer otherwise
        anchors = anchor_positions(window, pivot, settings.anchors) if spread else []
        # Without anchors a chunk holds window - 1 documents and the pivot.
        groups = chunks(range(window, n), window - max(len(anchors), 1))
        # The chunks share the `top - pivot_rank` places the first window leaves in the top.
        per_chunk = newcomers_graded(settings.calibrate_top, pivot, len(groups)) if spread else 0
        return cls(n, window, pivot, max(settings.final_window, window), anchors, groups, per_chunk)

    def again(self) -> list[list[int]]:
        """The most the extra round may hold (when every anchor ranks above the pivot's rank): each
        chunk's best pivot_rank - 2 below the lowest anchor, in windows of window - 1 and the pivot."""
        if not self.anchors:
            return []
        return chunks(range(min(self.n - self.window, len(self.groups) * (self.pivot_rank - 2))), self.window - 1)


@dataclass(frozen=True)
class Compared:
    """One chunk against the pivot: the documents of `group` it ranked above it, and below it."""

    group: list[int]
    result: WindowOrder
    above: list[int]
    below: list[int]


class Partition:
    """One request's partitioning: the rounds, what each decided, and when to start grading what."""

    def __init__(self, chat: ChatClient, job: ListwiseJob, ranker: WindowRanker, layout: Layout,
                 grader: Grader | None, top: int) -> None:
        self.chat, self.job, self.ranker, self.grader, self.top = chat, job, ranker, grader, top
        self.window, self.pivot_rank, self.final_window = layout.window, layout.pivot_rank, layout.final_window
        self.docs = list(range(layout.n))
        self.anchors, self.groups, self.per_chunk = layout.anchors, layout.groups, layout.per_chunk

    def _grade(self, documents: Sequence[int]) -> None:
        if self.grader is not None:
            self.grader.start(documents)

    async def run(self) -> Placement:
        first = self.docs[:self.window]
        n = len(self.docs)
        if n <= self.window:
            if self.top >= n:
                self._grade(first)  # one window is the whole answer: grade it while it is ranked
            r1 = await self.ranker.rank(self.chat, self.job, first)
            return Placement(self.docs, n) if r1.cut else Placement([first[i] for i in r1.order])
        if self.anchors:
            return await self._anchored(first)
        r1 = await self.ranker.rank(self.chat, self.job, first)
        if r1.cut:
            return Placement(self.docs, n)
        o1 = [first[i] for i in r1.order]
        return await self._finish(o1, *await self._against_pivot(o1, self.groups))

    async def _anchored(self, first: list[int]) -> Placement:
        """The first window and the chunks at once; the pivot is settled among the anchors."""
        r1_task = asyncio.ensure_future(self._first(first))
        try:
            compared = await asyncio.gather(*(self._compare(g, self.anchors, r1_task) for g in self.groups))
            o1, pivot = await r1_task
        finally:
            r1_task.cancel()
        if o1 is None:
            return Placement(self.docs, len(self.docs))
        if o1.index(pivot) >= self.pivot_rank - 1:
            return await self._finish(o1, pivot, list(compared))
        # Every anchor ranked above the pivot's rank (rare: they are spread over the first window's
        # lower half). What a chunk put below the lowest may still beat the first window's document
        # at that rank: each chunk's best few meet it in one more round, as in the paper's order.
        # The top places left between them number pivot_rank - 2 - (the anchor's index).
        room = self.pivot_rank - 2 - o1.index(pivot)
        beaten = [replace(c, below=c.below[room:]) for c in compared]
        left = interleave([c.below[:room] for c in compared if c.result.ok])
        pivot, more = await self._against_pivot(o1, chunks(left, self.window - 1))
        return await self._finish(o1, pivot, beaten + more)

    async def _first(self, first: list[int]) -> tuple[list[int] | None, int]:
        r1 = await self.ranker.rank(self.chat, self.job, first, limit=self.pivot_rank + 1)
        if r1.cut:
            return None, -1
        o1 = [first[i] for i in r1.order]
        pivot = choose_pivot(o1, self.anchors, self.pivot_rank)
        self._grade((o1[:o1.index(pivot)] + [pivot])[:self.top])
        return o1, pivot

    async def _against_pivot(self, o1: list[int], groups: list[list[int]]) -> tuple[int, list[Compared]]:
        """The paper's round: `groups`, each closed by the first window's document at the pivot's rank."""
        pivot = o1[self.pivot_rank - 1]
        self._grade((o1[:self.pivot_rank - 1] + [pivot])[:self.top])
        known: asyncio.Future[tuple[list[int] | None, int]] = asyncio.get_running_loop().create_future()
        known.set_result((o1, pivot))
        return pivot, list(await asyncio.gather(*(self._compare(g, [pivot], known) for g in groups)))

    async def _compare(self, group: list[int], closing: list[int],
                       first: Awaitable[tuple[list[int] | None, int]]) -> Compared:
        """A chunk's window, `closing` documents last, split at the pivot once the first window named it."""
        members = group + closing
        result = await self.ranker.rank(self.chat, self.job, members, limit=self.pivot_rank + 1)
        o1, pivot = await first
        if not result.ok or o1 is None:
            return Compared(group, result, [], group)
        above, below = split_at_pivot(members, result, pivot)
        ours = set(group)  # the first window places its own documents
        above, below = [d for d in above if d in ours], [d for d in below if d in ours]
        self._grade(above[:self.per_chunk])
        return Compared(group, result, above, below)

    async def _finish(self, o1: list[int], pivot: int, compared: list[Compared]) -> Placement:
        """Candidates in one last window, then the pivot and the backfill."""
        at = o1.index(pivot)
        found = interleave([c.above for c in compared if c.result.ok])
        below = interleave([c.below for c in compared if c.result.ok])
        unexamined = [d for c in compared if not c.result.ok for d in c.group]
        unranked = sum(len(c.group) for c in compared if c.result.cut)
        head = o1[:at] + found
        rest = [pivot] + o1[at + 1:] + below + unexamined
        if not found:
            self._grade((head + rest)[:self.top])
            return Placement(head + rest, unranked)
        pool, overflow = head[:self.final_window], head[self.final_window:]
        self._grade((pool + rest)[:self.top])  # the likely top, graded while the last round orders it
        r3 = await self.ranker.rank(self.chat, self.job, pool, limit=self.window)
        return Placement([pool[i] for i in r3.order] + overflow + rest, unranked)


class TopDownPartitioning(ListwiseStrategy):
    """`Strategy` "tdpart": top-down partitioning with generated permutations, 2 rounds (3 without anchors)."""

    name = "tdpart"
    grade_stragglers = False  # what the last round promotes ungraded lies between graded neighbours: no extra round

    def largest_window(self, settings: ListwiseSettings) -> int:
        return max(settings.final_window, settings.window)

    def windows(self, n: int, settings: ListwiseSettings) -> list[Window]:
        layout = Layout.of(n, settings)
        window, pivot = layout.window, layout.pivot_rank
        if n <= window:
            return [Window(range(n))]
        if not layout.anchors:
            # The last round orders the candidates: the first window's above the pivot, and the chunks' finds.
            pool = min(layout.final_window, pivot - 1 + n - window)
            return [Window(range(window)), *(Window(g, 1, pivot + 1) for g in layout.groups),
                    Window((), pool, window)]
        limit = pivot + 1
        # The pivot may be the first window's last document: all the others can be candidates.
        pool = min(layout.final_window, window - 1 + n - window)
        return [Window(range(window), 0, limit), *(Window([*g, *layout.anchors], 0, limit) for g in layout.groups),
                *(Window((), len(g) + 1, pivot + 1) for g in layout.again()), Window((), pool, window)]

    def max_graded(self, n: int, settings: ListwiseSettings) -> int:
        layout = Layout.of(n, settings)
        top = settings.calibrate_top
        if n <= layout.window:
            return min(n, top)
        # The likely top (which holds the first window's candidates), the pivot, and each chunk's
        # newcomers; with anchors, also those of the round that may follow them.
        return min(n, top + 1 + (len(layout.groups) + len(layout.again())) * layout.per_chunk)

    async def place(self, chat: ChatClient, job: ListwiseJob, ranker: WindowRanker,
                    grader: Grader | None) -> Placement:
        layout = Layout.of(len(job.passages), self.settings)
        return await Partition(chat, job, ranker, layout, grader, self.settings.calibrate_top).run()


class TopDownFirst(TopDownPartitioning):
    """`Strategy` "tdpart-first": top-down partitioning, each window ranked by FIRST's single token."""

    name = "tdpart-first"
    first = True
