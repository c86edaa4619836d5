"""The simulated model's answers: judged order, distributions, and the noise and bias knobs."""

from __future__ import annotations

import math
import re

from simulator import model
from simulator.knobs import Knobs
from simulator.reading import Passage, Task

GRADES = [0, 3, 1, 2, 0, 3, 1, 2, 0, 1]
PASSAGES = tuple(Passage(i + 1, f"passage number {i} about something") for i in range(len(GRADES)))


def task(kind: str, n: int = len(GRADES), max_label: int = 3) -> Task:
    return Task(kind, "query", PASSAGES[:n], max_label)


def ranked(knobs: Knobs, prompt: bytes = b"p", grades: list[int] = GRADES) -> list[int]:
    t = task("listwise", len(grades))
    text = model.answer(t, model.latent_scores(t, grades, knobs, prompt), knobs).text
    return [int(i) for i in re.findall(r"\[(\d+)\]", text)]


def test_listwise_orders_by_grade_and_breaks_ties_by_passage_not_position() -> None:
    order = ranked(Knobs())
    assert [GRADES[i - 1] for i in order] == sorted(GRADES, reverse=True)
    # Ties follow a hash of each passage's text: the same in every prompt for one seed, another under another.
    assert ranked(Knobs(seed=1)) != order or ranked(Knobs(seed=2)) != order
    assert ranked(Knobs(), prompt=b"other prompt") == order


def test_full_noise_scrambles_and_a_seed_reproduces_it() -> None:
    perfect = ranked(Knobs())
    noisy = ranked(Knobs(noise=1.0, seed=3))
    assert noisy != perfect and sorted(noisy) == sorted(perfect)
    assert ranked(Knobs(noise=1.0, seed=3)) == noisy
    assert ranked(Knobs(noise=1.0, seed=3), prompt=b"a reshuffled window") != noisy


def test_position_bias_promotes_early_passages() -> None:
    flat = [1] * 10  # a step of 3/9 grades per position outweighs the +-0.15 quirks
    assert ranked(Knobs(bias=3.0), grades=flat) == list(range(1, 11))
    assert ranked(Knobs(bias=-3.0), grades=flat) == list(range(10, 0, -1))
    # Strong enough, it outweighs a grade: passage 1 (grade 0) climbs above grade-1 passages.
    assert ranked(Knobs(bias=2.5)).index(1) < ranked(Knobs()).index(1)


def test_first_answers_the_best_identifier_with_a_distribution_in_relevance_order() -> None:
    t = task("first")
    answer = model.answer(t, model.latent_scores(t, GRADES, Knobs(), b"p"), Knobs())
    (slot,) = answer.slots
    assert answer.text == slot.options[0][0] and GRADES[int(answer.text) - 1] == 3
    assert [GRADES[int(i) - 1] for i, _ in slot.options] == sorted(GRADES, reverse=True)
    assert math.isclose(sum(math.exp(lp) for _, lp in slot.options), 1.0)


def test_graded_labels_peak_at_the_grade_and_their_expectation_follows_it() -> None:
    expected = []
    for grade in range(4):
        options = model.label_options(grade + 0.1, 3, 0.5)
        assert options[0][0] == str(grade)
        expected.append(sum(int(t) * math.exp(lp) for t, lp in options))
    assert expected == sorted(expected) and expected[0] > 0 and expected[3] < 3
    # A finer scale maps the grade onto it: grade 2 of 0..3 is label 6 of 0..9.
    assert model.label_options(2.0, 9, 0.5)[0][0] == "6"


def test_batch_answers_one_line_per_passage_with_a_slot_on_each_label() -> None:
    t = task("batch", 4)
    answer = model.answer(t, model.latent_scores(t, GRADES[:4], Knobs(), b"p"), Knobs())
    assert answer.text == "[1] 0\n[2] 3\n[3] 1\n[4] 2"
    assert [answer.text[s.start:s.end] for s in answer.slots] == ["0", "3", "1", "2"]


def test_token_logprobs_put_the_options_on_the_token_that_carries_the_choice() -> None:
    t = task("batch", 2)
    answer = model.answer(t, model.latent_scores(t, GRADES[:2], Knobs(), b"p"), Knobs())
    tokens = ["[", "1", "]", " ", "0", "\n", "[", "2", "]", " ", "3"]
    content = model.token_logprobs(tokens, answer, top=5)
    assert [c["token"] for c in content] == tokens
    labels = [[a["token"] for a in c["top_logprobs"]][:2] for c in content if c["token"] in "03"]
    assert labels[0][0] == "0" and labels[1][0] == "3"
    for entry in content:
        logprobs = [a["logprob"] for a in entry["top_logprobs"]]
        assert len(logprobs) == 5 and logprobs == sorted(logprobs, reverse=True)
        assert sum(math.exp(lp) for lp in logprobs) <= 1.0 + 1e-9


def test_yes_no_follows_relevance() -> None:
    def yes(grade: int) -> float:
        t = Task("yesno", "q", PASSAGES[:1])
        answer = model.answer(t, model.latent_scores(t, [grade], Knobs(), b"p"), Knobs())
        return dict(answer.slots[0].options)["Yes"]

    assert yes(0) < yes(1) < math.log(0.5) < yes(2) < yes(3)
