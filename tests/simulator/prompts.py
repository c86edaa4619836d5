"""The prompts the simulator must read: today's gateway prompts and the shapes other strategies use.

A small judged query (QUERY, PASSAGES) stands in for TREC where a test needs no real data.
"""

from __future__ import annotations

from gateway.config import ListwiseSettings, PointwiseSettings
from gateway.strategies import batched, pointwise, window
from gateway.strategies.prompts import default_prompts_dir, load_prompts
from gateway.strategies.sanitize import neutralize
from gateway.strategies.tokens import get_encoding
from simulator.judgments import Judgments

Messages = list[dict[str, str]]

QUERY = "how do ocean tides work"
SHARED = "Tides are the rise and fall of sea levels caused by the combined effects of the gravitational forces "
# (text, grade); the last two share their first 100 characters and differ in grade.
PASSAGES = [
    ("Bananas are rich in potassium and grow in tropical climates.", 0),
    ("The ocean covers most of the planet and holds most of its water.", 1),
    ("Ocean tides follow the moon; high tide comes roughly twice a day at most coasts.", 2),
    (SHARED + "exerted by the Moon and the Sun and the rotation of the Earth: the moon pulls the water.", 3),
    (SHARED + "of planets, a theory that modern oceanography has rejected long ago.", 0),
]
GRADES = [g for _, g in PASSAGES]
TEXTS = [t for t, _ in PASSAGES]

_PROMPTS = load_prompts(default_prompts_dir())
_ENC = get_encoding("cl100k_base")


def small_judgments() -> Judgments:
    judgments = Judgments()
    judgments.add(QUERY, PASSAGES)
    return judgments


def rankgpt(query: str, texts: list[str], first: bool = False) -> Messages:
    """The gateway's multi-turn listwise prompt (RankGPT), passages sanitized and cut as it does."""
    return gateway_listwise("rankgpt", query, texts, first)


def gateway_listwise(name: str, query: str, texts: list[str], first: bool = False) -> Messages:
    """A gateway listwise prompt file (`listwise`: one message; `rankgpt`: multi-turn), permutation or FIRST."""
    job = window.prepare(_ENC, _PROMPTS[name], query, texts, ListwiseSettings(), 8192)
    return window.build_messages(_PROMPTS[name], job.query, job.passages, first=first)


def gateway_batch(query: str, texts: list[str]) -> Messages:
    """The gateway's batched pointwise prompt (one `[id] label` line per passage)."""
    return batched.build_messages(_PROMPTS["batched"], neutralize(query), [neutralize(t) for t in texts], 3)


def graded(query: str, text: str) -> Messages:
    """The gateway's pointwise prompt (0..3 rubric, passage in <passage> tags)."""
    return pointwise.prepare(_ENC, _PROMPTS["pointwise"], query, [text], PointwiseSettings(), 8192)[0]


def single_message(query: str, texts: list[str]) -> Messages:
    """RankZephyr's listwise prompt: every passage a line of one user message."""
    lines = "\n".join(f"[{i}] {t}" for i, t in enumerate(texts, 1))
    return [
        {"role": "system", "content": "You are RankLLM, an intelligent assistant that ranks passages."},
        {"role": "user", "content": f"I will provide you with {len(texts)} passages, each indicated by a numerical "
                                    f"identifier []. Rank the passages based on their relevance to the search "
                                    f"query: {query}.\n\n{lines}\n\nSearch Query: {query}.\nRank the {len(texts)} "
                                    "passages above. The output format should be [] > [], e.g., [4] > [2]. "
                                    "Only respond with the ranking results."},
    ]


def first(query: str, texts: list[str]) -> Messages:
    """A FIRST-style prompt: only the identifier of the single most relevant passage."""
    lines = "\n\n".join(f"[{i}] {t}" for i, t in enumerate(texts, 1))
    return [
        {"role": "system", "content": "You are an assistant that finds the passage that best answers a query."},
        {"role": "user", "content": f"Query: {query}\n\n{lines}\n\nAnswer with only the identifier number of the "
                                    "most relevant passage, e.g. 3, and nothing else."},
    ]


def batch(query: str, texts: list[str], max_label: int = 3) -> Messages:
    """Batched pointwise: several passages, one `[id] label` line each."""
    lines = "\n".join(f"[{i}] {t}" for i, t in enumerate(texts, 1))
    return [
        {"role": "system", "content": f"Grade each passage on a scale of 0 to {max_label}: {max_label} means it "
                                      "answers the query exactly, 0 that it has nothing to do with it."},
        {"role": "user", "content": f"Query: {query}\n\n{lines}\n\nAnswer with one line per passage, in order, "
                                    "formatted as:\n[1] 2\n[2] 0"},
    ]


def yes_no(query: str, text: str) -> Messages:
    return [{"role": "user", "content": f"Query: {query}\n<passage>\n{text}\n</passage>\n"
                                        "Is the passage relevant to the query? Answer Yes or No."}]
