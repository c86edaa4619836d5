"""Helpers for strategy unit tests: real prompts, a scripted chat client."""

from __future__ import annotations

import re
from collections.abc import Callable

from gateway.strategies.prompts import Prompt, load_prompts
from gateway.strategies.tokens import get_encoding
from gateway.upstream.chat import ChatReply, ChatRequest, MockChatClient
from tests.conftest import ROOT

PROMPTS = load_prompts(ROOT / "prompts")
ENC = get_encoding("cl100k_base")
PASSAGE = re.compile(r"^\[(\d+)\] (.*)$", re.DOTALL)


def prompt(kind: str) -> Prompt:
    return PROMPTS[kind]


def window_passages(request: ChatRequest) -> list[str]:
    """The passages of a listwise window, in prompt order."""
    matches = (PASSAGE.match(m["content"]) for m in request.messages if m["role"] == "user")
    return [m.group(2) for m in matches if m]


def ranking_by(key: Callable[[str], float]) -> MockChatClient:
    """A listwise model that orders each window by `key(passage)`, highest first."""

    def handler(request: ChatRequest) -> ChatReply:
        passages = window_passages(request)
        ranked = sorted(range(len(passages)), key=lambda i: -key(passages[i]))
        return ChatReply(" > ".join(f"[{i + 1}]" for i in ranked), prompt_tokens=100, completion_tokens=10)

    return MockChatClient(handler)
