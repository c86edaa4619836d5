"""The listwise window: its prompt in both formats, and the parser of its answer.

A window is a list of passages labelled `[1]..[n]`. The prompt file decides the
format: "single" puts every passage in one user message (RankZephyr), "multiturn"
gives each its own user turn (RankGPT). Either asks for a permutation
(`suffix`) or, for single-token ranking, for the best identifier alone
(`first_suffix`). Pure functions: ranking a window is `rankers.py`'s job, laying
windows over the list the strategies' (`sliding.py`, `tdpart.py`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import accumulate

import tiktoken

from gateway.config import ListwiseSettings
from gateway.strategies.base import clean_answer
from gateway.strategies.prompts import Prompt
from gateway.strategies.sanitize import IDENTIFIER, instruction_line, safe_text
from gateway.strategies.tokens import count_messages, count_messages_above, count_text, word_bound
from gateway.upstream.chat import Message

_NUMBER = re.compile(r"\d+")
# "[12] > " costs about 4 tokens in cl100k/o200k; the rest is slack for spacing.
_TOKENS_PER_ID = 5
_MIN_PASSAGE_TOKENS = 16
# A passage that sanitizing left empty still needs a visible slot.
EMPTY_PASSAGE = "(empty passage)"


@dataclass(frozen=True)
class ListwiseJob:
    query: str
    passages: list[str]  # already neutralized and truncated
    instruction: str = ""
    passage_tokens: int | None = None  # what each passage was truncated to (None: not known)


def build_messages(prompt: Prompt, query: str, passages: list[str], instruction: str = "",
                   first: bool = False) -> list[Message]:
    """One window's conversation; `first` asks for the single most relevant identifier instead of a ranking."""
    num = len(passages)
    head = prompt.render("prefix", num=num, query=query, instruction=instruction)
    tail = prompt.render("first_suffix" if first else "suffix", num=num, query=query, instruction=instruction)
    system: Message = {"role": "system", "content": prompt.render("system")}
    if prompt.format == "multiturn":
        messages = [system, {"role": "user", "content": head},
                    {"role": "assistant", "content": prompt.render("prefix_ack")}]
        for i, line in enumerate(prompt.render_passages(passages), start=1):
            messages.append({"role": "user", "content": line})
            messages.append({"role": "assistant", "content": prompt.render("passage_ack", id=i)})
        messages.append({"role": "user", "content": tail})
        return messages
    lines = "\n".join(prompt.render_passages(passages))
    return [system, {"role": "user", "content": f"{head}\n\n{lines}\n\n{tail}"}]


def parse_ranking(text: str, n: int) -> list[int]:
    """The 0-based positions an answer such as "[2] > [3] > [1]" (or "⟦2⟧ > ⟦3⟧": sanitize.IDENTIFIER) names,
    in its order.

    Duplicates and out-of-range identifiers are dropped; bare numbers count when
    there is no bracketed identifier at all.
    """
    answer = clean_answer(text)
    found = IDENTIFIER.findall(answer) or _NUMBER.findall(answer)
    # A digit run longer than 6 is no identifier (and int() on it is costly).
    ids = [int(token) for token in found if len(token) <= 6]
    return list(dict.fromkeys([i - 1 for i in ids if 0 < i <= n]))


def parse_permutation(text: str, n: int) -> tuple[list[int], bool]:
    """A full permutation of range(n) from an answer: the named positions, then the rest in input order.

    The flag says whether the answer held at least one usable identifier; when it
    is False the result is the input order.
    """
    named = parse_ranking(text, n)
    taken = set(named)
    return named + [i for i in range(n) if i not in taken], bool(named)


def is_acknowledgement(prompt: Prompt, answer: str) -> bool:
    """Whether `answer` is one of the prompt's own "Received passage [n]." turns, echoed."""
    if "passage_ack" not in prompt.templates:
        return False
    pattern = re.escape(prompt.render("passage_ack", id="987654321")).replace("987654321", r"\d+")
    return re.fullmatch(pattern, answer.strip()) is not None


