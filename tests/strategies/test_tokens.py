from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.strategies.sanitize import neutralize
from gateway.strategies.tokens import (
    WordBound,
    count_messages,
    count_messages_above,
    count_text,
    encoding_name_for,
    get_encoding,
    truncate,
)


@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4-turbo-preview", "cl100k_base"),
        ("gpt-4-turbo-preview", "cl100k_base"),
        ("openai/gpt-4o", "o200k_base"),  # LiteLLM's own counter gets this one wrong
        ("gpt-4o-mini", "o200k_base"),
        ("anthropic/claude-3-5-sonnet", "cl100k_base"),
    ],
)
def test_encoding_is_chosen_from_the_model_name_without_provider(model: str, encoding: str) -> None:
    assert encoding_name_for(model) == encoding


def test_message_count_matches_litellm() -> None:
    import litellm

    messages = [{"role": "system", "content": "Rank these."}, {"role": "user", "content": "[1] Paris"}]
    enc = get_encoding("cl100k_base")
    assert count_messages(enc, messages) == litellm.token_counter(model="gpt-4-turbo-preview", messages=messages)


def test_truncate_keeps_a_token_prefix() -> None:
    enc = get_encoding("cl100k_base")
    text = "one two three four five six seven eight nine ten"
    cut = truncate(enc, text, 4)
    assert count_text(enc, cut) == 4 and text.startswith(cut)
    assert truncate(enc, text, 1000) == text


def test_truncate_never_leaves_a_broken_character() -> None:
    enc = get_encoding("cl100k_base")
    cut = truncate(enc, "日本語のテキスト" * 20, 5)
    assert "\ufffd" not in cut


def test_special_token_text_is_counted_as_plain_text() -> None:
    assert count_text(get_encoding("cl100k_base"), "<|endoftext|>") > 1


@given(st.text(max_size=80), st.integers(min_value=1, max_value=40))
@settings(max_examples=300)
def test_truncation_keeps_what_fits_and_cuts_to_the_budget(text: str, budget: int) -> None:
    enc = get_encoding("cl100k_base")
    cut = truncate(enc, text, budget)
    if count_text(enc, text) <= budget:
        assert cut == text  # whether or not the short-text shortcut decided it
    else:
        assert count_text(enc, cut) <= budget


ENCODINGS = ["cl100k_base", "o200k_base"]
# Words of any characters but whitespace (a control character, "\0" included, may start one), joined by
# single spaces: the shape `neutralize` leaves.
words = st.lists(st.text(st.characters(blacklist_categories=["Zs", "Zl", "Zp", "Cs"],
                                       blacklist_characters="\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"),
                         min_size=1, max_size=12), max_size=30)
# The same words with runs of spaces anywhere, at either end too: what a cut may leave.
spaced_words = st.lists(st.one_of(st.text(st.characters(blacklist_categories=["Zs", "Zl", "Zp", "Cs"],
                                                        blacklist_characters="\t\n\v\f\r\x1c\x1d\x1e\x1f\x85"),
                                          max_size=12), st.sampled_from(["", "the", "\0the", "'s", "12", "a,"])),
                        max_size=30)

# Words ending in the marks the bound reads apart ("France," "3." "e.g."), among others that look alike.
marked_words = st.lists(st.builds(lambda stem, marks: stem + marks,
                                  st.sampled_from(["the", "France", "e.g", "U.S", "12", "1,000", "x", "é", "'s",
                                                   ")", "ab\u0301", "", "HTTPServer", "\u0663"]),
                                  st.text(alphabet=",.;:!?)'\"", max_size=3)),
                        max_size=40)


@pytest.mark.parametrize("name", ENCODINGS)
@given(words=st.one_of(words, spaced_words, marked_words))
@settings(max_examples=400)
def test_the_word_bound_never_counts_fewer_tokens_than_tiktoken(name: str, words: list[str]) -> None:
    enc = get_encoding(name)
    bound = WordBound(enc)
    text = " ".join(words)
    for _ in range(2):  # before and after it learned some of the words
        assert bound(text) is not None
        assert bound(text) >= count_text(enc, text)


def test_a_word_with_a_closing_mark_is_read_as_the_word_and_a_byte() -> None:
    enc = get_encoding("cl100k_base")
    bound = WordBound(enc)
    bound.enc = None  # type: ignore[assignment]  # nothing may be encoded: every word is in the table
    text = " ".join(["information,", "retrieval."] * 30)
    assert bound.fits(text, count_text(enc, text), spaced=True)


@pytest.mark.parametrize("name", ENCODINGS)
@given(words=st.one_of(words, spaced_words, marked_words), budget=st.integers(min_value=0, max_value=120))
@settings(max_examples=400)
def test_what_the_bound_says_fits_does_fit(name: str, words: list[str], budget: int) -> None:
    enc = get_encoding(name)
    bound = WordBound(enc)
    text = " ".join(words)
    for _ in range(2):  # before and after it learned some of the words
        if bound.fits(text, budget, spaced=True):
            assert count_text(enc, text) <= budget


