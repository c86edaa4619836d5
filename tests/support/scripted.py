"""Helpers for strategy unit tests: real prompts, a scripted chat model behind `MockChatClient`."""

from __future__ import annotations

import asyncio
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from gateway.strategies.base import RankTask
from gateway.strategies.prompts import Prompt, load_prompts
from gateway.strategies.tokens import get_encoding
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from tests.conftest import ROOT

PROMPTS = load_prompts(ROOT / "prompts")
ENC = get_encoding("cl100k_base")
PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)
PASSAGE_LINE = re.compile(r"^\[(\d+)\] (.+)$", re.MULTILINE)
POINTWISE = re.compile(r"<passage>\n(.*)\n</passage>", re.DOTALL)


def prompt(name: str) -> Prompt:
    return PROMPTS[name]


def window_passages(request: ChatRequest) -> list[str]:
    """The passages of a listwise window (or a batch), in prompt order: own turns, or lines of one message."""
    users = [m["content"] for m in request.messages if m["role"] == "user"]
    turns = [m.group(2) for m in (PASSAGE.match(u) for u in users) if m]
    if turns:
        return turns
    return [m.group(2) for u in users for m in PASSAGE_LINE.finditer(u)]


def kind_of(request: ChatRequest) -> str:
    """What a strategy asked: "pointwise", "batched", "first" or "listwise"."""
    last = request.messages[-1]["content"]
    if POINTWISE.search(last):
        return "pointwise"
    if "one line per passage" in last:
        return "batched"
    if "most relevant passage" in last:
        return "first"
    return "listwise"


@dataclass
class Call:
    kind: str
    start: float
    end: float
    passages: int
    request: ChatRequest


@dataclass
class Model:
    """A model that judges every passage by `grade(text)` (0..3, higher is better) and answers any task.

    `delay` seconds per call make calls launched together overlap, so `rounds()` can
    count the sequential ones; `logprobs=False` answers like a model without them.
    """

    grade: Callable[[str], float]
    logprobs: bool = True
    delay: float = 0.0
    fail: Callable[[ChatRequest], Exception | None] = lambda request: None
    calls: list[Call] = field(default_factory=list)

    async def __call__(self, request: ChatRequest) -> ChatReply:
        start = time.monotonic()
        if self.delay:
            await asyncio.sleep(self.delay)
        kind = kind_of(request)
        passages = window_passages(request)
        self.calls.append(Call(kind, start, time.monotonic(), len(passages), request))
        error = self.fail(request)
        if error is not None:
            raise error
        usage = {"prompt_tokens": 100, "completion_tokens": 1}
        with_logprobs = self.logprobs and request.top_logprobs > 0
        if kind == "pointwise":
            g = round(self.grade(POINTWISE.search(request.messages[-1]["content"]).group(1)))
            return ChatReply(str(g), _label_alternatives(g) if with_logprobs else [], **usage)
        grades = [self.grade(p) for p in passages]
        if kind == "batched":
            lines = [f"[{i}] {round(g)}" for i, g in enumerate(grades, start=1)]
            tokens = []
            for i, g in enumerate(grades, start=1):
                tokens += [(f"[{i}]", []), (f" {round(g)}", [(" " + t, lp) for t, lp in _label_alternatives(round(g))]),
                           ("\n", [])]
            return ChatReply("\n".join(lines), [], token_logprobs=tokens[:-1] if with_logprobs else [], **usage)
        ranked = sorted(range(len(passages)), key=lambda i: (-grades[i], i))
        if kind == "first":
            alternatives = [(str(i + 1), -0.5 * r) for r, i in enumerate(ranked)][: request.top_logprobs]
            return ChatReply(str(ranked[0] + 1), alternatives if with_logprobs else [], **usage)
        text = " > ".join(f"[{i + 1}]" for i in ranked)
        return ChatReply(text, prompt_tokens=100, completion_tokens=len(ranked))

    def client(self) -> MockChatClient:
        return MockChatClient(self)

    def rounds(self, kind: str | None = None) -> int:
        """The longest chain of calls each starting after the one before it ended (needs `delay`)."""
        calls = sorted((c for c in self.calls if kind is None or c.kind == kind), key=lambda c: c.start)
        depth: list[int] = []
        for i, call in enumerate(calls):
            before = [depth[j] for j in range(i) if calls[j].end <= call.start]
            depth.append(1 + max(before, default=0))
        return max(depth, default=0)

    def of(self, kind: str) -> list[Call]:
        return [c for c in self.calls if c.kind == kind]


def _label_alternatives(grade: int) -> list[tuple[str, float]]:
    near = {grade: 0.9}
    for k in (grade - 1, grade + 1):
        if 0 <= k <= 3:
            near[k] = 0.05
    return sorted(((str(k), math.log(v)) for k, v in near.items()), key=lambda kv: -kv[1])


def number_in(text: str) -> int:
    """The number a test passage like "doc 17" carries."""
    return int(re.search(r"\d+", text).group())


def ranking_by(key: Callable[[str], float]) -> MockChatClient:
    """A listwise model that orders each window by `key(passage)`, highest first."""

    def handler(request: ChatRequest) -> ChatReply:
        passages = window_passages(request)
        ranked = sorted(range(len(passages)), key=lambda i: -key(passages[i]))
        return ChatReply(" > ".join(f"[{i + 1}]" for i in ranked), prompt_tokens=100, completion_tokens=10)

    return MockChatClient(handler)


def task(texts: list[str], *, logprobs: bool = True, context_window: int = 128_000, query: str = "q",
         token_budget: int | None = None) -> RankTask:
    return RankTask(query=query, texts=texts, encoding=ENC, context_window=context_window, logprobs=logprobs,
                    token_budget=token_budget)
