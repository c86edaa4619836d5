"""What a config turns into at start-up: model clients, breakers, slots."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from gateway.config import ModelSettings, Settings
from gateway.upstream.chain import Upstream
from gateway.upstream.chat import ChatClient
from gateway.upstream.litellm_client import LiteLLMChatClient
from gateway.upstream.resilience import CircuitBreaker, NeverOpen


@dataclass(frozen=True)
class ModelRuntime:
    alias: str
    settings: ModelSettings
    chat: ChatClient


def build_models(settings: Settings, previous: dict[str, ModelRuntime] | None = None) -> dict[str, ModelRuntime]:
    """The real clients: LiteLLM for every alias; unchanged ones reused warm."""
    models = {}
    for alias, model in settings.models.items():
        old = (previous or {}).get(alias)
        if old is not None and old.settings == model:
            models[alias] = old
        else:
            models[alias] = ModelRuntime(alias, model, LiteLLMChatClient(model))
    return models


class Upstreams:
    """Per-alias upstream handles. Aliases that call the same endpoint share one breaker."""

    def __init__(self, settings: Settings, models: dict[str, ModelRuntime],
                 previous: Upstreams | None = None) -> None:
        policy = settings.reliability
        same_policy = previous is not None and previous.policy == policy
        # Breakers are per endpoint: an outage seen under one alias is an outage for all.
        breakers: dict[tuple[str, str | None], CircuitBreaker] = dict(previous.breakers) if same_policy else {}
        self.by_alias: dict[str, Upstream] = {}
        for alias, runtime in models.items():
            endpoint = (runtime.settings.litellm_model, runtime.settings.resolved_api_base())
            if endpoint not in breakers:
                # In process there is no outage to detect: a slow embedded model is busy, not down.
                breakers[endpoint] = NeverOpen() if runtime.settings.embedded else CircuitBreaker(
                    policy.breaker_failure_threshold, policy.breaker_cooldown_seconds,
                    policy.breaker_max_cooldown_seconds)
            breaker = breakers[endpoint]
            old = previous.by_alias.get(alias) if previous else None
            slots = old.slots if old and previous.models[alias].settings.max_concurrency == \
                runtime.settings.max_concurrency else asyncio.Semaphore(runtime.settings.max_concurrency)
            self.by_alias[alias] = Upstream(alias, runtime.chat, breaker, slots)
        self.models = models
        self.policy = policy
        self.breakers = breakers

    def chain(self, alias: str) -> list[Upstream]:
        """The alias, then its fallbacks, leaving out any that cannot be called at all."""
        names = [alias, *self.models[alias].settings.fallbacks]
        return [self.by_alias[n] for n in names if n == alias or self.models[n].chat.unavailable_reason() is None]
