"""Cache keys: canonical in what decides a ranking, different wherever a ranking could differ."""

from __future__ import annotations

import json

import orjson

from gateway.cache.keys import config_digest, request_key

CONFIG = config_digest(llm="openai/x", mode="listwise", strategy={"window": 20})


def key(**parts: object) -> str:
    return request_key(CONFIG, **{"query": "q", "texts": ["a", "b"], **parts})  # type: ignore[arg-type]


def test_settings_digest_ignores_keyword_order_but_not_values() -> None:
    assert config_digest(a=1, b=[1, 2]) == config_digest(b=[1, 2], a=1)
    assert config_digest(a=1) != config_digest(a=2)
    assert request_key(config_digest(mode="pointwise"), query="q", texts=["a"]) != \
        request_key(config_digest(mode="listwise"), query="q", texts=["a"])


def test_every_request_part_changes_the_key() -> None:
    base = key()
    assert key(texts=["b", "a"]) != base  # order matters: listwise windows follow it
    assert key(query="Q") != base  # exact match, no case folding
    assert key(instruction="be strict") != base
    assert key(token_budget=64) != base
    assert key(tenant="key-a") != base and key(tenant="key-a") != key(tenant="key-b")  # cache.scope = "key"
    assert key(texts=("a", "b")) == base  # any sequence of the same texts


def test_text_boundaries_cannot_be_shifted() -> None:
    # A framing that concatenated texts would give these the same key.
    assert key(texts=["ab", "c"]) != key(texts=["a", "bc"])
    assert key(query="q", texts=["a"]) != key(query="qa", texts=[])
    assert key(texts=['a", "b']) != key(texts=["a", "b"])


def test_the_same_texts_spelled_differently_in_json_share_a_key() -> None:
    # What the client's JSON looked like (escapes, spacing) does not matter, only the strings.
    escaped = json.loads('{"texts": ["caf\\u00e9", "\\ud83d\\ude00"]}')["texts"]
    raw = orjson.loads('{"texts":["café","😀"]}'.encode())["texts"]
    assert key(texts=escaped) == key(texts=raw)
