"""The rerank use case: from a validated query to a ranked answer.

Knows nothing of HTTP: the HTTP edge turns a request body into a `RerankQuery`,
and the `RerankAnswer` (or a `GatewayError`) into a response.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from gateway.cache.base import DEFAULT_POLICY, CachePolicy, Deadline
from gateway.cache.keys import config_digest, request_key
from gateway.cache.memory import ResultCache
from gateway.cache.redis import RedisTier
from gateway.cache.redis_store import store_for
from gateway.config import DEFAULT_MODEL, Settings
from gateway.errors import (
    DeadlineExceeded,
    GatewayError,
    InvalidRequest,
    ModelNotFound,
    ModelUnavailable,
    UpstreamError,
    UpstreamUnavailable,
    echo,
)
from gateway.ops.metrics import Metrics
from gateway.ops.ratelimit import KeyMeter, Reservation, SharedBuckets
from gateway.strategies import wire
from gateway.strategies.base import Ranking, RankTask, Strategy, TokenUsage, off_loop
from gateway.strategies.prompts import default_prompts_dir, load_prompts
from gateway.strategies.registry import build_strategies, resolve
from gateway.strategies.scoring import cached_kendall_tau, fuse
from gateway.strategies.tokens import count_text, encoding_name_for, get_encoding, word_bound
from gateway.upstream.chain import RequestChat
from gateway.upstream.resilience import RetryBudget
from gateway.upstream.runtime import ModelRuntime, Upstreams, build_models

logger = logging.getLogger("gateway")


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
    cache: CachePolicy = DEFAULT_POLICY  # what the client's Cache-Control allows
    tenant: str | None = None  # the API key's name when auth is on (cache.scope = "key" keeps tenants apart)


# Calls stop this long before the request's deadline, leaving time to assemble and send the answer.
ANSWER_MARGIN_SECONDS = 0.05


@dataclass(frozen=True)
class AnswerMeta:
    """How an answer was produced."""

    mode: str  # what the request (or the model's default) asked for, e.g. "listwise"
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
    ranked_documents: int  # how many the model ranked; the rest follow in the caller's order
    input_order_tau: float  # Kendall's tau of the answer's order against the caller's (1 = unchanged)
    strategy: str  # the strategy that ranked, e.g. "tdpart-first" for mode "listwise"
    score_type: str  # "calibrated": graded relevance, 0.5 and above relevant; "rank": from positions only
    partial: bool  # the deadline came first: what finished, the rest in the caller's order below
    skipped: dict[str, int] | None  # when partial: LLM calls cut or not made, documents no finished call saw
    hedges: int  # duplicate attempts sent for slow calls
    first_fallbacks: int  # single-token windows answered without logprobs, re-asked for a permutation
    warnings: list[str]  # plain sentences about a degraded or demo-quality answer (Cohere's meta.warnings)


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
    hedges: int = 0

    @property
    def partial(self) -> bool:
        return self.ranking.stats.cut_calls > 0


class ResultCodec:
    """`RankingResult` as compact JSON for Redis (`gateway.strategies.wire`); never pickle."""

    def encode(self, result: RankingResult) -> bytes:
        fields = wire.ranking_fields(result.ranking)
        return wire.encode({**fields, "prompt_version": result.prompt_version, "attempts": result.attempts,
                            "retries": result.retries})

    def decode(self, raw: bytes) -> RankingResult:
        data = wire.decode(raw)
        version, attempts, retries = data.get("prompt_version"), data.get("attempts", 0), data.get("retries", 0)
        if not isinstance(version, str) or not all(type(n) is int and n >= 0 for n in (attempts, retries)):
            raise ValueError("not a ranking result")
        return RankingResult(data["ranking"], version, attempts, retries)


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
        for encoding in set(self.encodings.values()):
            word_bound(encoding)  # its vocabulary table (~0.1 s) is built now, not on a request
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
        self._key_configs: dict[tuple[str, str], bytes] = {}
        self.store = store_for(settings.cache, previous.store if previous else None,
                               *((metrics.observe_redis, metrics.set_redis_breaker) if metrics else ()))
        cache = settings.cache
        self.shared_limits = SharedBuckets(self.store, cache.key_prefix) if self.store else None
        if previous is not None and previous.settings.cache == cache and previous.store is self.store:
            self.cache: ResultCache[RankingResult] = previous.cache
        else:
            shared = RedisTier(self.store, ResultCodec(), prefix=cache.key_prefix, ttl_seconds=cache.ttl_seconds) \
                if self.store else None
            self.cache = ResultCache(
                max_entries=cache.max_entries,
                ttl_seconds=min(cache.ttl_seconds, cache.memory_ttl_seconds) if shared else cache.ttl_seconds,
                enabled=cache.enabled, shared=shared,
            )
        self.cache_scope = cache.effective_scope(settings.auth.enabled)

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

    def retire(self, successor: RerankService) -> None:
        """`successor` serves from now on: release what it did not take over, once in-flight requests end."""
        if self.store is not None and self.store is not successor.store:
            self.store.retire()

    async def aclose(self) -> None:
        if self.store is not None:
            await self.store.aclose()

    def cache_status(self) -> dict[str, object]:
        """For /ready: the cache backend and whether it is degraded (serving without Redis)."""
        if self.store is None:
            return {"backend": "memory", "state": "ok"}
        return self.store.status()

    def availability_problems(self) -> tuple[list[str], list[str]]:
        """(errors, warnings) about models that cannot be called for lack of a key or base URL."""
        reasons = {alias: rt.chat.unavailable_reason() for alias, rt in self.models.items()}
        warnings = [f"models.{alias}: {reason}" for alias, reason in reasons.items() if reason]
        if all(reasons[a] for a in self.settings.default_candidates):
            return [f"no default model can be called: {'; '.join(warnings)}"], []
        return [], warnings

    def local_model_status(self) -> dict[str, int] | None:
        """The embedded model's queue, when an alias uses it (one model per process, so one queue)."""
        for runtime in self.models.values():
            status = getattr(runtime.chat, "queue_status", None)
            if runtime.settings.embedded and status is not None:
                return status()  # type: ignore[no-any-return]
        return None

    def resolve(self, name: str | None) -> ModelRuntime:
        runtime = self.lookup(name)
        reason = runtime.chat.unavailable_reason()
        if reason:
            raise ModelUnavailable(reason, param="model")
        return runtime

    def lookup(self, name: str | None) -> ModelRuntime:
        """The alias a client's model name means, callable or not."""
        alias = self.settings.resolve_model(name)
        if alias == DEFAULT_MODEL:
            alias = self.default_alias
        runtime = self.models.get(alias) if alias else None
        if runtime is None:
            raise ModelNotFound(
                f"model {echo(name)} not found; configured models: {', '.join(self.models)}", param="model"
            )
        return runtime

    async def rerank(self, query: RerankQuery, *, arrived: float | None = None,
                     meter: KeyMeter | None = None) -> RerankAnswer:
        """Rank, or answer from cache.

        The deadline is the client's `timeout` (or the model's, or the configured default),
        capped by config, counted from `arrived` (time.monotonic() when the request came in).
        When the model cannot be reached and has a `request_fallback`, that alias answers the
        whole request instead, under the same deadline. With a `meter` that limits tokens, a
        computation reserves the strategy's estimate first and settles what its calls used.
        """
        model = self.lookup(query.model)
        arrived = arrived or time.monotonic()
        budget = self._budget(query, model)
        deadline = arrived + budget
        try:
            if reason := model.chat.unavailable_reason():  # no key here: as unreachable as an outage
                raise ModelUnavailable(reason, param="model")
            answer = await self._rank(model, query, deadline, budget, meter)
        except (UpstreamError, ModelUnavailable) as exc:
            fallback = self._request_fallback(model, exc)
            if fallback is None:
                raise
            logger.warning("model %s could not answer (%s); the whole request goes to %s", model.alias,
                           exc.message, fallback.alias)
            budget = self._budget(query, fallback)  # its own deadline too, unless the client set one
            try:
                answer = await self._rank(fallback, replace(query, mode=None), arrived + budget, budget, meter,
                                          instead_of=(model.alias, exc.message))
            except GatewayError as failed:
                logger.warning("the request fallback %s failed too: %s", fallback.alias, failed.message)
                raise exc from None
        if self.metrics:
            self._observe(answer)
        return answer

    def _budget(self, query: RerankQuery, model: ModelRuntime) -> float:
        """Seconds the request may take: the client's, else the model's, else the default; capped."""
        policy = self.settings.reliability
        return min(query.timeout or model.settings.request_timeout_seconds or policy.request_timeout_seconds,
                   policy.max_request_timeout_seconds)

    def _request_fallback(self, model: ModelRuntime, error: GatewayError) -> ModelRuntime | None:
        """The alias that takes over a request `model` could not answer: only when its upstream is
        unreachable, failing or has no key here (not for a 4xx such as a refused key), and only if
        the fallback itself can be called."""
        name = model.settings.request_fallback
        unreachable = isinstance(error, ModelUnavailable | UpstreamUnavailable) or \
            (isinstance(error, UpstreamError) and error.retryable)
        if not name or not unreachable:
            return None
        fallback = self.models.get(name)
        if fallback is None or fallback.chat.unavailable_reason() is not None:
            return None
        return fallback

    async def _rank(self, model: ModelRuntime, query: RerankQuery, deadline: float, budget: float,
                    meter: KeyMeter | None, instead_of: tuple[str, str] | None = None) -> RerankAnswer:
        mode = query.mode or model.settings.mode
        self._check_repeated_text(query, model.alias)
        policy = self.settings.reliability
        chain = self.upstreams.chain(model.alias)
        # A model with a document budget ranks the first N; the rest keep the caller's order.
        texts = list(query.texts)[: model.settings.max_ranked_documents]
        # Prompts must suit every model that may answer them, fallbacks included.
        logprobs = all(self.models[u.alias].settings.logprobs for u in chain)
        name = resolve(mode, logprobs)
        strategy = self.strategies.get(name)
        if strategy is None:
            raise InvalidRequest(f"mode {mode!r} is not one of {sorted(self.strategies)}", code="invalid_mode",
                                 param="mode")
        task = RankTask(
            query=query.query,
            texts=texts,
            encoding=self.encodings[model.alias],
            context_window=min(self.models[u.alias].settings.context_window for u in chain),
            logprobs=logprobs,
            instruction=query.instruction,
            token_budget=query.token_budget,
        )
        key = ""  # with the cache off no key is read or written: hashing the documents would be wasted
        if self.cache.enabled:
            key = request_key(self._key_config(model, name, strategy, task), query=query.query, texts=texts,
                              instruction=query.instruction, token_budget=query.token_budget,
                              tenant=query.tenant if self.cache_scope == "key" else None)
        metered = meter is not None and meter.limits_tokens
        reservation: Reservation | None = None

        async def reserve() -> None:
            nonlocal reservation
            assert meter is not None
            # Estimating builds the prompts: as for ranking, large requests do it off the event loop.
            reservation = await meter.reserve_tokens(await off_loop(task.texts, lambda: strategy.estimate_tokens(task)))

        async def compute(shared: Deadline) -> tuple[RankingResult, bool]:
            # The first computation to run claims this request's reservation; its calls settle it.
            claimed = reservation.claim() if reservation is not None else None
            usage = TokenUsage(task.encoding) if metered else None
            # Calls stop a little early, leaving time to answer within the deadline, which
            # requests joining this computation may push later.
            chat = RequestChat(chain, policy, self.retry_budget, lambda: shared.at - ANSWER_MARGIN_SECONDS,
                               self._observe_attempt if self.metrics else None, usage)
            try:
                with self._holding_store():
                    ranking = await strategy.rank(chat, task)
            finally:
                if usage is not None and meter is not None:
                    meter.settle(claimed, usage.tokens)
            self._raise_if_mostly_failed(ranking)
            self._raise_if_cut(ranking, budget)
            fallbacks = sorted(set(chat.answered_by) - {model.alias})
            result = RankingResult(ranking, strategy.prompt_version, chat.attempts, chat.retries, fallbacks,
                                   chat.hedges)
            # A ranking with failed calls, unusable answers, cut calls or a stand-in model's answers is
            # never cached.
            stats = ranking.stats
            return result, not (stats.failed_calls or stats.parse_failures or result.partial or fallbacks)

        async def lookup(cache_policy: CachePolicy) -> tuple[RankingResult, bool]:
            return await self.cache.get_or_compute(key, compute, deadline=deadline, policy=cache_policy,
                                                   on_miss=reserve if metered else None)

        try:
            with self._holding_store():
                async with asyncio.timeout(deadline - time.monotonic()):
                    result, hit = await lookup(query.cache)
                    if len(result.ranking.order) != len(texts):
                        # A shared value that decodes but is not this request's: recompute and overwrite it.
                        result, hit = await lookup(CachePolicy(read=False, write=query.cache.write))
        except TimeoutError:
            raise DeadlineExceeded(f"the request did not finish within its {budget:g}s deadline") from None
        finally:
            if meter is not None:
                meter.release(reservation)
        return self._answer(query, model, mode, name, result, hit, instead_of)

    def _holding_store(self) -> contextlib.AbstractContextManager[None]:
        return self.store.hold() if self.store is not None else contextlib.nullcontext()

    def _check_repeated_text(self, query: RerankQuery, alias: str) -> None:
        """The query and instruction go into every LLM call: their tokens are bounded before any call."""
        limits = self.settings.limits
        for name, text, limit in (("query", query.query, limits.max_query_tokens),
                                  ("instruction", query.instruction, limits.max_instruction_tokens)):
            if not text or len(text.encode("utf-8")) <= limit:
                continue  # every token is at least one byte: it fits without counting (every request runs this)
            tokens = count_text(self.encodings[alias], text)
            if tokens > limit:
                raise InvalidRequest(f"{name} is {tokens} tokens for model {alias!r}; the limit is {limit} "
                                     "(it is repeated in every LLM call)", code=f"{name}_too_long", param=name)

    def _key_config(self, model: ModelRuntime, name: str, strategy: Strategy, task: RankTask) -> bytes:
        """The settings part of the cache key, hashed once per model and strategy (a config is frozen).

        Keyed by the strategy that ranks, not the mode asked for: "listwise" and the strategy it
        resolves to share their rankings."""
        digest = self._key_configs.get((model.alias, name))
        if digest is None:
            digest = self._key_configs[(model.alias, name)] = config_digest(
                llm=model.settings.litellm_model,
                api_base=model.settings.resolved_api_base(),
                logprobs=model.settings.logprobs,
                context_window=model.settings.context_window,
                # What the prompts are built for: the weakest model of the fallback chain.
                task_context_window=task.context_window,
                task_logprobs=task.logprobs,
                encoding=task.encoding.name,
                mode=name,
                strategy=strategy.cache_params(),
            )
        return digest

    def _observe_attempt(self, alias: str, seconds: float, failure: str | None) -> None:
        assert self.metrics is not None
        self.metrics.labelled(self.metrics.llm_latency, alias).observe(seconds)
        if failure:
            self.metrics.labelled(self.metrics.llm_failures, alias, failure).inc()

    def _observe(self, answer: RerankAnswer) -> None:
        assert self.metrics is not None
        meta, m = answer.meta, self.metrics
        m.labelled(m.cache, "hit" if meta.cached else "miss").inc()
        if meta.cached:
            return
        m.labelled(m.tokens, meta.model_alias, "input").inc(answer.prompt_tokens)
        m.labelled(m.tokens, meta.model_alias, "output").inc(answer.completion_tokens)
        m.labelled(m.cost, meta.model_alias).inc(meta.cost_usd)
        m.labelled(m.parse_failures, meta.strategy).inc(meta.parse_failures)
        if meta.hedges:
            m.labelled(m.hedges, meta.model_alias).inc(meta.hedges)
        if meta.partial:
            m.labelled(m.partial, meta.strategy).inc()

    def _raise_if_mostly_failed(self, ranking: Ranking) -> None:
        stats = ranking.stats
        if not stats.failed_calls:
            return
        if stats.failed_calls / stats.calls > self.settings.limits.max_failed_call_ratio:
            error = stats.errors[-1]
            raise type(error)(
                f"{stats.failed_calls} of {stats.calls} LLM calls failed; last error: {error.log_message}",
                status=error.status, retry_after=error.retry_after, retryable=error.retryable, code=error.code,
                quoted=error.quoted,
            ) from error

    def _raise_if_cut(self, ranking: Ranking, budget: float) -> None:
        """A ranking the deadline cut: answered as it is (partial), unless nothing finished or config says no."""
        stats = ranking.stats
        if not stats.cut_calls:
            return
        nothing = ranking.unranked >= len(ranking.order)
        if nothing or self.settings.reliability.on_deadline == "error":
            done = "no LLM call finished" if nothing else f"the deadline cut {stats.cut_calls} LLM call(s)"
            raise DeadlineExceeded(f"the request did not finish within its {budget:g}s deadline ({done})")

    def _answer(
        self, query: RerankQuery, model: ModelRuntime, mode: str, name: str, result: RankingResult, hit: bool,
        instead_of: tuple[str, str] | None = None,
    ) -> RerankAnswer:
        ranking, stats = result.ranking, result.ranking.stats
        ranked, total = len(ranking.order), len(query.texts)
        # Documents past the model's budget follow the ranked ones, in the caller's order, scored 0.
        order = [*ranking.order, *range(ranked, total)]
        scores = [*ranking.scores, *[0.0] * (total - ranked)]
        # Fusion is applied after the cache: it does not change what the LLM said.
        weight = query.fusion_weight if query.fusion_weight is not None else model.settings.fusion_weight
        order, scores = fuse(order, scores, weight)
        tau = cached_kendall_tau(tuple(order))  # a cache hit's order was counted before
        skipped = {"llm_calls": stats.cut_calls, "documents": ranking.unranked} if result.partial else None
        warnings = answer_warnings(model, ranked, total, tau, instead_of, skipped)
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
                fallbacks=([] if hit else result.fallbacks) + ([model.alias] if instead_of else []),
                failed_calls=0 if hit else stats.failed_calls,
                parse_failures=stats.parse_failures,
                model_alias=model.alias,
                llm_model=model.settings.litellm_model,
                prompt_version=result.prompt_version,
                cost_usd=round(cost, 8),
                fusion_weight=weight,
                ranked_documents=ranked,
                input_order_tau=round(tau, 4),
                strategy=name,
                # Blended with the caller's order, a score depends on position: no longer a graded judgement.
                score_type=ranking.score_type if weight >= 1 else "rank",
                partial=result.partial,
                skipped=skipped,
                hedges=0 if hit else result.hedges,
                first_fallbacks=0 if hit else stats.first_fallbacks,
                warnings=warnings,
            ),
        )


def answer_warnings(model: ModelRuntime, ranked: int, total: int, tau: float,
                    instead_of: tuple[str, str] | None, skipped: dict[str, int] | None = None) -> list[str]:
    """What a caller should know about how good this answer is, in plain sentences."""
    warnings = []
    if skipped is not None:
        unseen = f"; {skipped['documents']} document(s) no finished call saw follow in your order" \
            if skipped["documents"] else ""
        warnings.append(f"partial answer: the request's deadline cut {skipped['llm_calls']} LLM call(s){unseen}")
    if instead_of is not None:
        warnings.append(f"model {instead_of[0]!r} could not answer ({instead_of[1]}); "
                        f"{model.alias!r} answered the whole request instead")
    if ranked < total:
        warnings.append(f"{model.alias!r} ranked only the first {ranked} of {total} documents "
                        f"(max_ranked_documents); the other {total - ranked} follow in your order")
    if model.settings.embedded:
        warnings.append(
            f"answered by the embedded demo model {model.settings.litellm_model}: it ranks about as well as "
            f"BM25 on TREC DL, no better, so treat the order as a demo; against your order it has Kendall tau "
            f"{tau:.2f} (1 = your order kept); set OPENAI_API_KEY or configure a hosted model for real rankings")
    return warnings