def output_tokens(ids: int) -> int:
    """max_tokens for a permutation naming `ids` identifiers."""
    return _TOKENS_PER_ID * ids + 10


def answer_ids(members: int, limit: int | None) -> int:
    """How many identifiers a permutation of `members` passages names when only the best `limit` are needed."""
    return members if limit is None else max(1, min(limit, members))


def expected_tokens(ids: int) -> int:
    """How long such a permutation usually is: "[12] > " is 4 tokens in cl100k/o200k."""
    return 4 * ids


def passage_budget(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, settings: ListwiseSettings, context_window: int,
    instruction: str = "", largest: int | None = None,
) -> int:
    """Tokens each passage may use so the largest window a strategy sends (`largest`, else
    `settings.window`) fits the model's context."""
    window = largest or settings.window
    full = context_window - output_tokens(settings.window) - settings.max_passage_tokens * window
    skeleton = count_messages_above(enc, build_messages(prompt, query, [""] * window, instruction), full)
    room = context_window - skeleton - output_tokens(settings.window)
    # The floor keeps passages readable in a tiny context; a lower configured or
    # client-requested budget still wins.
    return min(settings.max_passage_tokens, max(_MIN_PASSAGE_TOKENS, room // window))


def prepare(
    enc: tiktoken.Encoding, prompt: Prompt, query: str, texts: list[str],
    settings: ListwiseSettings, context_window: int, instruction: str | None = None, largest: int | None = None,
) -> ListwiseJob:
    query = safe_text(enc, query, context_window // 4)
    extra = instruction_line(enc, instruction, context_window)
    budget = passage_budget(enc, prompt, query, settings, context_window, extra, largest)
    passages = [safe_text(enc, t, budget) or EMPTY_PASSAGE for t in texts]
    return ListwiseJob(query, passages, extra, budget)


# Tokens one passage may add beyond its own count where it meets the template around it.
_BOUNDARY_SLACK = 2


def passage_tokens(enc: tiktoken.Encoding, passage: str, truncated_to: int | None) -> int:
    """At least `passage`'s tokens, and no more than it was truncated to: the word bound, which reads
    a passage several times faster than encoding it, or the count when the bound cannot be had."""
    bound = word_bound(enc)(passage)
    tokens = bound if bound is not None else count_text(enc, passage)
    return tokens if truncated_to is None else min(tokens, truncated_to)


@dataclass(frozen=True)
class Window:
    """A window a layout may send, for bounding its cost before any call: the passages known to be
    in it, how many more (any of the job's), and how many identifiers its answer needs (`limit`)."""

    known: Sequence[int]
    unknown: int = 0
    limit: int | None = None


class WindowCost:
    """Upper bounds on the tokens of one job's window calls (prompt plus allowed completion)."""

    def __init__(self, enc: tiktoken.Encoding, prompt: Prompt, job: ListwiseJob, first: bool) -> None:
        self.enc = enc
        self.prompt = prompt
        self.job = job
        self.first = first
        self.lengths = [passage_tokens(enc, p, job.passage_tokens) + _BOUNDARY_SLACK for p in job.passages]
        self.largest = list(accumulate(sorted(self.lengths, reverse=True), initial=0))  # sum of the k longest
        self._skeletons: dict[tuple[int, bool], int] = {}

    def __call__(self, window: Window) -> int:
        """One pass over `window`: with single-token ranking, the one-token call and the permutation
        it falls back to when no logprobs come back."""
        size = len(window.known) + window.unknown
        if size < 2:
            return 0  # a lone passage needs no call
        passages = sum(self.lengths[i] for i in window.known) + self.largest[min(window.unknown, len(self.lengths))]
        cost = self._skeleton(size, False) + passages + output_tokens(answer_ids(size, window.limit))
        if self.first:
            cost += self._skeleton(size, True) + passages + 1
        return cost

    def _skeleton(self, size: int, first: bool) -> int:
        key = (size, first)
        if key not in self._skeletons:
            empty = build_messages(self.prompt, self.job.query, [""] * size, self.job.instruction, first)
            self._skeletons[key] = count_messages(self.enc, empty)
        return self._skeletons[key]
