"""The rerank use case: from a validated query to a ranked answer.

Knows nothing of HTTP: the HTTP edge turns a request body into a `RerankQuery`,
and the `RerankAnswer` (or a `GatewayError`) into a response.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gateway.cache.keys import cache_key
from gateway.cache.memory import ResultCache
from gateway.config import DEFAULT_MODEL, Settings
from gateway.errors import DeadlineExceeded, InvalidRequest, ModelNotFound, ModelUnavailable, echo
from gateway.ops.metrics import Metrics
from gateway.strategies.base import Ranking, RankTask, Strategy
from gateway.strategies.prompts import default_prompts_dir, load_prompts
from gateway.strategies.registry import build_strategies
from gateway.strategies.scoring import fuse
from gateway.strategies.tokens import count_text, encoding_name_for, get_encoding
from gateway.upstream.chain import RequestChat
from gateway.upstream.resilience import RetryBudget
from gateway.upstream.runtime import ModelRuntime, Upstreams, build_models


@dataclass(frozen=True)
class RerankQuery:
    """What a client asked for, after the HTTP edge validated it."""

    query: str
    texts: Sequence[str]  # what each document is ranked by
    model: str | None = None
    mode: str | None = None
    top_n: int | None = None
    instruction: str | None = None
    token_budget: int | None = None  # per-document tokens, when the client set a budget
    timeout: float | None = None  # the client's deadline in seconds (body or header)
    fusion_weight: float | None = None


@dataclass(frozen=True)
class AnswerMeta:
    """How an answer was produced."""

    mode: str
    cached: bool
    llm_calls: int
    upstream_attempts: int
    retries: int
    fallbacks: list[str]
    failed_calls: int
    parse_failures: int
    model_alias: str
    llm_model: str
    prompt_version: str
    cost_usd: float
    fusion_weight: float


@dataclass(frozen=True)
class RerankAnswer:
    """Documents by relevance, best first, cut to `top_n`."""

    id: str
    model: str  # the name the client asked for, else the alias that answered
    documents: int  # how many documents were ranked
    results: list[tuple[int, float]]  # (document index, 0-1 score)
    prompt_tokens: int
    completion_tokens: int
    meta: AnswerMeta

    @property
    def hit(self) -> bool:
        return self.meta.cached


@dataclass(frozen=True)
class RankingResult:
    """What the cache holds: a ranking and how it was obtained."""

    ranking: Ranking
    prompt_version: str
    attempts: int
    retries: int
    fallbacks: list[str] = field(default_factory=list)  # aliases other than the requested one that answered


class RerankService:
    """Everything one config needs to answer rerank requests."""

    def __init__(
        self, settings: Settings, models: dict[str, ModelRuntime], strategies: dict[str, Strategy],
        previous: RerankService | None = None, metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.models = models
        self.strategies = strategies
        self.metrics = metrics
        self.encodings = {
            alias: get_encoding(rt.settings.encoding or encoding_name_for(rt.settings.litellm_model))
            for alias, rt in models.items()
        }
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
        strategies = build_strategies(settings, load_prompts(prompts_dir))
        return cls(settings, models, strategies, previous, metrics)

    def availability_problems(self) -> tuple[list[str], list[str]]:
        """(errors, warnings) about models that cannot be called for lack of a key or base URL."""
        reasons = {alias: rt.chat.unavailable_reason() for alias, rt in self.models.items()}
        warnings = [f"models.{alias}: {reason}" for alias, reason in reasons.items() if reason]
        if all(reasons[a] for a in self.settings.default_candidates):
            return [f"no default model can be called: {'; '.join(warnings)}"], []
        return [], warnings

    def resolve(self, name: str | None) -> ModelRuntime:
        alias = self.settings.resolve_model(name)
        if alias == DEFAULT_MODEL:
            alias = self.default_alias
        runtime = self.models.get(alias) if alias else None
        if runtime is None:
            raise ModelNotFound(
                f"model {echo(name)} not found; configured models: {', '.join(self.models)}", param="model"
            )
        reason = runtime.chat.unavailable_reason()
        if reason:
            raise ModelUnavailable(reason, param="model")
        return runtime

    async def rerank(self, query: RerankQuery, *, arrived: float | None = None) -> RerankAnswer:
        """Rank, or answer from cache.

        The deadline is the client's `timeout` (or the configured default),
        capped by config, counted from `arrived` (time.monotonic() when the
        request came in).
        """
        model = self.resolve(query.model)
        mode = query.mode or model.settings.mode
        strategy = self.strategies.get(mode)
        if strategy is None:
            raise InvalidRequest(f"mode {mode!r} is not one of {sorted(self.strategies)}", code="invalid_mode",
                                 param="mode")
        self._check_repeated_text(query, model.alias)
        policy = self.settings.reliability
        budget = min(query.timeout or policy.request_timeout_seconds, policy.max_request_timeout_seconds)
        deadline = (arrived or time.monotonic()) + budget
        chain = self.upstreams.chain(model.alias)
        # Prompts must suit every model that may answer them, fallbacks included.
        task = RankTask(
            query=query.query,
            texts=query.texts,
            encoding=self.encodings[model.alias],
            context_window=min(self.models[u.alias].settings.context_window for u in chain),
            logprobs=all(self.models[u.alias].settings.logprobs for u in chain),
            instruction=query.instruction,
            token_budget=query.token_budget,
        )
        key = cache_key(
            llm=model.settings.litellm_model,
            api_base=model.settings.resolved_api_base(),
            logprobs=model.settings.logprobs,
            context_window=model.settings.context_window,
            mode=mode,
            strategy=strategy.cache_params(),
            token_budget=query.token_budget,
            query=query.query,
            instruction=query.instruction,
            documents=list(query.texts),
        )

        async def compute() -> tuple[RankingResult, bool]:
            # Calls stop a little early, leaving time to answer within the deadline.
            chat = RequestChat(chain, policy, self.retry_budget, deadline - 0.02,
                               self._observe_attempt if self.metrics else None)
            ranking = await strategy.rank(chat, task)
            self._raise_if_mostly_failed(ranking)
            fallbacks = sorted(set(chat.answered_by) - {model.alias})
            result = RankingResult(ranking, strategy.prompt_version, chat.attempts, chat.retries, fallbacks)
            # A ranking with failed calls, unusable answers or a stand-in model's answers is never cached.
            stats = ranking.stats
            return result, not stats.failed_calls and not stats.parse_failures and not fallbacks

        try:
            async with asyncio.timeout(deadline - time.monotonic()):
                result, hit = await self.cache.get_or_compute(key, compute)
        except TimeoutError:
            raise DeadlineExceeded(f"the request did not finish within its {budget:g}s deadline") from None
        answer = self._answer(query, model, mode, result, hit)
        if self.metrics:
            self._observe(answer)
        return answer

    def _check_repeated_text(self, query: RerankQuery, alias: str) -> None:
        """The query and instruction go into every LLM call: their tokens are bounded before any call."""
        limits = self.settings.limits
        for name, text, limit in (("query", query.query, limits.max_query_tokens),
                                  ("instruction", query.instruction, limits.max_instruction_tokens)):
            tokens = count_text(self.encodings[alias], text) if text else 0
            if tokens > limit:
                raise InvalidRequest(f"{name} is {tokens} tokens for model {alias!r}; the limit is {limit} "
                                     "(it is repeated in every LLM call)", code=f"{name}_too_long", param=name)

    def _observe_attempt(self, alias: str, seconds: float, failure: str | None) -> None:
        assert self.metrics is not None
        self.metrics.llm_latency.labels(alias).observe(seconds)
        if failure:
            self.metrics.llm_failures.labels(alias, failure).inc()

    def _observe(self, answer: RerankAnswer) -> None:
        assert self.metrics is not None
        meta, m = answer.meta, self.metrics
        m.cache.labels("hit" if meta.cached else "miss").inc()
        if meta.cached:
            return
        m.tokens.labels(meta.model_alias, "input").inc(answer.prompt_tokens)
        m.tokens.labels(meta.model_alias, "output").inc(answer.completion_tokens)
        m.cost.labels(meta.model_alias).inc(meta.cost_usd)
        m.parse_failures.labels(meta.mode).inc(meta.parse_failures)

    def _raise_if_mostly_failed(self, ranking: Ranking) -> None:
        stats = ranking.stats
        if not stats.failed_calls:
            return
        if stats.failed_calls / stats.calls > self.settings.limits.max_failed_call_ratio:
            error = stats.errors[-1]
            raise type(error)(
                f"{stats.failed_calls} of {stats.calls} LLM calls failed; last error: {error.log_message}",
                status=error.status, retry_after=error.retry_after, quoted=error.quoted,
            ) from error

    def _answer(
        self, query: RerankQuery, model: ModelRuntime, mode: str, result: RankingResult, hit: bool
    ) -> RerankAnswer:
        ranking, stats = result.ranking, result.ranking.stats
        # Fusion is applied after the cache: it does not change what the LLM said.
        weight = query.fusion_weight if query.fusion_weight is not None else model.settings.fusion_weight
        order, scores = fuse(ranking.order, ranking.scores, weight)
        top_n = min(query.top_n or len(order), len(order))
        # A cache hit sent nothing upstream, so it used (and costs) no tokens.
        prompt_tokens = 0 if hit else stats.prompt_tokens
        completion_tokens = 0 if hit else stats.completion_tokens
        cost = (
            prompt_tokens * model.settings.input_cost_per_million
            + completion_tokens * model.settings.output_cost_per_million
        ) / 1e6
        return RerankAnswer(
            id=f"rerank-{uuid.uuid4().hex}",
            model=query.model or model.alias,  # clients see the name they asked for
            documents=len(order),
            results=list(zip(order[:top_n], scores[:top_n], strict=True)),
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            meta=AnswerMeta(
                mode=mode,
                cached=hit,
                llm_calls=0 if hit else stats.calls,
                upstream_attempts=0 if hit else result.attempts,
                retries=0 if hit else result.retries,
                fallbacks=[] if hit else result.fallbacks,
                failed_calls=0 if hit else stats.failed_calls,
                parse_failures=stats.parse_failures,
                model_alias=model.alias,
                llm_model=model.settings.litellm_model,
                prompt_version=result.prompt_version,
                cost_usd=round(cost, 8),
                fusion_weight=weight,
            ),
        )
