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


def build_openapi(rerank_paths: list[str]) -> dict[str, Any]:
    error_response = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    rerank = {
        "post": {
            "summary": "Rerank documents by relevance to a query",
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/RerankRequest"}}}},
            "responses": {
                "200": {"description": "documents by relevance, best first", "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/RerankResponse"}}}},
                **{status: {"description": text, **error_response} for status, text in _STATUSES.items()},
            },
        }
    }
    simple = {"get": {"responses": {"200": {"description": "ok",
                                            "content": {"application/json": {"schema": {"type": "object"}}}}}}}
    response_schema = RerankResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components = {"RerankRequest": request_schema(), "Error": _ERROR,
                  **response_schema.pop("$defs", {}), "RerankResponse": response_schema}
    return {
        "openapi": "3.1.0",
        "info": {"title": "rerank-gateway", "version": __version__},
        "paths": {**dict.fromkeys(rerank_paths, rerank), "/health": simple, "/v1/models": simple},
        "components": {"schemas": components},
    }
