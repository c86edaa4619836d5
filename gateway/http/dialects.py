"""Response bodies for the rerank dialects.

    union     Cohere v1/v2, Jina, vLLM, LiteLLM proxy, assisters: one object with `results`
    voyage    the union object plus `data`, the same list, which Voyage's clients read instead
    tei       text-embeddings-inference: a bare array of {index, score, text?}
    infinity  Infinity: results[].document is a string, not an object

A body with `texts` and no `documents` is TEI's; Infinity's body is the same as
vLLM's, so only its path (`/infinity/rerank`) selects it.

`data` goes only to the clients that read it, since it would double the largest
part of the body: the voyageai SDK (and LanceDB's and LangChain's Voyage
rerankers built on it) always sends Voyage's own `top_k` and `truncation`
fields; LiteLLM's `voyage/` provider sends the same body as its other providers,
so LiteLLM's User-Agent gets `data` too; hand-written Voyage clients name a
Voyage model (`rerank-2`, `rerank-2.5-lite`, `rerank-lite-1`); Voyage's
Fern-generated SDKs say so in `x-fern-sdk-name`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import Any, Literal

from gateway.http.jsonio import Fragment, encode
from gateway.http.protocol import union_body
from gateway.service import RerankAnswer

Dialect = Literal["union", "voyage", "tei", "infinity"]

# Whether documents come back when the request does not say. Voyage's API
# returns none by default, and its SDK takes the texts from its own list.
RETURN_DOCUMENTS_DEFAULT: dict[Dialect, bool] = {"union": True, "voyage": False, "tei": False, "infinity": False}

_VOYAGE_FIELDS = ("top_k", "truncation")
_VOYAGE_MODEL = re.compile(r"rerank-(lite-)?\d")  # rerank-2, rerank-2.5-lite, rerank-lite-1; not rerank-v3.5


def detect(route_dialect: Dialect, body: Any, headers: Mapping[str, str]) -> Dialect:
    if route_dialect != "union" or not isinstance(body, dict):
        return route_dialect
    if "texts" in body and "documents" not in body:
        return "tei"
    if _reads_data(body, headers):
        return "voyage"
    return "union"


def _reads_data(body: dict[str, Any], headers: Mapping[str, str]) -> bool:
    if any(field in body for field in _VOYAGE_FIELDS):
        return True
    model = body.get("model")
    if isinstance(model, str) and _VOYAGE_MODEL.match(model):
        return True
    return headers.get("user-agent", "").startswith("litellm/") or \
        "voyage" in headers.get("x-fern-sdk-name", "").lower()


def render(dialect: Dialect, answer: RerankAnswer, documents: list[dict[str, Any]] | None) -> Any:
    """The response body; `documents` are the request's, or None when they are not returned."""
    if dialect == "tei":
        return [_tei_item(i, s, documents[i] if documents else None) for i, s in answer.results]
    body = union_body(answer, documents)
    if dialect == "voyage":
        # Serialized once, sent twice.
        body["results"] = body["data"] = Fragment(encode(body["results"]))
    elif dialect == "infinity":
        body["id"] = body["id"].replace("rerank-", "infinity-", 1)
        body["created"] = int(time.time())
        body["results"] = [{**item, "document": item["document"]["text"]} if "document" in item else item
                           for item in body["results"]]
    return body


def _tei_item(index: int, score: float, document: dict[str, Any] | None) -> dict[str, Any]:
    item: dict[str, Any] = {"index": index, "score": score}
    if document is not None:
        item["text"] = document["text"]
    return item
