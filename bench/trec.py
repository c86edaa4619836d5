"""TREC Deep Learning passage sets and nDCG@10 as trec_eval computes it.

Data: ../shared/data/trec-dl (BM25 top-100 candidates with text, NIST qrels).
"""

from __future__ import annotations

import gzip
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(
    os.environ.get("TREC_DL_DIR", Path(__file__).resolve().parents[2] / "shared" / "data" / "trec-dl")
)


@dataclass(frozen=True)
class Candidate:
    docid: str
    text: str


@dataclass(frozen=True)
class Query:
    qid: str
    query: str
    candidates: list[Candidate]


def load_queries(name: str) -> list[Query]:
    """`name` is "dl19" or "dl20"."""
    with gzip.open(DATA_DIR / f"{name}-bm25-top100.jsonl.gz", "rt", encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return [
        Query(row["qid"], row["query"], [Candidate(c["docid"], c["text"]) for c in row["candidates"]])
        for row in rows
    ]


def load_qrels(name: str) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    for line in (DATA_DIR / f"{name}-qrels.txt").read_text().splitlines():
        if line.strip():
            qid, _, docid, grade = line.split()
            qrels.setdefault(qid, {})[docid] = int(grade)
    return qrels


def ndcg_at_10(ranked_docids: list[str], judgments: dict[str, int]) -> float:
    """trec_eval ndcg_cut_10: gain = grade, log2 discount, ideal from every judged passage."""
    def dcg(gains: list[int]) -> float:
        return sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:10]))

    ideal = dcg(sorted((g for g in judgments.values() if g > 0), reverse=True))
    if ideal == 0:
        return 0.0
    return dcg([max(judgments.get(d, 0), 0) for d in ranked_docids]) / ideal


def mean_ndcg(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> float:
    """Mean nDCG@10 ×100 over the queries that have judgments."""
    scores = [ndcg_at_10(runs[qid], qrels[qid]) for qid in runs if qid in qrels]
    return 100 * sum(scores) / len(scores)