def test_a_word_that_starts_with_a_control_character_is_bounded_as_the_word_it_is() -> None:
    enc = get_encoding("cl100k_base")
    bound = WordBound(enc)
    text = " ".join(["\0international"] * 40)  # the table's first-word keys are marked with a tab, never NUL
    assert bound(text) >= count_text(enc, text)


@pytest.mark.parametrize("name", ENCODINGS)
def test_every_word_the_table_starts_with_is_what_tiktoken_counts(name: str) -> None:
    enc = get_encoding(name)
    seeded = WordBound(enc).savings
    assert len(seeded) > 50_000  # the vocabulary's plain words, before any text taught it one
    for key, saving in seeded.items():
        alone = key[1:] if key.startswith("\t") else " " + key
        assert count_text(enc, alone) - len(alone.encode()) == saving, alone


def test_a_passage_is_read_only_as_far_as_its_budget_needs() -> None:
    enc = get_encoding("cl100k_base")
    bound = WordBound(enc)
    known = " ".join(["information"] * 40)  # a token of 12 bytes each (11 for the first)
    unread = " " + " ".join(["xq"] * 1000)  # past what the budget needs: bounded by their bytes, unread
    bound.enc = None  # type: ignore[assignment]  # nothing is encoded
    assert bound.fits(known + unread, 40 + len(unread))
    assert count_text(enc, known + unread) <= 40 + len(unread)


@pytest.mark.parametrize("name", ENCODINGS)
def test_a_passage_the_first_words_cannot_show_fits_is_counted_with_its_unknown_words_encoded_alone(name: str) -> None:
    from bench.trec import load_queries

    enc = get_encoding(name)
    bound = WordBound(enc)
    for query in load_queries("dl19")[:2]:
        for candidate in query.candidates[:100]:
            passage = neutralize(candidate.text)
            tokens = count_text(enc, passage)
            assert bound.fits(passage, tokens, spaced=True)  # exact: single-spaced words are encoded alone
            assert not bound.fits(passage, tokens - 1, spaced=True)


@pytest.mark.parametrize("text", ["", "short", "x" * 300])
def test_a_text_no_longer_in_bytes_than_the_budget_fits_unread(text: str) -> None:
    assert WordBound(get_encoding("cl100k_base"), seed=False).fits(text, 300)


@pytest.mark.parametrize("name", ENCODINGS)
def test_once_every_word_is_known_the_bound_is_the_exact_count(name: str) -> None:
    from bench.trec import load_queries

    enc = get_encoding(name)
    bound = WordBound(enc)
    passages = [neutralize(c.text) for q in load_queries("dl19")[:3] for c in q.candidates[:100]]
    for _ in range(60):  # each pass teaches the table a few words of each passage
        for passage in passages:
            bound(passage)
    assert [bound(p) for p in passages] == [count_text(enc, p) for p in passages]


@pytest.mark.parametrize("text", ["a\ttab", "a\nline", "nb\u00a0sp", "ideographic\u3000space", "next\x85line",
                                  "lone \ud800 surrogate"])
def test_texts_with_whitespace_but_spaces_are_not_bounded_by_words(text: str) -> None:
    bound = WordBound(get_encoding("cl100k_base"))
    assert bound(text) is None
    assert not bound.fits(text * 60, 10)  # encoded instead


@pytest.mark.parametrize("text", ["two  spaces", " leading", "trailing ", "   "])
def test_runs_of_spaces_are_bounded_too(text: str) -> None:
    enc = get_encoding("cl100k_base")
    assert WordBound(enc)(text * 20) >= count_text(enc, text * 20)


def test_what_the_table_remembers_is_bounded() -> None:
    bound = WordBound(get_encoding("cl100k_base"), max_words=10)
    seeded = len(bound.savings)
    for i in range(50):
        bound(f"w{i} x{i} y{i}")
    assert len(bound.savings) <= seeded + 11  # one text may pass the limit by its last word learned


@pytest.mark.parametrize("name", ENCODINGS)
def test_truncation_of_corpus_passages_is_unchanged_by_the_bound(name: str) -> None:
    from bench.trec import load_queries

    enc = get_encoding(name)
    for query in load_queries("dl20")[:3]:
        for candidate in query.candidates[:100]:
            passage = neutralize(candidate.text)
            for budget in (20, 60, 300):
                tokens = enc.encode(passage, disallowed_special=())
                expected = passage if len(tokens) <= budget else enc.decode(tokens[:budget], errors="ignore")
                assert truncate(enc, passage, budget) == expected


@given(contents=st.lists(st.text(max_size=80), min_size=1, max_size=4), enough=st.integers(min_value=-5, max_value=400))
@settings(max_examples=200)
def test_a_skeleton_is_counted_only_when_its_bytes_leave_too_little_room(contents: list[str], enough: int) -> None:
    enc = get_encoding("cl100k_base")
    messages = [{"role": "user", "content": text} for text in contents]  # lone surrogates included
    exact = count_messages(enc, messages)
    above = count_messages_above(enc, messages, enough)
    assert above >= exact
    assert above == exact or above <= enough  # an over-count only where it still leaves `enough`
