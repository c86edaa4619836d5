"""The endpoints: rerank in every dialect, probes, models, metrics, the OpenAPI document."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Coroutine
from dataclasses import replace
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from gateway.errors import InvalidRequest
from gateway.http import dialects
from gateway.http.access import authenticate
from gateway.http.body import read_body
from gateway.http.caching import cache_policy
from gateway.http.jsonio import JSONResponse, decode_body
from gateway.http.openapi import build_openapi
from gateway.http.protocol import parse_rerank_request
from gateway.ops.state import Gateway
from gateway.service import RerankService

logger = logging.getLogger("gateway")
T = TypeVar("T")

# Every path real rerank clients call, including the two that common
# misconfigurations produce (LiteLLM's cohere/ with api_base=.../v1 posts to
# /v1/v2/rerank; the cohere SDK with base_url=.../v1 posts to /v1/v1/rerank).
RERANK_PATHS = ["/v1/rerank", "/v2/rerank", "/rerank", "/v1/v2/rerank", "/v1/v1/rerank"]


def rerank_endpoint(route_dialect: dialects.Dialect):  # noqa: ANN201
    async def rerank(request: Request) -> Response:
        gateway: Gateway[RerankService] = request.app.state.gateway
        # One generation for the whole request: a reload mid-way does not touch it.
        generation = gateway.holder.current
        service, settings = generation.service, generation.settings
        log = request.scope["state"]["log"]
        log["config_version"] = generation.version
        limits = await authenticate(request, settings.auth, gateway.limiter, service.shared_limits,
                                    settings.cache.local_limit_share)
        # The body first: a client slow to send holds its connection, never an in-flight slot.
        raw = await read_body(request, settings.server.max_body_bytes, settings.server.body_read_timeout_seconds)
        gateway.gate.enter(settings.server.max_concurrent_requests)
        try:
            body = decode_body(raw)
            dialect = dialects.detect(route_dialect, body, request.headers)
            rerank_request = parse_rerank_request(body, settings.limits)
            log["documents"] = len(rerank_request.documents)
            query = replace(rerank_request.to_query(header_timeout(request)),
                            cache=cache_policy(request.headers.get("cache-control")),
                            tenant=limits.name if limits else None)
            work = service.rerank(query, arrived=request.scope["state"].get("arrived"), meter=limits)
            answer = await cancel_on_disconnect(request, work)
        finally:
            gateway.gate.leave()
        if answer is None:
            return Response(status_code=499)  # nobody is listening; nginx's code for it
        meta = answer.meta
        log.update(model=meta.model_alias, mode=meta.strategy, cache="hit" if answer.hit else "miss",
                   llm_calls=meta.llm_calls, prompt_tokens=answer.prompt_tokens,
                   completion_tokens=answer.completion_tokens, cost_usd=meta.cost_usd)
        headers = {"x-cache": "HIT" if answer.hit else "MISS"}
        if meta.fallbacks:
            headers["x-rerank-fallback"] = ",".join(meta.fallbacks)
        if meta.partial:
            headers["x-rerank-partial"] = "true"
        if limits is not None:
            headers.update(limits.headers())
        return_documents = rerank_request.return_documents
        if return_documents is None:
            return_documents = dialects.RETURN_DOCUMENTS_DEFAULT[dialect]
        documents = rerank_request.documents if return_documents else None
        return JSONResponse(dialects.render(dialect, answer, documents), headers=headers)

    return rerank


def header_timeout(request: Request) -> float | None:
    """A client's deadline from `x-request-timeout` (seconds)."""
    value = request.headers.get("x-request-timeout")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (seconds > 0 and math.isfinite(seconds)):
        raise InvalidRequest("x-request-timeout must be a positive number of seconds", code="invalid_timeout")
    return seconds


async def cancel_on_disconnect(request: Request, work: Coroutine[Any, Any, T]) -> T | None:
    """Run `work`, cancelling it (and its LLM calls) if the client disconnects first.

    The watcher starts after `work`'s first step: a cache hit is answered within it, and needs none.
    """
    task = asyncio.ensure_future(work)
    watcher: asyncio.Task[None] | None = None

    async def watch() -> None:
        # The body has been read, so the next message is the disconnect.
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    def start_watching() -> None:
        nonlocal watcher
        if not task.done():
            watcher = asyncio.create_task(watch())

    # Scheduled after the task's first step, which ensure_future scheduled first.
    start = asyncio.get_running_loop().call_soon(start_watching)
    try:
        return await task
    except asyncio.CancelledError:
        if watcher is not None and watcher.done() and not watcher.cancelled():
            return None
        raise
    finally:
        start.cancel()
        if watcher is not None:
            watcher.cancel()


async def openapi(request: Request) -> Response:
    served = {getattr(route, "path", "") for route in request.app.routes}
    return JSONResponse(build_openapi(RERANK_PATHS, served))


async def health(request: Request) -> Response:
    """Liveness: the process answers."""
    return JSONResponse({"status": "ok"})


async def ready(request: Request) -> Response:
    """Readiness: a config is loaded and the process is not draining for shutdown."""
    gateway: Gateway[RerankService] = request.app.state.gateway
    if gateway.holder.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    generation = gateway.holder.current
    # Redis trouble degrades the cache, not the gateway: still ready, and the body says so.
    body: dict[str, Any] = {"status": "ready", "config_version": generation.version,
                            "cache": generation.service.cache_status()}
    local = generation.service.local_model_status()
    if local is not None:  # the embedded model's worker: calls waiting, running, finished, cancelled
        body["local_model"] = local
    return JSONResponse(body)


async def metrics(request: Request) -> Response:
    gateway: Gateway[RerankService] = request.app.state.gateway
    return Response(gateway.metrics.render(), media_type=gateway.metrics.content_type)


async def list_models(request: Request) -> Response:
    gateway: Gateway[RerankService] = request.app.state.gateway
    generation = gateway.holder.current
    await authenticate(request, generation.settings.auth, gateway.limiter, generation.service.shared_limits,
                       generation.settings.cache.local_limit_share)
    service = generation.service
    data = [
        {
            "id": alias,
            "object": "model",
            "owned_by": "rerank-gateway",
            "llm_model": runtime.settings.litellm_model,
            "mode": runtime.settings.mode,
            "default": alias == service.default_alias,
            "available": runtime.chat.unavailable_reason() is None,
        }
        for alias, runtime in service.models.items()
    ]
    return JSONResponse({"object": "list", "data": data})
