"""The rerank use case: from a validated request to a response body.

Knows nothing of HTTP; routes hand it a `RerankRequest` and turn its
`GatewayError`s into responses.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import tiktoken

from gateway import listwise, pointwise
from gateway.cache import ResultCache, cache_key
from gateway.config import Mode, ModelSettings, Settings
from gateway.errors import ModelNotFound, ModelUnavailable
from gateway.llm import ChatClient, LiteLLMChatClient
from gateway.prompts import Prompt, default_prompts_dir, load_prompts, require_prompt
from gateway.protocol import RerankMeta, RerankRequest, RerankResponse, RerankResult, Usage
from gateway.ranking import Ranking
from gateway.tokens import encoding_name_for, get_encoding


@dataclass(frozen=True)
class ModelRuntime:
    alias: str
    settings: ModelSettings
    chat: ChatClient
    encoding: tiktoken.Encoding


@dataclass(frozen=True)
class RankingResult:
    ranking: Ranking
    prompt_version: str


class RerankService:
    """Everything one config needs to answer rerank requests."""

    def __init__(self, settings: Settings, models: dict[str, ModelRuntime], prompts: dict[str, Prompt]) -> None:
        self.settings = settings
        self.models = models
        self.prompts: dict[Mode, Prompt] = {
            "listwise": require_prompt(prompts, settings.listwise.prompt, "listwise"),
            "pointwise": require_prompt(prompts, settings.pointwise.prompt, "pointwise"),
        }
        pointwise.check_labels(self.prompts["pointwise"], settings.pointwise.max_label)
        self.cache: ResultCache[RankingResult] = ResultCache(
            max_entries=settings.cache.max_entries,
            ttl_seconds=settings.cache.ttl_seconds,
            enabled=settings.cache.enabled,
        )

    @classmethod
    def from_settings(cls, settings: Settings) -> RerankService:
        """Build the real thing: LiteLLM clients, tiktoken encodings, prompt files."""
        models = {
            alias: ModelRuntime(
                alias, model, LiteLLMChatClient(model),
                get_encoding(model.encoding or encoding_name_for(model.litellm_model)),
            )
            for alias, model in settings.models.items()
        }
        prompts_dir = Path(settings.prompts_dir) if settings.prompts_dir else default_prompts_dir()
        return cls(settings, models, load_prompts(prompts_dir))

    def resolve(self, name: str | None) -> ModelRuntime:
        alias = name or self.settings.default_model
        runtime = self.models.get(alias)
        if runtime is None:
            raise ModelNotFound(f"model {alias!r} not found", param="model")
        reason = runtime.chat.unavailable_reason()
        if reason:
            raise ModelUnavailable(reason, param="model")
        return runtime

    async def rerank(self, request: RerankRequest) -> tuple[RerankResponse, bool]:
        """Rank, or answer from cache; returns (response, cache hit)."""
        model = self.resolve(request.model)
        mode: Mode = request.mode or model.settings.mode
        prompt = self.prompts[mode]
        params = self.settings.listwise if mode == "listwise" else self.settings.pointwise
        key = cache_key(
            llm=model.settings.litellm_model,
            api_base=model.settings.resolved_api_base(),
            logprobs=model.settings.logprobs,
            context_window=model.settings.context_window,
            mode=mode,
            prompt=prompt.version,
            params=params.model_dump(),
            query=request.query,
            documents=request.texts,
        )

        async def compute() -> tuple[RankingResult, bool]:
            ranking = await self._rank(model, mode, prompt, request)
            self._raise_if_mostly_failed(ranking)
            return RankingResult(ranking, prompt.version), ranking.stats.failed_calls == 0

        result, hit = await self.cache.get_or_compute(key, compute)
        return self._response(request, model, mode, result, hit), hit

    async def _rank(self, model: ModelRuntime, mode: Mode, prompt: Prompt, request: RerankRequest) -> Ranking:
        enc, context = model.encoding, model.settings.context_window
        if mode == "listwise":
            job = listwise.prepare(enc, prompt, request.query, request.texts, self.settings.listwise, context)
            return await listwise.rank_listwise(model.chat, enc, prompt, job, self.settings.listwise)
        conversations = pointwise.prepare(
            enc, prompt, request.query, request.texts, self.settings.pointwise, context
        )
        return await pointwise.rank_pointwise(
            model.chat, enc, conversations, self.settings.pointwise, model.settings.logprobs
        )

    def _raise_if_mostly_failed(self, ranking: Ranking) -> None:
        stats = ranking.stats
        if not stats.failed_calls:
            return
        if stats.failed_calls / stats.calls > self.settings.limits.max_failed_call_ratio:
            error = stats.errors[-1]
            raise type(error)(
                f"{stats.failed_calls} of {stats.calls} LLM calls failed; last error: {error.message}"
            ) from error

    def _response(
        self, request: RerankRequest, model: ModelRuntime, mode: Mode, result: RankingResult, hit: bool
    ) -> RerankResponse:
        ranking, stats = result.ranking, result.ranking.stats
        top_n = min(request.top_n or len(ranking.order), len(ranking.order))
        results = [
            RerankResult(
                index=index,
                relevance_score=score,
                document=request.documents[index] if request.return_documents else None,
            )
            for index, score in zip(ranking.order[:top_n], ranking.scores[:top_n], strict=True)
        ]
        # A cache hit sent nothing upstream, so it used (and costs) no tokens.
        prompt_tokens = 0 if hit else stats.prompt_tokens
        completion_tokens = 0 if hit else stats.completion_tokens
        cost = (
            prompt_tokens * model.settings.input_cost_per_million
            + completion_tokens * model.settings.output_cost_per_million
        ) / 1e6
        return RerankResponse(
            id=f"rerank-{uuid.uuid4().hex}",
            model=model.alias,
            results=results,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            meta=RerankMeta(
                mode=mode,
                cached=hit,
                llm_calls=0 if hit else stats.calls,
                failed_calls=0 if hit else stats.failed_calls,
                parse_failures=stats.parse_failures,
                llm_model=model.settings.litellm_model,
                prompt_version=result.prompt_version,
                cost_usd=round(cost, 8),
            ),
        )
