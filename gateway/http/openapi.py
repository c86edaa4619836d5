"""The OpenAPI description served at `/openapi.json`, built from the wire models."""

from __future__ import annotations

from typing import Any

from gateway import __version__
from gateway.http.protocol import RerankRequest, RerankResponse

_DOCUMENT = {
    "anyOf": [
        {"type": "string"},
        {"type": "object", "properties": {"text": {"type": "string"}}, "required": ["text"],
         "additionalProperties": True},
    ]
}
_ERROR = {
    "type": "object",
    "required": ["error", "message", "detail"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "code", "param"],
            "properties": {"message": {"type": "string"}, "type": {"type": "string"},
                           "code": {"type": "string"}, "param": {"type": ["string", "null"]}},
        },
        "message": {"type": "string"},
        "detail": {"type": "string"},
    },
}
_STATUSES = {
    "400": "invalid request", "404": "unknown model", "408": "body not received in time", "413": "body too large",
    "499": "client went away",
    "502": "upstream failure", "503": "upstream or model unavailable", "504": "deadline or upstream timeout",
}


def request_schema() -> dict[str, Any]:
    schema = RerankRequest.model_json_schema()
    properties = schema["properties"]
    properties["documents"] = {"type": "array", "items": _DOCUMENT, "minItems": 1,
                               "description": properties["documents"].get("description", "")}
    # Aliases real clients send (Voyage, TEI).
    properties["top_k"] = {"anyOf": [{"type": "integer", "minimum": 1}, {"type": "null"}]}
    properties["texts"] = {"type": "array", "items": {"type": "string"}}
    properties["return_text"] = {"anyOf": [{"type": "boolean"}, {"type": "null"}]}
    return schema


# What "Try it out" starts from in the /docs page: a request that works as it is.
EXAMPLE_REQUEST = {
    "query": "how long is the life cycle of a flea",
    "documents": [
        "Fleas are wingless insects.",
        "The flea life cycle can last from two weeks to eight months.",
        {"text": "A flea can live up to a year.", "id": "doc-3"},
    ],
    "top_n": 2,
}
_DIALECTS = {
    "/infinity/rerank": ("Infinity's dialect: results[].document is a string", "rerank_infinity"),
    "/tei/rerank": ("text-embeddings-inference's dialect: `texts` in, a bare array of {index, score, text?} out",
                    "rerank_tei"),
}
_JSON_OK = {"200": {"description": "ok", "content": {"application/json": {"schema": {"type": "object"}}}}}
_ADMIN = [{"adminKey": []}]
# Everything else the gateway serves: (path, method, tag, summary, responses, security)
_OTHER: list[tuple[str, str, str, str, dict[str, Any], list[dict[str, list[str]]] | None]] = [
    ("/v1/models", "get", "models", "The model aliases, the default one, and whether each can be called",
     _JSON_OK, None),
    ("/health", "get", "probes", "Liveness: the process answers", _JSON_OK, None),
    ("/ready", "get", "probes", "Readiness: 503 while draining; the embedded model's queue when one is in use",
     {**_JSON_OK, "503": {"description": "draining for shutdown"}}, None),
    ("/metrics", "get", "operations", "Prometheus metrics",
     {"200": {"description": "text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
     None),
    ("/admin/reload", "post", "operations", "Reload config.toml (validated first; a bad file is rejected)",
     {**_JSON_OK, "400": {"description": "config rejected; the old one keeps serving"},
      "401": {"description": "no or wrong admin key"}, "403": {"description": "no admin keys configured"}},
     _ADMIN),
    ("/admin/config", "get", "operations", "The running config's version, hash, path and models",
     {**_JSON_OK, "401": {"description": "no or wrong admin key"}}, _ADMIN),
    ("/openapi.json", "get", "docs", "This document", _JSON_OK, None),
    ("/docs", "get", "docs", "Interactive API docs (Swagger UI, served from the installed package)",
     {"200": {"description": "HTML page", "content": {"text/html": {"schema": {"type": "string"}}}}}, None),
]


def _operation_id(path: str) -> str:
    return "rerank" + path.removesuffix("/rerank").replace("/", "_") if path != "/rerank" else "rerank"


def build_openapi(rerank_paths: list[str], served: set[str] | None = None) -> dict[str, Any]:
    """The document for every path in `served` (all the gateway has when None)."""
    error_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def rerank(path: str, summary: str, operation_id: str) -> dict[str, Any]:
        return {"post": {
            "tags": ["rerank"],
            "summary": summary,
            "operationId": operation_id,
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RerankRequest"}, "example": EXAMPLE_REQUEST}}},
            "responses": {
                "200": {"description": "documents by relevance, best first", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RerankResponse"}}}},
                **{status: {"description": text, **error_response} for status, text in _STATUSES.items()},
            },
        }}

    paths: dict[str, Any] = {}
    for path in rerank_paths:
        paths[path] = rerank(path, "Rerank documents by relevance to a query", _operation_id(path))
    for path, (summary, operation_id) in _DIALECTS.items():
        paths[path] = rerank(path, summary, operation_id)
    for path, method, tag, summary, responses, security in _OTHER:
        operation: dict[str, Any] = {"tags": [tag], "summary": summary, "operationId": path.strip("/").replace(
            "/", "_").replace(".", "_"), "responses": responses}
        if security is not None:
            operation["security"] = security
        paths[path] = {method: operation}
    if served is not None:
        paths = {path: item for path, item in paths.items() if path in served}
    response_schema = RerankResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components = {"RerankRequest": request_schema(), "Error": _ERROR,
                  **response_schema.pop("$defs", {}), "RerankResponse": response_schema}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rerank-gateway", "version": __version__,
                 "description": "The rerank API of Cohere, Jina, Voyage, TEI and Infinity, answered by any chat "
                                "model through LiteLLM. Auth (when enabled) is `Authorization: Bearer <key>`."},
        "paths": paths,
        "components": {"schemas": components, "securitySchemes": {
            "apiKey": {"type": "http", "scheme": "bearer"}, "adminKey": {"type": "http", "scheme": "bearer"}}},
    }
