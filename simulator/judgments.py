"""Relevance grades for (query, passage) pairs, from the TREC DL judgments.

Prompts carry passages as the gateway (or any client) prepared them: whitespace
folded, `[7]` rewritten to `(7)`, invisible characters dropped, cut to a token
budget. Both sides are therefore compared in a *compact* form (NFKC, casefolded,
letters and digits only), and a passage is matched only among its own query's
candidates, in this order:

1. equal to a candidate;
2. a prefix of candidates (a truncated passage): the best grade among them;
3. a candidate is a prefix of it (text appended): the longest such candidate;
4. contained in a candidate, or containing one: the best grade among them;
5. the candidate sharing the longest common prefix, if that covers 60% of it.

Whole-passage matching comes first because 42 (DL19) and 78 (DL20) groups of a
query's candidates share their first 60 characters and differ in grade. Identical texts
judged under different docids take their best grade. A query the judgments do
not know, or a passage none of these steps places, is graded by query-term
overlap: 0 when none of the query's terms (3+ letters, no stopwords) occur in it,
else the share of them it holds scaled to 1..3.
"""

from __future__ import annotations

import gzip
import json
import os
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from os.path import commonprefix
from pathlib import Path

DATA_DIR = Path(os.environ.get("TREC_DL_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "trec-dl"))
SETS = ("dl19", "dl20")
MAX_GRADE = 3
_MIN_MATCH = 12  # compact characters; shorter fragments would match half the candidates
_LCP_SHARE = 0.6
_WORD = re.compile(r"\w+")
_ASCII_NOT_ALNUM = bytes(c for c in range(128) if not chr(c).isalnum())
_STOPWORDS = frozenset(
    "the and for what how does are was who why when where which with from that this into its can you "
    "your define definition meaning mean is of in to a an do".split()
)


def compact(text: str) -> str:
    """Letters and digits only, casefolded: what survives any whitespace, bracket or markup rewrite."""
    text = unicodedata.normalize("NFKC", text).casefold()
    if text.isascii():  # the common case, several times faster as bytes
        return text.encode().translate(None, _ASCII_NOT_ALNUM).decode()
    return "".join(filter(str.isalnum, text))


@dataclass(frozen=True)
class Grade:
    value: int
    judged: bool  # False: the query-term overlap fallback


class Judgments:
    """Compact query text -> {compact passage text: best grade} over the loaded sets."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, int]] = {}
        # Windows overlap and pointwise calls repeat passages: each is matched once.
        self._match = lru_cache(maxsize=65536)(self._find)

    @classmethod
    def load(cls, directory: Path = DATA_DIR, sets: tuple[str, ...] = SETS) -> Judgments:
        judgments = cls()
        for name in sets:
            candidates = directory / f"{name}-bm25-top100.jsonl.gz"
            qrels_file = directory / f"{name}-qrels.txt"
            if not (candidates.is_file() and qrels_file.is_file()):
                continue
            qrels = _read_qrels(qrels_file)
            with gzip.open(candidates, "rt", encoding="utf-8") as lines:
                for line in lines:
                    if line.strip():
                        row = json.loads(line)
                        judgments.add(row["query"], [(c["text"], qrels.get(row["qid"], {}).get(c["docid"], 0))
                                                     for c in row["candidates"]])
        return judgments

    def add(self, query: str, passages: list[tuple[str, int]]) -> None:
        self._match.cache_clear()
        table = self.tables.setdefault(compact(query), {})
        for text, grade in passages:
            key = compact(text)
            table[key] = max(table.get(key, 0), max(0, grade))

    @property
    def queries(self) -> int:
        return len(self.tables)

    def grade(self, query: str, passage: str) -> Grade:
        table_key = self._table_key(compact(query))
        if table_key is not None:
            found = self._match(table_key, compact(passage))
            if found is not None:
                return Grade(found, True)
        return Grade(overlap_grade(query, passage), False)

    def _table_key(self, query: str) -> str | None:
        if query in self.tables:
            return query
        # A query line that carried more than the query ("q. Instruction: ..."): the longest known prefix.
        known = [q for q in self.tables if len(q) >= 8 and query.startswith(q)]
        return max(known, key=len, default=None)

    def _find(self, query: str, passage: str) -> int | None:
        return match(self.tables[query], passage)


def match(table: dict[str, int], passage: str) -> int | None:
    """The grade of compact `passage` among one query's compact candidates, or None (steps above)."""
    if passage in table:
        return table[passage]
    if len(passage) < _MIN_MATCH:
        return None
    steps = (
        [g for text, g in table.items() if text.startswith(passage)],
        [g for _, text, g in sorted(((len(t), t, g) for t, g in table.items() if passage.startswith(t)),
                                    reverse=True)[:1]],
        [g for text, g in table.items() if passage in text or (len(text) >= _MIN_MATCH and text in passage)],
    )
    for grades in steps:
        if grades:
            return max(grades)
    best, grade = 0, None
    for text, g in table.items():
        shared = len(commonprefix((text, passage)))
        if shared > best or (shared == best and grade is not None and g > grade):
            best, grade = shared, g
    return grade if best >= _LCP_SHARE * len(passage) else None


def terms(text: str) -> set[str]:
    return {w for w in _WORD.findall(text.casefold()) if len(w) > 2 and w not in _STOPWORDS}


def overlap_grade(query: str, passage: str) -> int:
    wanted = terms(query)
    if not wanted:
        return 0
    share = len(wanted & terms(passage)) / len(wanted)
    return 0 if share == 0 else max(1, min(MAX_GRADE, round(MAX_GRADE * share)))


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in path.read_text().splitlines():
        if line.strip():
            qid, _, docid, grade = line.split()
            qrels.setdefault(qid, {})[docid] = int(grade)
    return qrels
