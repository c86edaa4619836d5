"""Response bodies for the rerank dialects that cannot share the union object.

    union     Cohere v1/v2, Jina, Voyage, vLLM, LiteLLM proxy, assisters: one object
    tei       text-embeddings-inference: a bare array of {index, score, text?}
    infinity  Infinity: results[].document is a string, not an object

A body with `texts` and no `documents` is TEI's; Infinity's body is the same as
vLLM's, so only its path (`/infinity/rerank`) selects it.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from gateway.http.protocol import union_body
from gateway.service import RerankAnswer

Dialect = Literal["union", "tei", "infinity"]

# Whether documents come back when the request does not say.
RETURN_DOCUMENTS_DEFAULT: dict[Dialect, bool] = {"union": True, "tei": False, "infinity": False}


def detect(route_dialect: Dialect, body: Any) -> Dialect:
    if route_dialect == "union" and isinstance(body, dict) and "texts" in body and "documents" not in body:
        return "tei"
    return route_dialect


def render(dialect: Dialect, answer: RerankAnswer, documents: list[dict[str, Any]] | None) -> Any:
    """The response body; `documents` are the request's, or None when they are not returned."""
    if dialect == "tei":
        return [_tei_item(i, s, documents[i] if documents else None) for i, s in answer.results]
    body = union_body(answer, documents)
    if dialect == "infinity":
        body["id"] = body["id"].replace("rerank-", "infinity-", 1)
        body["created"] = int(time.time())
        body["results"] = [{**item, "document": item["document"]["text"]} if "document" in item else item
                           for item in body["results"]]
        body["data"] = body["results"]
    return body


def _tei_item(index: int, score: float, document: dict[str, Any] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "score": score}
    if document is not None:
        item["text"] = document["text"]
    return item
