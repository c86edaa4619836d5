"""Wire models for the rerank endpoints, in the shape every rerank client parses.

Requests are read leniently: unknown fields are ignored, every optional field
accepts null, and the aliases real clients send (`top_k`, `texts`,
`return_text`) mean what their APIs mean. Responses are one "union" object
that Cohere, Jina, Voyage, vLLM and LiteLLM clients all accept.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SkipValidation,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core import PydanticCustomError

from gateway.config import LimitsSettings, Mode
from gateway.errors import InvalidRequest, echo
from gateway.service import RerankAnswer, RerankQuery

# Names are echoed back and matched against globs; fields are joined into every document's text.
MAX_MODEL_CHARS = 256
MAX_RANK_FIELDS = 64

# Aliases: the field a client sends -> the canonical one it fills when that is absent.
_ALIASES = {"texts": "documents", "top_k": "top_n", "return_text": "return_documents"}


class RerankRequest(BaseModel):
    """A rerank request, after aliases are resolved."""

    model_config = ConfigDict(extra="ignore")

    query: str
    rank_fields: list[str] | None = Field(
        None, description="With object documents: the keys whose values are ranked, in order (Cohere)."
    )
    # Checked by `_documents_have_text` alone: pydantic's own pass over a list of dicts would copy every one.
    documents: SkipValidation[list[dict[str, Any]]] = Field(description="Strings, or objects with a `text` field.")
    model: str | None = Field(None, max_length=MAX_MODEL_CHARS)
    top_n: int | None = Field(None, strict=True, description="How many results; more than the documents = all.")
    return_documents: bool | None = Field(None, strict=True)
    mode: Mode | None = Field(
        None, description="Extension: the ranking strategy (docs/strategies.md): listwise, pointwise, batched, "
        "tdpart, tdpart-first, first, sliding, sliding-first.")
    instruction: str | None = Field(None, description="A task instruction added to the prompt.")
    max_tokens_per_doc: int | None = Field(None, strict=True, description="Per-document token budget.")
    truncate_prompt_tokens: int | None = Field(None, strict=True, description="vLLM's name for the budget.")
    timeout: float | None = Field(None, gt=0, description="Extension: this request's deadline in seconds.")
    fusion_weight: float | None = Field(
        None, ge=0, le=1,
        description="Extension: blend weight of the LLM score against the input order (1 = LLM only).",
    )
    _texts: list[str] = PrivateAttr(default_factory=list)

    @field_validator("query", mode="before")
    @classmethod
    def _query_not_empty(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("empty_query", "query must be a non-empty string")
        return value

    @field_validator("rank_fields")
    @classmethod
    def _rank_fields_not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        if not value:
            raise PydanticCustomError("invalid_rank_fields", "rank_fields must not be empty")
        fields = list(dict.fromkeys(value))  # a field named twice would be ranked (and paid for) twice
        if len(fields) > MAX_RANK_FIELDS:
            raise PydanticCustomError("invalid_rank_fields", "rank_fields names more than {limit} fields",
                                      {"limit": MAX_RANK_FIELDS})
        return fields

    @field_validator("documents", mode="before")
    @classmethod
    def _documents_have_text(cls, value: Any, info: ValidationInfo) -> list[dict[str, Any]]:
        if not isinstance(value, list) or not value:
            raise PydanticCustomError("invalid_documents", "documents must be a non-empty list")
        rank_fields = info.data.get("rank_fields")
        if not rank_fields and set(map(type, value)) == {str}:
            # The common case, strings, checked in C: none empty, none only whitespace.
            if all(value) and not any(map(str.isspace, value)):
                return [{"text": item} for item in value]
        return [_document(i, item, rank_fields) for i, item in enumerate(value)]

    def model_post_init(self, context: Any) -> None:
        if self.rank_fields:
            self._texts = [_rank_text(doc, self.rank_fields) for doc in self.documents]
        else:
            self._texts = [doc["text"] for doc in self.documents]

    @field_validator("top_n", "max_tokens_per_doc")
    @classmethod
    def _positive(cls, value: int | None, info: ValidationInfo) -> int | None:
        if value is not None and value < 1:
            code = "invalid_top_n" if info.field_name == "top_n" else "invalid_request"
            raise PydanticCustomError(code, "{field} must be a positive integer", {"field": info.field_name})
        return value

    @property
    def texts(self) -> list[str]:
        """The text each document is ranked by."""
        return self._texts

    def token_budget(self) -> int | None:
        """The per-document token budget the client asked for, if any."""
        budgets = [b for b in (self.max_tokens_per_doc, self.truncate_prompt_tokens) if b and b > 0]
        return min(budgets) if budgets else None

    def to_query(self, header_timeout: float | None = None) -> RerankQuery:
        """The service's view of this request; a deadline header wins over the body's `timeout`."""
        return RerankQuery(
            query=self.query, texts=self.texts, model=self.model, mode=self.mode, top_n=self.top_n,
            instruction=self.instruction, token_budget=self.token_budget(),
            timeout=header_timeout or self.timeout, fusion_weight=self.fusion_weight,
        )


def _document(index: int, item: Any, rank_fields: list[str] | None) -> dict[str, Any]:
    if isinstance(item, str):
        item = {"text": item}
    elif not isinstance(item, dict):
        raise _doc_error(index, "must be a string or an object with a text field")
    if rank_fields:
        text = _rank_text(item, rank_fields)
        if not text.strip():
            raise _doc_error(index, f"has none of the rank_fields {echo(rank_fields)}")
        # Clients read document.text back (LiteLLM requires it), so one is always there.
        return item if isinstance(item.get("text"), str) else {**item, "text": text}
    text = item.get("text")
    if not isinstance(text, str):
        raise _doc_error(index, ".text must be a string" if "text" in item else "has no text field")
    if not text.strip():
        raise _doc_error(index, ".text is empty")
    return item


def _rank_text(document: dict[str, Any], rank_fields: list[str] | None) -> str:
    """Cohere semantics: the listed fields, in order, as `key: value` lines."""
    if not rank_fields:
        return str(document["text"])
    present = [f for f in rank_fields if document.get(f) not in (None, "")]
    if present == ["text"]:
        return str(document["text"])
    return "\n".join(f"{f}: {document[f]}" for f in present)


def _doc_error(index: int, problem: str) -> PydanticCustomError:
    sep = "" if problem.startswith(".") else " "
    return PydanticCustomError("invalid_documents", "documents[{index}]{sep}{problem}",
                               {"index": index, "sep": sep, "problem": problem})


# Built-in pydantic errors (wrong type, missing field) get the code of the field.
_FIELD_CODES = {
    "query": "invalid_query",
    "documents": "invalid_documents",
    "top_n": "invalid_top_n",
    "model": "invalid_model",
    "return_documents": "invalid_return_documents",
    "mode": "invalid_mode",
    "rank_fields": "invalid_rank_fields",
    "timeout": "invalid_timeout",
    "fusion_weight": "invalid_fusion_weight",
    "instruction": "invalid_instruction",
}
_CUSTOM_CODES = {"empty_query", "invalid_documents", "invalid_top_n", "invalid_rank_fields", "invalid_request"}


def parse_rerank_request(data: Any, limits: LimitsSettings) -> RerankRequest:
    """Validate a decoded JSON body; every failure is an `InvalidRequest` naming its field."""
    if not isinstance(data, dict):
        raise InvalidRequest("request body must be a JSON object", code="invalid_request")
    data = dict(data)
    for alias, canonical in _ALIASES.items():
        if data.get(canonical) is None and data.get(alias) is not None:
            data[canonical] = data[alias]
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
    if len(request.documents) > limits.max_documents:
        raise InvalidRequest(
            f"too many documents: {len(request.documents)} > {limits.max_documents}",
            code="too_many_documents",
            param="documents",
        )
    if len(request.query) > limits.max_query_chars:
        raise InvalidRequest(f"query is longer than {limits.max_query_chars} characters",
                             code="query_too_long", param="query")
    if request.instruction is not None and len(request.instruction) > limits.max_instruction_chars:
        raise InvalidRequest(f"instruction is longer than {limits.max_instruction_chars} characters",
                             code="instruction_too_long", param="instruction")
    if max(map(len, request.texts)) > limits.max_document_chars:
        index = next(i for i, text in enumerate(request.texts) if len(text) > limits.max_document_chars)
        raise InvalidRequest(f"documents[{index}] is longer than {limits.max_document_chars} characters",
                             code="document_too_long", param="documents")
    return request


class RerankResult(BaseModel):
    index: int
    relevance_score: float
    document: dict[str, Any] | None = None


class Usage(BaseModel):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0


class BilledUnits(BaseModel):
    search_units: int  # an integer: LiteLLM's pydantic model rejects 1.5


class Tokens(BaseModel):
    input_tokens: int
    output_tokens: int


class RerankMeta(BaseModel):
    """Cohere's `meta` (api_version, billed_units, tokens) plus how the answer was produced."""

    api_version: dict[str, str] = Field(default_factory=lambda: {"version": "2"})
    billed_units: BilledUnits
    tokens: Tokens
    mode: Mode
    cached: bool
    llm_calls: int
    upstream_attempts: int
    retries: int
    fallbacks: list[str]
    failed_calls: int
    parse_failures: int
    model_alias: str
    llm_model: str
    prompt_version: str
    cost_usd: float
    fusion_weight: float
    ranked_documents: int = Field(description="How many documents the model ranked; the rest follow in "
                                              "the caller's order.")
    input_order_tau: float = Field(description="Kendall's tau of the returned order against the request's "
                                               "(1 = unchanged, -1 = reversed).")
    strategy: str = Field(description="The strategy that ranked, e.g. 'tdpart-first' for mode 'listwise'.")
    score_type: Literal["calibrated", "rank"] = Field(
        description="'calibrated': graded relevance, 0.5 and above means relevant; 'rank': from positions only.")
    partial: bool = Field(description="The deadline came first: what finished, the rest in the caller's order "
                                      "below (header x-rerank-partial: true).")
    skipped: dict[str, int] | None = Field(description="When partial: LLM calls cut or not made ('llm_calls') "
                                                       "and documents no finished call saw ('documents').")
    hedges: int = Field(description="Duplicate attempts sent for slow LLM calls.")
    first_fallbacks: int = Field(description="Single-token windows answered without logprobs, re-asked for a "
                                             "generated permutation.")
    warnings: list[str] = Field(description="Plain sentences about a degraded or demo-quality answer.")


