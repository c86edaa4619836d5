"""Admin endpoints: reload the config, read what is running. Always behind an admin key."""

from __future__ import annotations

import os

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from gateway.errors import error_body
from gateway.http.access import authenticate_admin
from gateway.ops.state import Gateway
from gateway.service import RerankService


async def reload(request: Request) -> Response:
    gateway: Gateway[RerankService] = request.app.state.gateway
    authenticate_admin(request, gateway.holder.current.settings.auth)
    outcome = await gateway.holder.reload("admin")
    if outcome.ok:
        if outcome.changed and gateway.reload_siblings is not None:
            gateway.reload_siblings()  # the other workers of `serve --workers N` read the same file
        return JSONResponse(outcome.to_body())
    message = f"config rejected; still serving version {outcome.version}: {'; '.join(outcome.errors)}"
    body = {**error_body(message, "invalid_request_error", "invalid_config"), **outcome.to_body()}
    return JSONResponse(body, status_code=400)


async def config(request: Request) -> Response:
    gateway: Gateway[RerankService] = request.app.state.gateway
    generation = gateway.holder.current
    authenticate_admin(request, generation.settings.auth)
    service = generation.service
    return JSONResponse({
        "version": generation.version,
        "hash": generation.digest,
        "loaded_at": generation.loaded_at,
        "path": str(gateway.holder.path) if gateway.holder.path else None,
        "pid": os.getpid(),  # which worker answered, under `serve --workers N`
        "cache": service.cache_status(),
        "default_model": service.default_alias,
        "models": {alias: {"llm_model": rt.settings.litellm_model, "mode": rt.settings.mode,
                           "available": rt.chat.unavailable_reason() is None}
                   for alias, rt in service.models.items()},
    })
