"""Assemble the ASGI applications from a config."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Mount, Route

from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.http import admin, docs, exceptions, routes
from gateway.http.middleware import RequestContextMiddleware
from gateway.ops.metrics import Metrics
from gateway.ops.reload import ConfigHolder, read_config, watch
from gateway.ops.state import Gateway
from gateway.service import RerankService
from gateway.upstream import dispatch

logger = logging.getLogger("gateway")


def build_gateway(path: Path | None = None, settings: Settings | None = None) -> Gateway[RerankService]:
    """Load `path` (or `settings`, or the embedded defaults) into a gateway; a bad file raises ConfigError."""
    metrics = Metrics()
    settings, digest = read_config(path) if settings is None else (settings, "embedded")

    def build(new: Settings, previous: RerankService | None) -> RerankService:
        return RerankService.from_settings(new, previous, metrics)

    return Gateway(ConfigHolder(path, settings, digest, build, metrics), metrics)


def create_app(
    gateway: Gateway[RerankService] | Settings | None = None, *, public: bool = True, admin_routes: bool = True
) -> Starlette:
    """The gateway app. `public` serves the API; `admin_routes` the admin endpoints and /metrics
    (split across two apps when server.admin_port is set)."""
    if not isinstance(gateway, Gateway):
        gateway = build_gateway(settings=gateway)
    table: list[Route | Mount] = [Route("/health", routes.health, methods=["GET"]),
                                  Route("/ready", routes.ready, methods=["GET"])]
    if public:
        table += [
            *(Route(path, routes.rerank_endpoint("union"), methods=["POST"]) for path in routes.RERANK_PATHS),
            Route("/infinity/rerank", routes.rerank_endpoint("infinity"), methods=["POST"]),
            Route("/tei/rerank", routes.rerank_endpoint("tei"), methods=["POST"]),
            Route("/openapi.json", routes.openapi, methods=["GET"]),
            Route("/docs", docs.page, methods=["GET"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
        ]
        if (swagger := docs.assets()) is not None:
            table.append(Mount(docs.ASSETS_PATH, app=swagger))
    if admin_routes:
        table += [
            Route("/admin/reload", admin.reload, methods=["POST"]),
            Route("/admin/config", admin.config, methods=["GET"]),
            Route("/metrics", routes.metrics, methods=["GET"]),
        ]
    holder = gateway.holder
    gateway.metrics.watch_local_model(lambda: holder.current.service.local_model_status())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm_up()
        dispatch.install()
        store = holder.current.service.store
        if public and store is not None and not await store.connect():
            logger.warning("Redis at %s does not answer: serving without it until it does", store.status()["url"])
        watcher = None
        if public and holder.path is not None and holder.current.settings.server.watch_config:
            watcher = asyncio.create_task(watch(holder))
        yield
        if watcher is not None:
            watcher.cancel()
        if public:
            await holder.current.service.aclose()  # the Redis pool, if any

    app = Starlette(
        routes=table,
        exception_handlers={
            GatewayError: exceptions.gateway_error,
            HTTPException: exceptions.http_error,
            Exception: exceptions.internal_error,
        },
        lifespan=lifespan,
    )
    # The middleware serves "/v1/rerank/" as "/v1/rerank"; Starlette's redirect would build its
    # Location from the client's Host header.
    app.router.redirect_slashes = False
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
