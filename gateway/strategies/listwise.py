"""The shell every listwise strategy shares: prompts in, a window layout by the subclass, scores out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.strategies.base import CallStats, Ranking, RankTask, ScoreType, off_loop, with_budget
from gateway.strategies.calibration import Grader, calibrated_scores
from gateway.strategies.pointwise import grading_bound, task_builder
from gateway.strategies.prompts import Prompt
from gateway.strategies.rankers import WindowRanker
from gateway.strategies.scoring import linear_scores
from gateway.strategies.window import ListwiseJob, Window, WindowCost, prepare
from gateway.upstream.chat import ChatClient


@dataclass(frozen=True)
class Placement:
    """What a strategy's windows decided: the order, and how many documents no finished call saw."""

    order: list[int]
    unranked: int = 0


class ListwiseStrategy:
    """The shell of a listwise strategy: prompts in, window layout (`place`) by the subclass, scores out.

    Scores are calibrated when the model returns logprobs and `calibrate_top` > 0: the
    top k are graded pointwise (the subclass starts grades early, as soon as it knows
    a document will be near the top) and the grades are fitted monotone to the
    listwise order. Otherwise they are linear in rank.
    """

    name: ClassVar[str]
    first: ClassVar[bool] = False  # single-token ranking (FIRST) when the model returns logprobs
    # Grade top documents the layout did not start grading, after it (one more round); False:
    # they are scored between their graded neighbours.
    grade_stragglers: ClassVar[bool] = True

    def __init__(self, settings: ListwiseSettings, prompt: Prompt, pointwise: PointwiseSettings,
                 grading: Prompt) -> None:
        self.settings = settings
        self.prompt = prompt
        self.pointwise = pointwise
        self.grading = grading
        self.prompt_version = prompt.version

    def cache_params(self) -> dict[str, object]:
        return {"settings": self.settings.model_dump(), "prompt": self.prompt.version,
                "grading": self.grading.version, "pointwise": self.pointwise.model_dump()}

    def largest_window(self, settings: ListwiseSettings) -> int:
        """The most passages one call of this strategy holds: every passage is cut to fit it."""
        return settings.window

    async def place(self, chat: ChatClient, job: ListwiseJob, ranker: WindowRanker,
                    grader: Grader | None) -> Placement:
        raise NotImplementedError

    def windows(self, n: int, settings: ListwiseSettings) -> list[Window]:
        """Every window `place` may send for `n` passages (one pass each), to bound its cost."""
        raise NotImplementedError

    def max_graded(self, n: int, settings: ListwiseSettings) -> int:
        """The most documents grading may call for (the `Grader` enforces it)."""
        return min(n, settings.calibrate_top)

    def estimate_tokens(self, task: RankTask) -> int:
        """An upper bound: every window the layout may send, each pass of it (`consistency`), at the
        longest passages it may hold, with a single-token call's fallback permutation; and the
        grading calls of the longest documents that may be graded."""
        settings = with_budget(self.settings, task.token_budget)
        job = self._job(task, settings)
        n = len(job.passages)
        if n < 2:
            return 0
        cost = WindowCost(task.encoding, self.prompt, job, self.first and task.logprobs)
        total = settings.consistency * sum(cost(w) for w in self.windows(n, settings))
        if self._calibrates(task, settings):
            total += grading_bound(task.encoding, task_builder(task, self.grading, self.pointwise), task.texts,
                                   self.max_graded(n, settings), logprobs=True)
        return total

    def _job(self, task: RankTask, settings: ListwiseSettings) -> ListwiseJob:
        return task.prepared(self, lambda: prepare(task.encoding, self.prompt, task.query, list(task.texts), settings,
                                                   task.context_window, task.instruction,
                                                   self.largest_window(settings)))

    def _calibrates(self, task: RankTask, settings: ListwiseSettings) -> bool:
        return bool(settings.calibrate_top and task.logprobs and len(task.texts) > 1)

    async def rank(self, chat: ChatClient, task: RankTask) -> Ranking:
        settings = with_budget(self.settings, task.token_budget)
        texts = list(task.texts)
        job = await off_loop(texts, lambda: self._job(task, settings))
        stats = CallStats()
        ranker = WindowRanker(self.prompt, settings, task.encoding, stats, first=self.first and task.logprobs)
        grader = None
        if self._calibrates(task, settings):
            build = task_builder(task, self.grading, self.pointwise)
            grader = Grader(chat, task.encoding, lambda i: build(texts[i]), self.pointwise, stats,
                            cap=self.max_graded(len(texts), settings))
        try:
            placement = await self.place(chat, job, ranker, grader) if len(texts) > 1 else Placement([0])
            scores, score_type = await self._scores(placement.order, grader, settings.calibrate_top,
                                                    self.grade_stragglers)
        finally:
            if grader is not None:
                await grader.close()
        return Ranking(placement.order, scores, stats, score_type, placement.unranked)

    @staticmethod
    async def _scores(order: list[int], grader: Grader | None, top: int,
                      stragglers: bool) -> tuple[list[float], ScoreType]:
        if grader is not None:
            head = order[:top]
            grades = await grader.grades(head, start=stragglers)
            scores = calibrated_scores(len(order), [grades.get(i) for i in head])
            if scores is not None:
                return scores, "calibrated"
        return linear_scores(len(order)), "rank"
