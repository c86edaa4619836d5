from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.strategies.tokens import count_messages, count_text, encoding_name_for, get_encoding, truncate


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
@settings(max_examples=300, deadline=None)
def test_truncation_keeps_what_fits_and_cuts_to_the_budget(text: str, budget: int) -> None:
    enc = get_encoding("cl100k_base")
    cut = truncate(enc, text, budget)
    if count_text(enc, text) <= budget:
        assert cut == text  # whether or not the short-text shortcut decided it
    else:
        assert count_text(enc, cut) <= budget
