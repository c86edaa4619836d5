"""Reading a chat prompt the way a model would: what is asked, about which query and passages.

Only system and user turns are read; assistant turns are the model's own words.

Passages, from user turns only (their text is never searched for cues, so a
passage cannot steer the task; system turns are all instructions):
- a user turn that starts with `[n]` and has no other `[m]` line is one passage,
  its whole text (RankGPT's multi-turn prompt);
- otherwise every line starting with `[n]` is a passage, the rest of that line
  (a single-message prompt: lines or blank-line separated paragraphs), except a
  format example: a rest that is empty, a lone digit or starts with `>`;
- `<passage>...</passage>` or `<document>...</document>` blocks (numbered 1, 2, ...
  unless the tag carries `id="n"`);
- failing all of those, one `Passage: text` or `Document: text` line.
The first passage with an identifier wins over later ones with the same.

The query is the rest of the first line of the remaining text holding
`query:` (any case, `Search Query:` included), one trailing period stripped.

The task, decided in this order from the remaining text:
- `pointwise` / `batch`: a label scale, "scale of 0 to K", "from 0 to K",
  "between 0 and K" (K <= 9): one passage gets one label digit, several get one
  line each, `[id] label`;
- `yesno`: one passage and both words "yes" and "no";
- `first`: several passages, the words "most relevant passage" (or document, or
  one; "which passage is most relevant") and "identifier", "number", "id" or
  "label": the bare identifier of the best passage;
- `listwise`: several passages (or one and the word "rank"): `[a] > [b] > ...`;
- `generic`: anything else.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

KINDS = ("listwise", "first", "pointwise", "batch", "yesno", "generic")
MAX_PASSAGES = 1000

_MARKER_LINE = re.compile(r"^[ \t]*\[(\d{1,4})\][ \t]*(.*)$", re.MULTILINE)
_WHOLE = re.compile(r"\A\s*\[(\d{1,4})\]\s*(.*)\Z", re.DOTALL)
_EXAMPLE = re.compile(r"\A(?:|\d|>.*)\Z", re.DOTALL)  # "[1] > [2]", "[1] 2", "[1]": how to answer
_TAGGED = re.compile(r"<(passage|document)(?:\s+id\s*=\s*[\"']?(\d{1,4})[\"']?)?\s*>(.*?)</\1\s*>",
                     re.IGNORECASE | re.DOTALL)
_LABELLED = re.compile(r"^[ \t]*(?:passage|document)[ \t]*:[ \t]*(.+)$", re.IGNORECASE | re.MULTILINE)
_QUERY = re.compile(r"\bquery[ \t]*:[ \t]*(.*?)[ \t]*$", re.IGNORECASE | re.MULTILINE)
_SCALE = re.compile(
    r"\b(?:(?:scale|range)\s+(?:of\s+|from\s+)?|from\s+|between\s+)0\s*(?:to|through|-|–|and)\s*(\d)\b",
    re.IGNORECASE,
)
_YES, _NO = re.compile(r"\byes\b", re.IGNORECASE), re.compile(r"\bno\b", re.IGNORECASE)
_SINGLE_BEST = re.compile(
    r"\bmost\s+relevant\s+(?:passage|document|one)\b|\b(?:which|what)\s+(?:passage|document)\s+is\s+"
    r"(?:the\s+)?most\s+relevant\b",
    re.IGNORECASE,
)
_IDENTIFIER = re.compile(r"\b(?:identifier|number|id|label)s?\b", re.IGNORECASE)
_RANK = re.compile(r"\brank", re.IGNORECASE)


@dataclass(frozen=True)
class Passage:
    ident: int
    text: str


@dataclass(frozen=True)
class Task:
    kind: str  # one of KINDS
    query: str
    passages: tuple[Passage, ...]
    max_label: int = 3  # pointwise and batch: the scale's top label


def content_text(message: Mapping[str, Any]) -> str:
    """A message's text; content given as parts keeps its text parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
    return "" if content is None else str(content)


def read(messages: list[Mapping[str, Any]]) -> Task:
    passages: dict[int, str] = {}
    rest: list[str] = []
    for message in messages:
        if message.get("role") not in ("system", "user", "developer"):
            continue
        text = content_text(message)
        rest.append(_take_passages(text, passages) if message.get("role") == "user" else text)
    instructions = "\n".join(rest)
    if not passages:
        labelled = _LABELLED.search(instructions)
        if labelled:
            passages[1] = labelled.group(1).strip()
            instructions = instructions[: labelled.start()] + instructions[labelled.end():]
    query = _query(instructions)
    found = tuple(Passage(i, t) for i, t in list(passages.items())[:MAX_PASSAGES])
    return Task(_kind(instructions, len(found)), query, found, _max_label(instructions))


def _take_passages(text: str, passages: dict[int, str]) -> str:
    """Move the passages of one user message into `passages`; return the text around them."""
    whole = _WHOLE.match(text) if len(_MARKER_LINE.findall(text)) == 1 else None
    if whole:
        passages.setdefault(int(whole.group(1)), whole.group(2).strip())
        return ""

    def tagged(match: re.Match[str]) -> str:
        ident = int(match.group(2)) if match.group(2) else len(passages) + 1
        passages.setdefault(ident, match.group(3).strip())
        return ""

    text = _TAGGED.sub(tagged, text)

    def line(match: re.Match[str]) -> str:
        rest = match.group(2).strip()
        if _EXAMPLE.match(rest):
            return match.group(0)
        passages.setdefault(int(match.group(1)), rest)
        return ""

    return _MARKER_LINE.sub(line, text)


def _query(instructions: str) -> str:
    match = _QUERY.search(instructions)
    if match is None:
        return ""
    query = match.group(1).strip()
    return query[:-1].rstrip() if query.endswith(".") else query


def _max_label(instructions: str) -> int:
    match = _SCALE.search(instructions)
    return int(match.group(1)) if match and int(match.group(1)) >= 1 else 3


def _kind(instructions: str, n: int) -> str:
    if n == 0:
        return "generic"
    scale = _SCALE.search(instructions)
    if scale and int(scale.group(1)) >= 1:
        return "pointwise" if n == 1 else "batch"
    if n == 1 and _YES.search(instructions) and _NO.search(instructions):
        return "yesno"
    if n > 1 and _SINGLE_BEST.search(instructions) and _IDENTIFIER.search(instructions):
        return "first"
    if n > 1 or _RANK.search(instructions):
        return "listwise"
    return "generic"
