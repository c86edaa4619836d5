"""The rerank use case: from a validated request to a response body.

Knows nothing of HTTP; routes hand it a `RerankRequest` and turn its
`GatewayError`s into responses.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from gateway import listwise, pointwise
from gateway.cache import ResultCache, cache_key
from gateway.config import DEFAULT_MODEL, ListwiseSettings, Mode, PointwiseSettings, Settings
from gateway.errors import DeadlineExceeded, ModelNotFound, ModelUnavailable
from gateway.metrics import Metrics
from gateway.prompts import Prompt, default_prompts_dir, load_prompts, require_prompt
from gateway.protocol import (
    BilledUnits,
    RerankMeta,
    RerankRequest,
    RerankResponse,
    RerankResult,
    Tokens,
    Usage,
    search_units,
)
from gateway.ranking import Ranking, fuse
from gateway.resilience import RetryBudget
from gateway.runtime import ModelRuntime, Upstreams, build_models
from gateway.upstream import RequestChat


@dataclass(frozen=True)
class RankingResult:
    ranking: Ranking
    prompt_version: str
    attempts: int
    retries: int
    fallbacks: list[str]  # aliases other than the requested one that answered


class RerankService:
    """Everything one config needs to answer rerank requests."""

    def __init__(
        self, settings: Settings, models: dict[str, ModelRuntime], prompts: dict[str, Prompt],
        previous: RerankService | None = None, metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.metrics = metrics
        # A reload keeps what it can: breakers and slots of unchanged upstreams, the retry
        # budget, and the cache (its keys already cover everything a config can change).
        self.upstreams = Upstreams(settings, models, previous.upstreams if previous else None)
        # The first default candidate that can be called, e.g. a hosted model when its key is set,
        # else a local one.
        candidates = settings.default_candidates
        usable = [a for a in candidates if models[a].chat.unavailable_reason() is None]
        self.default_alias = (usable or candidates)[0]
        same_budget = previous and previous.settings.reliability.retry_budget_ratio == \
            settings.reliability.retry_budget_ratio
        self.retry_budget = previous.retry_budget if previous and same_budget else \
            RetryBudget(settings.reliability.retry_budget_ratio)
        self.prompts: dict[Mode, Prompt] = {
            "listwise": require_prompt(prompts, settings.listwise.prompt, "listwise"),
            "pointwise": require_prompt(prompts, settings.pointwise.prompt, "pointwise"),
        }
        pointwise.check_labels(self.prompts["pointwise"], settings.pointwise.max_label)
        if previous is not None and previous.settings.cache == settings.cache:
            self.cache: ResultCache[RankingResult] = previous.cache
        else:
            self.cache = ResultCache(
                max_entries=settings.cache.max_entries,
                ttl_seconds=settings.cache.ttl_seconds,
                enabled=settings.cache.enabled,
            )

    @classmethod
    def from_settings(
        cls, settings: Settings, previous: RerankService | None = None, metrics: Metrics | None = None
    ) -> RerankService:
        """Build the real thing: LiteLLM clients, tiktoken encodings, prompt files.

        With `previous`, model clients whose settings did not change are reused warm.
        """
        models = build_models(settings, previous.models if previous else None)
        prompts_dir = Path(settings.prompts_dir) if settings.prompts_dir else default_prompts_dir()
        return cls(settings, models, load_prompts(prompts_dir), previous, metrics)

    def resolve(self, name: str | None) -> ModelRuntime:
        alias = self.settings.resolve_model(name)
        if alias == DEFAULT_MODEL:
            alias = self.default_alias
        runtime = self.models.get(alias) if alias else None
        if runtime is None:
            raise ModelNotFound(
                f"model {name!r} not found; configured models: {', '.join(self.models)}", param="model"
            )
        reason = runtime.chat.unavailable_reason()
        if reason:
            raise ModelUnavailable(reason, param="model")
        return runtime

    async def rerank(
        self, request: RerankRequest, *, return_documents: bool = True, timeout: float | None = None,
        arrived: float | None = None,
    ) -> tuple[RerankResponse, bool]:
        """Rank, or answer from cache; returns (response, cache hit).

        `return_documents` is the dialect's default, used when the request does
        not say; `timeout` is a client's deadline (seconds), capped by config,
        counted from `arrived` (time.monotonic() when the request came in).
        """
        model = self.resolve(request.model)
        mode: Mode = request.mode or model.settings.mode
        prompt = self.prompts[mode]
        params = self._params(mode, request.token_budget())
        policy = self.settings.reliability
        budget = min(timeout or request.timeout or policy.request_timeout_seconds,
                     policy.max_request_timeout_seconds)
        deadline = (arrived or time.monotonic()) + budget
        key = cache_key(
            llm=model.settings.litellm_model,
            api_base=model.settings.resolved_api_base(),
            logprobs=model.settings.logprobs,
            context_window=model.settings.context_window,
            mode=mode,
            prompt=prompt.version,
            params=params.model_dump(),
            query=request.query,
            instruction=request.instruction,
            documents=request.texts,
        )

        async def compute() -> tuple[RankingResult, bool]:
            # Calls stop a little early, leaving time to answer within the deadline.
            chat = RequestChat(self.upstreams.chain(model.alias), policy, self.retry_budget, deadline - 0.02,
                               self._observe_attempt if self.metrics else None)
            ranking = await self._rank(model, mode, prompt, params, request, chat)
            self._raise_if_mostly_failed(ranking)
            fallbacks = sorted(set(chat.answered_by) - {model.alias})
            result = RankingResult(ranking, prompt.version, chat.attempts, chat.retries, fallbacks)
            # A ranking with failed calls or a stand-in model's answers is never cached.
            return result, not ranking.stats.failed_calls and not fallbacks

        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                result, hit = await self.cache.get_or_compute(key, compute)
        except TimeoutError:
            raise DeadlineExceeded(f"the request did not finish within its {budget:g}s deadline") from None
        if request.return_documents is not None:
            return_documents = request.return_documents
        response = self._response(request, model, mode, result, hit, return_documents)
        if self.metrics:
            self._observe_response(response)
        return response, hit

    def _observe_attempt(self, alias: str, seconds: float, failure: str | None) -> None:
        assert self.metrics is not None
        self.metrics.llm_latency.labels(alias).observe(seconds)
        if failure:
            self.metrics.llm_failures.labels(alias, failure).inc()

    def _observe_response(self, response: RerankResponse) -> None:
        assert self.metrics is not None
        meta, usage, m = response.meta, response.usage, self.metrics
        m.cache.labels("hit" if meta.cached else "miss").inc()
        if meta.cached:
            return
        m.tokens.labels(meta.model_alias, "input").inc(usage.prompt_tokens)
        m.tokens.labels(meta.model_alias, "output").inc(usage.completion_tokens)
        m.cost.labels(meta.model_alias).inc(meta.cost_usd)
        m.parse_failures.labels(meta.mode).inc(meta.parse_failures)

    def _params(self, mode: Mode, token_budget: int | None) -> ListwiseSettings | PointwiseSettings:
        """The strategy settings, with the client's per-document token budget if it is lower."""
        params: ListwiseSettings | PointwiseSettings = (
            self.settings.listwise if mode == "listwise" else self.settings.pointwise
        )
        if token_budget and token_budget < params.max_passage_tokens:
            params = params.model_copy(update={"max_passage_tokens": token_budget})
        return params

    async def _rank(
        self, model: ModelRuntime, mode: Mode, prompt: Prompt,
        params: ListwiseSettings | PointwiseSettings, request: RerankRequest, chat: RequestChat,
    ) -> Ranking:
        enc = model.encoding
        # Prompts must fit every model that may answer them, fallbacks included.
        context = min(self.models[u.alias].settings.context_window for u in chat.chain)
        if isinstance(params, ListwiseSettings):
            job = listwise.prepare(enc, prompt, request.query, request.texts, params, context, request.instruction)
            return await listwise.rank_listwise(chat, enc, prompt, job, params)
        conversations = pointwise.prepare(
            enc, prompt, request.query, request.texts, params, context, request.instruction
        )
        logprobs = all(self.models[u.alias].settings.logprobs for u in chat.chain)
        return await pointwise.rank_pointwise(chat, enc, conversations, params, logprobs)

    def _raise_if_mostly_failed(self, ranking: Ranking) -> None:
        stats = ranking.stats
        if not stats.failed_calls:
            return
        if stats.failed_calls / stats.calls > self.settings.limits.max_failed_call_ratio:
            error = stats.errors[-1]
            raise type(error)(
                f"{stats.failed_calls} of {stats.calls} LLM calls failed; last error: {error.message}",
                status=error.status, retry_after=error.retry_after,
            ) from error

    def _response(
        self, request: RerankRequest, model: ModelRuntime, mode: Mode, result: RankingResult, hit: bool,
        return_documents: bool,
    ) -> RerankResponse:
        ranking, stats = result.ranking, result.ranking.stats
        # Fusion is applied after the cache: it does not change what the LLM said.
        weight = request.fusion_weight if request.fusion_weight is not None else model.settings.fusion_weight
        order, scores = fuse(ranking.order, ranking.scores, weight)
        top_n = min(request.top_n or len(order), len(order))
        results = [
            RerankResult(
                index=index,
                relevance_score=score,
                document=request.documents[index] if return_documents else None,
            )
            for index, score in zip(order[:top_n], scores[:top_n], strict=True)
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
            model=request.model or model.alias,  # clients see the name they asked for
            results=results,
            data=results,
            usage=Usage(
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
                total_tokens=prompt_tokens + completion_tokens,
            ),
            meta=RerankMeta(
                billed_units=BilledUnits(search_units=search_units(len(request.documents))),
                tokens=Tokens(input_tokens=prompt_tokens, output_tokens=completion_tokens),
                model_alias=model.alias,
                mode=mode,
                cached=hit,
                llm_calls=0 if hit else stats.calls,
                upstream_attempts=0 if hit else result.attempts,
                retries=0 if hit else result.retries,
                fallbacks=[] if hit else result.fallbacks,
                failed_calls=0 if hit else stats.failed_calls,
                parse_failures=stats.parse_failures,
                llm_model=model.settings.litellm_model,
                prompt_version=result.prompt_version,
                cost_usd=round(cost, 8),
                fusion_weight=weight,
            ),
        )