class RerankResponse(BaseModel):
    """The union body: `results` for Cohere/Jina/vLLM, and the same list as `data` for Voyage's clients."""

    id: str
    object: Literal["rerank"] = "rerank"  # never "list": infinity_client rejects it
    model: str
    results: list[RerankResult]
    data: list[RerankResult] | None = Field(
        None, description="The same list as `results`, sent to the clients that read it (Voyage's)."
    )
    usage: Usage
    meta: RerankMeta


def search_units(documents: int) -> int:
    """Cohere bills one search unit per query of up to 100 documents."""
    return max(1, math.ceil(documents / 100))


def union_body(answer: RerankAnswer, documents: list[dict[str, Any]] | None) -> dict[str, Any]:
    """The union object (`RerankResponse`'s JSON, without `data`), built directly rather than validated."""
    if documents is None:
        results = [{"index": i, "relevance_score": s} for i, s in answer.results]
    else:
        results = [{"index": i, "relevance_score": s, "document": documents[i]} for i, s in answer.results]
    return {
        "id": answer.id,
        "object": "rerank",
        "model": answer.model,
        "results": results,
        "usage": {"prompt_tokens": answer.prompt_tokens, "completion_tokens": answer.completion_tokens,
                  "total_tokens": answer.prompt_tokens + answer.completion_tokens},
        "meta": {
            "api_version": {"version": "2"},
            "billed_units": {"search_units": search_units(answer.documents)},
            "tokens": {"input_tokens": answer.prompt_tokens, "output_tokens": answer.completion_tokens},
            **vars(answer.meta),  # AnswerMeta's fields, in order
        },
    }
