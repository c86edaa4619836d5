"""Prometheus metrics: one registry per app, no label ever carries a key, query or document.

Label values are bounded: routes are the app's own paths, models are
configured aliases (or "unknown"), statuses are HTTP codes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("rerank_gateway_requests", "HTTP requests answered",
                                ["route", "status", "model"], registry=r)
        self.request_latency = Histogram("rerank_gateway_request_duration_seconds", "HTTP request latency",
                                         ["route"], buckets=_LATENCY_BUCKETS, registry=r)
        self.llm_latency = Histogram("rerank_gateway_llm_call_duration_seconds", "Latency of one upstream attempt",
                                     ["model"], buckets=_LATENCY_BUCKETS, registry=r)
        self.llm_failures = Counter("rerank_gateway_llm_call_failures", "Failed upstream attempts",
                                    ["model", "kind"], registry=r)
        self.tokens = Counter("rerank_gateway_tokens", "LLM tokens", ["model", "direction"], registry=r)
        self.cost = Counter("rerank_gateway_cost_usd", "LLM cost at configured prices", ["model"], registry=r)
        self.cache = Counter("rerank_gateway_cache_lookups", "Result cache lookups", ["result"], registry=r)
        self.parse_failures = Counter("rerank_gateway_parse_failures", "LLM answers with nothing usable",
                                      ["mode"], registry=r)
        self.in_flight = Gauge("rerank_gateway_requests_in_flight", "Rerank requests being answered",
                               registry=r)
        self.shed = Counter("rerank_gateway_requests_shed", "Requests refused by the concurrency limit",
                            registry=r)
        self.rate_limited = Counter("rerank_gateway_requests_rate_limited", "Requests refused by a key's limit",
                                    ["key", "limit"], registry=r)
        self.reloads = Counter("rerank_gateway_config_reloads", "Config reload attempts", ["result", "trigger"],
                               registry=r)
        self.reload_ok = Gauge("rerank_gateway_config_last_reload_successful",
                               "1 if the last reload succeeded, else 0", registry=r)
        self.reload_time = Gauge("rerank_gateway_config_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful (re)load", registry=r)
        self.config_info = Gauge("rerank_gateway_config_info", "The active config (value 1)",
                                 ["version", "hash"], registry=r)
        self.reload_ok.set(1)
        # The embedded model's worker queue (0 when no embedded model is in use); see watch_local_model.
        self.local_queued = Gauge("rerank_gateway_local_model_queued", "Embedded-model calls waiting", registry=r)
        self.local_running = Gauge("rerank_gateway_local_model_running", "Embedded-model calls running (0/1)",
                                   registry=r)
        self.local_cancelled = Gauge("rerank_gateway_local_model_cancelled",
                                     "Embedded-model calls dropped or stopped because their caller left "
                                     "(since start)", registry=r)

    def watch_local_model(self, status: Callable[[], Mapping[str, int] | None]) -> None:
        """Read the embedded model's queue from `status()` at every scrape."""
        def read(name: str) -> Callable[[], float]:
            return lambda: float((status() or {}).get(name, 0))

        self.local_queued.set_function(read("queued"))
        self.local_running.set_function(read("running"))
        self.local_cancelled.set_function(read("cancelled"))

    def set_config(self, version: int, digest: str, loaded_at: float) -> None:
        self.config_info.clear()
        self.config_info.labels(str(version), digest).set(1)
        self.reload_time.set(loaded_at)

    def render(self) -> bytes:
        return generate_latest(self.registry)
