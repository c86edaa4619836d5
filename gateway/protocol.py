"""Wire models for `POST /v1/rerank`, in the Cohere/Jina shape rerank clients expect."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_core import PydanticCustomError

from gateway.config import Mode
from gateway.errors import InvalidRequest


class RerankRequest(BaseModel):
    """A rerank request. Unknown fields are ignored, as every rerank API does."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    query: str
    documents: list[dict[str, Any]] = Field(description="Strings, or objects with a `text` field.")
    model: str | None = None
    top_n: int | None = Field(None, strict=True)
    return_documents: bool = Field(True, strict=True)
    mode: Mode | None = Field(None, description="Extension: 'listwise' or 'pointwise'.")

    @field_validator("query", mode="before")
    @classmethod
    def _query_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("empty_query", "query must be a non-empty string")
        return value

    @field_validator("documents", mode="before")
    @classmethod
    def _documents_have_text(cls, value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise PydanticCustomError("invalid_documents", "documents must be a non-empty list")
        return [_document(i, item) for i, item in enumerate(value)]

    @field_validator("top_n")
    @classmethod
    def _top_n_positive(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise PydanticCustomError("invalid_top_n", "top_n must be a positive integer")
        return value

    @property
    def texts(self) -> list[str]:
        return [doc["text"] for doc in self.documents]


def _document(index: int, item: Any) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"text": item}
    elif not isinstance(item, dict):
        raise PydanticCustomError(
            "invalid_documents", "documents[{index}] must be a string or an object with a text field",
            {"index": index},
        )
    text = item.get("text")
    if not isinstance(text, str):
        raise PydanticCustomError(
            "invalid_documents", "documents[{index}].text must be a string", {"index": index}
        )
    if not text.strip():
        raise PydanticCustomError("invalid_documents", "documents[{index}].text is empty", {"index": index})
    return item


# Built-in pydantic errors (wrong type, missing field) get the code of the field.
_FIELD_CODES = {
    "query": "invalid_query",
    "documents": "invalid_documents",
    "top_n": "invalid_top_n",
    "model": "invalid_model",
    "return_documents": "invalid_return_documents",
    "mode": "invalid_mode",
}

_CUSTOM_CODES = {"empty_query", "invalid_documents", "invalid_top_n"}


def parse_rerank_request(data: Any, *, max_documents: int) -> RerankRequest:
    """Validate a decoded JSON body; every failure is an `InvalidRequest` naming its field."""
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_request")
    try:
        request = RerankRequest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors(include_url=False)[0]
        field = str(err["loc"][0]) if err["loc"] else None
        custom = err["type"] in _CUSTOM_CODES
        code = err["type"] if custom else _FIELD_CODES.get(field or "", "invalid_request")
        if err["type"] == "missing" and field == "query":
            code = "empty_query"
        message = err["msg"] if custom else f"{field}: {err['msg']}" if field else err["msg"]
        raise InvalidRequest(message, code=code, param=field) from None
    if len(request.documents) > max_documents:
        raise InvalidRequest(
            f"too many documents: {len(request.documents)} > {max_documents}",
            code="too_many_documents",
            param="documents",
        )
    return request


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class RerankMeta(BaseModel):
    """Extension: how the answer was produced."""

    mode: Mode
    cached: bool
    llm_calls: int
    failed_calls: int
    parse_failures: int
    llm_model: str
    prompt_version: str
    cost_usd: float


class RerankResponse(BaseModel):
    id: str
    model: str
    results: list[RerankResult]
    usage: Usage
    meta: RerankMeta
