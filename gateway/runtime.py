"""What a config turns into at start-up: model clients, encodings, breakers, slots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import tiktoken

from gateway.config import ModelSettings, Settings
from gateway.llm import ChatClient, LiteLLMChatClient
from gateway.resilience import CircuitBreaker
from gateway.tokens import encoding_name_for, get_encoding
from gateway.upstream import Upstream


@dataclass(frozen=True)
class ModelRuntime:
    alias: str
    settings: ModelSettings
    chat: ChatClient
    encoding: tiktoken.Encoding


def build_models(settings: Settings) -> dict[str, ModelRuntime]:
    """The real clients: LiteLLM for every alias, tiktoken for counting."""
    return {
        alias: ModelRuntime(
            alias, model, LiteLLMChatClient(model),
            get_encoding(model.encoding or encoding_name_for(model.litellm_model)),
        )
        for alias, model in settings.models.items()
    }


class Upstreams:
    """Per-alias upstream handles. Aliases that call the same endpoint share one breaker."""

    def __init__(self, settings: Settings, models: dict[str, ModelRuntime]) -> None:
        policy = settings.reliability
        breakers: dict[tuple[str, str | None], CircuitBreaker] = {}
        self.by_alias: dict[str, Upstream] = {}
        for alias, runtime in models.items():
            endpoint = (runtime.settings.litellm_model, runtime.settings.resolved_api_base())
            breaker = breakers.setdefault(endpoint, CircuitBreaker(
                policy.breaker_failure_threshold, policy.breaker_cooldown_seconds,
                policy.breaker_max_cooldown_seconds,
            ))
            self.by_alias[alias] = Upstream(
                alias, runtime.chat, runtime.settings.timeout_seconds, breaker,
                asyncio.Semaphore(runtime.settings.max_concurrency),
            )
        self.models = models

    def chain(self, alias: str) -> list[Upstream]:
        """The alias, then its fallbacks, leaving out any that cannot be called at all."""
        names = [alias, *self.models[alias].settings.fallbacks]
        return [self.by_alias[n] for n in names if n == alias or self.models[n].chat.unavailable_reason() is None]
