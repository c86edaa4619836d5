"""Prometheus metrics: one registry per app, no label ever carries a key, query or document.

Label values are bounded: routes are the app's own paths, models are
configured aliases (or "unknown"), statuses are HTTP codes.

Under `serve --workers N` every worker writes its metrics to files in
PROMETHEUS_MULTIPROC_DIR (prometheus-client's multiprocess mode, set up by the
supervisor), and any worker's /metrics reads them all: counters and
histograms add up, gauges say how (`multiprocess_mode`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.multiprocess import MultiProcessCollector

_LATENCY_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_REDIS_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
M = TypeVar("M", Counter, Histogram)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


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
        self.partial = Counter("rerank_gateway_partial_answers", "Answers cut by their deadline (meta.partial)",
                               ["mode"], registry=r)
        self.hedges = Counter("rerank_gateway_llm_hedges", "Duplicate attempts sent for slow LLM calls",
                              ["model"], registry=r)
        self.in_flight = Gauge("rerank_gateway_requests_in_flight", "Rerank requests being answered",
                               registry=r, multiprocess_mode="livesum")
        self.shed = Counter("rerank_gateway_requests_shed", "Requests refused by the concurrency limit",
                            registry=r)
        self.rate_limited = Counter("rerank_gateway_requests_rate_limited", "Requests refused by a key's limit",
                                    ["key", "limit"], registry=r)
        self.reloads = Counter("rerank_gateway_config_reloads", "Config reload attempts", ["result", "trigger"],
                               registry=r)
        self.reload_ok = Gauge("rerank_gateway_config_last_reload_successful",
                               "1 if the last reload succeeded, else 0 (the lowest of all workers)", registry=r,
                               multiprocess_mode="livemin")
        self.reload_time = Gauge("rerank_gateway_config_last_reload_success_timestamp_seconds",
                                 "Unix time of the last successful (re)load (the oldest of all workers)", registry=r,
                                 multiprocess_mode="livemin")
        self.config_info = Gauge("rerank_gateway_config_info", "The active config (value 1)",
                                 ["version", "hash"], registry=r, multiprocess_mode="liveall")
        self.redis_errors = Counter("rerank_gateway_redis_errors", "Redis commands that failed, or values that "
                                    "did not decode", ["op", "kind"], registry=r)
        self.redis_latency = Histogram("rerank_gateway_redis_command_duration_seconds", "Latency of one Redis "
                                       "command", ["op"], buckets=_REDIS_BUCKETS, registry=r)
        self.redis_breaker = Gauge("rerank_gateway_redis_breaker_state", "Redis circuit: 0 closed, 1 half-open, "
                                   "2 open (the worst of all workers)", registry=r, multiprocess_mode="livemax")
        self.reload_ok.set(1)
        self._config_labels: tuple[str, str] | None = None
        self._children: dict[tuple[int, tuple[str, ...]], object] = {}
        # The embedded model's worker queue (0 when no embedded model is in use); see watch_local_model.
        # Read at scrape time from this process, so with --workers N each worker reports only its own.
        self.local_queued = Gauge("rerank_gateway_local_model_queued", "Embedded-model calls waiting", registry=r)
        self.local_running = Gauge("rerank_gateway_local_model_running", "Embedded-model calls running (0/1)",
                                   registry=r)
        self.local_cancelled = Gauge("rerank_gateway_local_model_cancelled",
                                     "Embedded-model calls dropped or stopped because their caller left "
                                     "(since start)", registry=r)

    def labelled(self, metric: M, *values: str) -> M:
        """`metric.labels(*values)`, kept: prometheus_client takes a lock and checks the values on each call,
        and every LLM attempt and answer asks for one of the same few children (label values are bounded).
        Not for a metric whose children are removed (config_info)."""
        key = (id(metric), values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child  # type: ignore[return-value]

    def watch_local_model(self, status: Callable[[], Mapping[str, int] | None]) -> None:
        """Read the embedded model's queue from `status()` at every scrape."""
        def read(name: str) -> Callable[[], float]:
            return lambda: float((status() or {}).get(name, 0))

        self.local_queued.set_function(read("queued"))
        self.local_running.set_function(read("running"))
        self.local_cancelled.set_function(read("cancelled"))

    def set_config(self, version: int, digest: str, loaded_at: float) -> None:
        if self._config_labels is not None:
            if multiprocess_dir():  # a worker's file keeps the last value written: zero it
                self.config_info.labels(*self._config_labels).set(0)
            else:
                self.config_info.remove(*self._config_labels)
        self._config_labels = (str(version), digest)
        self.config_info.labels(*self._config_labels).set(1)
        self.reload_time.set(loaded_at)

    def observe_redis(self, op: str, seconds: float, failure: str | None) -> None:
        if failure:
            self.redis_errors.labels(op, failure).inc()
        elif op != "decode":
            self.redis_latency.labels(op).observe(seconds)

    def set_redis_breaker(self, state: str) -> None:
        self.redis_breaker.set(BREAKER_STATES.get(state, 2))

    def render(self) -> bytes:
        directory = multiprocess_dir()
        if directory is None:
            return generate_latest(self.registry)
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=directory)
        return generate_latest(merged)
