"""Assemble the ASGI application from settings."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.routing import Route

from gateway import routes
from gateway.config import Settings
from gateway.errors import GatewayError
from gateway.service import RerankService


def create_app(settings: Settings | None = None, service: RerankService | None = None) -> Starlette:
    """The gateway app; `service` may be given to swap in fake chat clients."""
    service = service or RerankService.from_settings(settings or Settings())

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        warm_up()
        yield

    app = Starlette(
        routes=[
            *(Route(path, routes.rerank_endpoint("union"), methods=["POST"]) for path in routes.RERANK_PATHS),
            Route("/infinity/rerank", routes.rerank_endpoint("infinity"), methods=["POST"]),
            Route("/tei/rerank", routes.rerank_endpoint("tei"), methods=["POST"]),
            Route("/health", routes.health, methods=["GET"]),
            Route("/openapi.json", routes.openapi, methods=["GET"]),
            Route("/v1/models", routes.list_models, methods=["GET"]),
        ],
        exception_handlers={
            GatewayError: routes.gateway_error,
            HTTPException: routes.http_error,
            Exception: routes.internal_error,
        },
        lifespan=lifespan,
    )
    app.state.service = service
    return app


def warm_up() -> None:
    """Import what LiteLLM loads lazily on its first call (~0.5 s), before traffic arrives."""
    import litellm.proxy._types  # noqa: F401
    import openai.resources  # noqa: F401
