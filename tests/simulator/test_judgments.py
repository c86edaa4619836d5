"""Grades from judgments, whatever the client did to the passage text on the way."""

from __future__ import annotations

import pytest

from simulator.judgments import Judgments, compact, overlap_grade
from tests.simulator.conftest import needs_trec
from tests.simulator.prompts import PASSAGES, QUERY, SHARED, small_judgments


@pytest.fixture(scope="module")
def judgments() -> Judgments:
    return small_judgments()


def test_compact_form_survives_sanitizing() -> None:
    assert compact("See [7]\u200b  the\tRésumé ［3］!") == compact("see (7) the résumé (3)") == "see7therésumé3"


@pytest.mark.parametrize(("text", "grade"), PASSAGES)
def test_whole_passages_get_their_grade(judgments: Judgments, text: str, grade: int) -> None:
    found = judgments.grade(QUERY, f"  {text.upper()}  ")
    assert (found.value, found.judged) == (grade, True)


def test_a_passage_cut_short_takes_the_best_candidate_it_begins(judgments: Judgments) -> None:
    assert judgments.grade(QUERY, PASSAGES[2][0][:40]).value == 2
    # Cut inside the shared prefix, it could be either of the two: the better grade.
    assert judgments.grade(QUERY, SHARED[:80]).value == 3
    # Cut after the texts diverge, it is exactly one of them.
    assert judgments.grade(QUERY, PASSAGES[4][0][:130]).value == 0


def test_appended_contained_and_mostly_equal_passages(judgments: Judgments) -> None:
    assert judgments.grade(QUERY, PASSAGES[2][0] + " (source: Wikipedia)").value == 2
    assert judgments.grade(QUERY, "Title: tides. " + PASSAGES[3][0]).value == 3
    edited = PASSAGES[1][0][:-10] + " and more"
    assert judgments.grade(QUERY, edited).value == 1


def test_the_query_is_matched_normalized_and_unknown_text_falls_back_to_overlap(judgments: Judgments) -> None:
    assert judgments.grade("How do ocean tides work?", PASSAGES[3][0]).value == 3
    unknown = judgments.grade(QUERY, "Tides in the ocean work with the moon.")
    assert not unknown.judged and unknown.value == overlap_grade(QUERY, "Tides in the ocean work with the moon.")
    assert judgments.grade("unheard of query", "nothing in common").value == 0


def test_overlap_grade_grows_with_the_share_of_query_terms() -> None:
    query = "ocean tides moon gravity"
    grades = [overlap_grade(query, t) for t in ("bananas", "the ocean", "ocean tides", "tides moon gravity ocean")]
    assert grades == sorted(grades) and grades[0] == 0 and grades[-1] == 3


@needs_trec
def test_every_trec_candidate_as_the_gateway_sends_it_gets_its_judged_grade() -> None:
    """Sanitized and cut to the listwise budget, every DL19/DL20 passage is matched exactly."""
    from bench.trec import load_qrels, load_queries
    from gateway.strategies.sanitize import neutralize
    from gateway.strategies.tokens import get_encoding, truncate

    enc = get_encoding("cl100k_base")
    judgments = Judgments.load()
    for name in ("dl19", "dl20"):
        qrels = load_qrels(name)
        for q in load_queries(name):
            best: dict[str, int] = {}
            for c in q.candidates:  # identical texts under several docids: the best grade
                key = compact(c.text)
                best[key] = max(best.get(key, 0), qrels.get(q.qid, {}).get(c.docid, 0))
            for c in q.candidates:
                found = judgments.grade(neutralize(q.query), truncate(enc, neutralize(c.text), 300))
                assert (found.value, found.judged) == (best[compact(c.text)], True), (q.qid, c.docid)
