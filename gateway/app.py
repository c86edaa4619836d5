"""Assemble the ASGI applications from a config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from gateway import admin, routes
from gateway.access import Gate
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.metrics import Metrics
from gateway.middleware import RequestContextMiddleware
from gateway.ratelimit import RateLimiter
from gateway.reload import ConfigHolder, read_config, watch
from gateway.service import RerankService

logger = logging.getLogger("gateway")


@dataclass
class Gateway:
    """What outlives any one config: the holder of the current one, metrics, rate buckets, the gate."""

    holder: ConfigHolder
    metrics: Metrics
    limiter: RateLimiter = field(default_factory=RateLimiter)
    gate: Gate = field(init=False)

    def __post_init__(self) -> None:
        self.gate = Gate(self.metrics)


def build_gateway(path: Path | None = None, settings: Settings | None = None) -> Gateway:
    """Load `path` (or `settings`, or the embedded defaults) into a gateway; a bad file raises ConfigError."""
    metrics = Metrics()
    settings, digest = read_config(path) if settings is None else (settings, "embedded")

    def build(new: Settings, previous: RerankService | None) -> RerankService:
        return RerankService.from_settings(new, previous, metrics)

    return Gateway(ConfigHolder(path, settings, digest, build, metrics), metrics)


def create_app(
    gateway: Gateway | Settings | None = None, *, public: bool = True, admin_routes: bool = True
) -> Starlette:
    """The gateway app. `public` serves the API; `admin_routes` the admin endpoints and /metrics
    (split across two apps when server.admin_port is set)."""
    if not isinstance(gateway, Gateway):
        gateway = build_gateway(settings=gateway)
    table: list[Route] = [Route("/health", routes.health, methods=["GET"]),
                          Route("/ready", routes.ready, methods=["GET"])]
    if public:
        table += [
            *(Route(path, routes.rerank_endpoint("union"), methods=["POST"]) for path in routes.RERANK_PATHS),
            Route("/infinity/rerank", routes.rerank_endpoint("infinity"), methods=["POST"]),
            Route("/tei/rerank", routes.rerank_endpoint("tei"), methods=["POST"]),
            Route("/openapi.json", routes.openapi, methods=["GET"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
        ]
    if admin_routes:
        table += [
            Route("/admin/reload", admin.reload, methods=["POST"]),
            Route("/admin/config", admin.config, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
        ]
    holder = gateway.holder

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm_up()
        watcher = None
        if public and holder.path is not None and holder.current.settings.server.watch_config:
            watcher = asyncio.create_task(watch(holder))
        yield
        if watcher is not None:
            watcher.cancel()

    app = Starlette(
        routes=table,
        exception_handlers={
            GatewayError: routes.gateway_error,
            HTTPException: routes.http_error,
            Exception: routes.internal_error,
        },
        lifespan=lifespan,
    )
    app.add_middleware(
        RequestContextMiddleware, metrics=gateway.metrics, known_paths={route.path for route in table},
        config_version=lambda: holder.current.version,
        log_requests=lambda: holder.current.settings.server.log_requests,
    )
    app.state.gateway = gateway
    return app


def warm_up() -> None:
    """Import what LiteLLM loads lazily on its first call (~0.5 s), before traffic arrives."""
    import litellm.proxy._types  # noqa: F401
    import openai.resources  # noqa: F401
