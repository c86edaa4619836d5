"""Configured keys are scrubbed from upstream texts in every form an upstream may echo them in."""

from __future__ import annotations

import base64
from urllib.parse import quote, quote_plus

import pytest

from gateway.upstream.redact import MASK, Redactor

KEY = "sk-proj-Ab3dEf6hIj9kLm2nOp5qRs8tUv1wXy4z"


@pytest.mark.parametrize("echo", [
    KEY, KEY.upper(), KEY.lower(), quote(KEY, safe=""), quote_plus(KEY), KEY.encode().hex(), KEY.encode().hex().upper(),
    base64.b64encode(KEY.encode()).decode(), base64.urlsafe_b64encode(KEY.encode()).decode(),
    base64.b64encode(f"Bearer {KEY}".encode()).decode(), base64.b64encode(f"user:{KEY}".encode()).decode(),
    base64.b64encode(f"ab{KEY}".encode()).decode(), KEY[-12:], quote(KEY[-12:], safe=""), KEY[5:17],
], ids=["raw", "upper", "lower", "url", "url-plus", "hex", "hex-upper", "b64", "b64-url", "b64-bearer",
        "b64-basic", "b64-offset-2", "tail", "tail-url", "middle"])
def test_every_form_of_the_key_is_masked(echo: str) -> None:
    scrubbed = Redactor([KEY])(f"Incorrect API key provided: {echo}. See the docs.")
    assert MASK in scrubbed and scrubbed.startswith("Incorrect API key provided: ")
    assert scrubbed.endswith(". See the docs.")
    for i in range(len(KEY) - 8):
        assert KEY[i: i + 9].lower() not in scrubbed.lower()


def test_text_without_the_key_is_unchanged() -> None:
    text = "The model gpt-4o is overloaded; try again in 20 seconds (request id abc123)."
    assert Redactor([KEY])(text) == text


def test_key_like_words_of_any_provider_are_masked_too() -> None:
    assert Redactor()("bad key sk-live-ABCDEFGH123 here") == f"bad key {MASK} here"


def test_short_keys_are_masked_whole() -> None:
    assert Redactor(["abc123"])("key abc123 refused") == f"key {MASK} refused"
