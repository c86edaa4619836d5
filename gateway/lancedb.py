"""A LanceDB reranker that calls rerank-gateway: `GatewayReranker`.

    import lancedb
    from gateway.lancedb import GatewayReranker

    table.search("how long do fleas live", query_type="hybrid") \\
        .rerank(reranker=GatewayReranker(base_url="http://127.0.0.1:8080")) \\
        .limit(10).to_pandas()

It takes the arguments of LanceDB's `OpenaiReranker` (`model_name`, `column`,
`return_score`, `api_key`) plus `base_url`, `mode` and `top_n`, and behaves
like LanceDB's API rerankers (`CohereReranker`, `JinaReranker`):

- results come back sorted by `_relevance_score` (float32, descending);
- `return_score="relevance"` keeps only `_relevance_score`; `"all"` also keeps
  the search's own score: `_distance` for vector search, `_score` (or `score`)
  for full-text search;
- hybrid search merges the vector and FTS hits without duplicates and makes
  one rerank call; with `return_score="all"` each row keeps both searches'
  scores, `_distance` and `_score` (null where that search did not find the
  row), as LanceDB 0.40's `CohereReranker` and `JinaReranker` do.

With no `model_name` the request names no model, so the gateway answers with
whatever its default model is (a hosted model with a key, else the embedded one).

Rows are matched to scores by the result `index`, never by echoed text, so
duplicated documents cannot be misaligned. Rows whose text is null or blank
are not sent (the gateway refuses blank documents); they score 0.0 and follow
the ranked rows in their original order.

This is the only module of the package that imports `lancedb` (and pyarrow);
the gateway itself never does.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import Any

import httpx
import pyarrow as pa  # type: ignore[import-untyped]
from lancedb.rerankers import Reranker

DEFAULT_BASE_URL = "http://127.0.0.1:8080"
RERANK_PATH = "/v1/rerank"
MODES = ("listwise", "pointwise")
_FTS_SCORES = ("_score", "score")  # LanceDB's native FTS says _score; older tantivy-based releases said score


class RerankGatewayError(RuntimeError):
    """The gateway could not be reached, refused the request, or answered something unusable."""

    def __init__(self, message: str, *, status_code: int | None = None, code: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code


class GatewayReranker(Reranker):
    """Reranks LanceDB results with rerank-gateway's `POST /v1/rerank`.

    Parameters
    ----------
    model_name : str, optional
        A gateway model alias (or a client model name it maps, such as "rerank-v3.5"); None (the
        default) sends no model, so the gateway's default model answers.
    column : str, default "text"
        The column whose text is ranked.
    return_score : str, default "relevance"
        "relevance" keeps only `_relevance_score`; "all" also keeps `_distance`
        (vector search), `_score` (FTS), or both (hybrid).
    api_key : str, optional
        Sent as `Authorization: Bearer <key>`; defaults to $RERANK_GATEWAY_API_KEY.
    base_url : str, optional
        The gateway's root URL; defaults to $RERANK_GATEWAY_URL, else http://127.0.0.1:8080.
    mode : "listwise" | "pointwise" | None
        The ranking strategy; None uses the model alias's default.
    top_n : int, optional
        Keep only the best `top_n` rows; None keeps them all.
    timeout : float, default 300
        Seconds to wait for the gateway (a listwise request over many rows makes sequential LLM calls).
    """

    def __init__(
        self,
        model_name: str | None = None,
        column: str = "text",
        return_score: str = "relevance",
        api_key: str | None = None,
        base_url: str | None = None,
        mode: str | None = None,
        top_n: int | None = None,
        timeout: float = 300.0,
    ) -> None:
        super().__init__(return_score)
        if mode is not None and mode not in MODES:
            raise ValueError(f"mode must be one of {MODES} or None, not {mode!r}")
        if top_n is not None and (isinstance(top_n, bool) or not isinstance(top_n, int) or top_n < 1):
            raise ValueError(f"top_n must be a positive integer or None, not {top_n!r}")
        self.model_name = model_name
        self.column = column
        self.api_key = api_key if api_key is not None else os.environ.get("RERANK_GATEWAY_API_KEY") or None
        self.base_url = (base_url or os.environ.get("RERANK_GATEWAY_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.mode = mode
        self.top_n = top_n
        self.timeout = timeout

    def __str__(self) -> str:
        model = self.model_name or "the gateway's default"
        return f"GatewayReranker(model_name={model}, base_url={self.base_url})"

    @cached_property
    def _client(self) -> httpx.Client:
        return httpx.Client(timeout=self.timeout)

    def close(self) -> None:
        """Closes the HTTP connection pool (a later call opens a new one)."""
        client = self.__dict__.pop("_client", None)
        if client is not None:
            client.close()

    # -- LanceDB's reranker interface ------------------------------------------------------------

    def rerank_vector(self, query: str, vector_results: pa.Table) -> pa.Table:
        results = self._rerank(vector_results, query)
        if self.score == "relevance":
            results = _drop(results, ["_distance"])
        return results

    def rerank_fts(self, query: str, fts_results: pa.Table) -> pa.Table:
        results = self._rerank(fts_results, query)
        if self.score == "relevance":
            results = _drop(results, _FTS_SCORES)
        return results

    def rerank_hybrid(self, query: str, vector_results: pa.Table, fts_results: pa.Table) -> pa.Table:
        if self.score == "all":  # one row per _rowid, with _distance and _score (null where not found)
            combined = self._merge_and_keep_scores(vector_results, fts_results)
        else:
            combined = self.merge_results(vector_results, fts_results)  # concatenated, deduplicated by _rowid
        combined = self._rerank(combined, query)
        return self._keep_relevance_score(combined)

    # -- the gateway call ---------------------------------------------------------------------------

    def _rerank(self, result_set: pa.Table, query: str) -> pa.Table:
        result_set = self._handle_empty_results(result_set)
        if len(result_set) == 0:
            return result_set
        if self.column not in result_set.column_names:
            raise ValueError(
                f"GatewayReranker: column {self.column!r} is not in the results "
                f"(columns: {', '.join(result_set.column_names)})"
            )
        texts = result_set[self.column].to_pylist()
        for i, text in enumerate(texts):
            if text is not None and not isinstance(text, str):
                raise TypeError(f"GatewayReranker: column {self.column!r} must hold strings; "
                                f"row {i} is {type(text).__name__}")
        ranked = [i for i, text in enumerate(texts) if text and text.strip()]
        unranked = [i for i, text in enumerate(texts) if not (text and text.strip())]

        order: list[int] = []
        scores: list[float] = []
        if ranked:
            for index, score in self._call(query, [texts[i] for i in ranked]):
                order.append(ranked[index])
                scores.append(score)
        # Blank rows were not sent: they follow every ranked row with the lowest score, in input order.
        for i in unranked:
            if self.top_n is not None and len(order) >= self.top_n:
                break
            order.append(i)
            scores.append(0.0)

        result_set = _drop(result_set, ["_relevance_score"]).take(pa.array(order, type=pa.int64()))
        return result_set.append_column("_relevance_score", pa.array(scores, type=pa.float32()))

    def _call(self, query: str, documents: list[str]) -> list[tuple[int, float]]:
        """(index into `documents`, relevance score) pairs, best first."""
        body: dict[str, Any] = {"query": query, "documents": documents, "return_documents": False}
        if self.model_name:
            body["model"] = self.model_name
        if self.top_n is not None:
            body["top_n"] = self.top_n
        if self.mode is not None:
            body["mode"] = self.mode
        url = self.base_url + RERANK_PATH
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        try:
            response = self._client.post(url, json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RerankGatewayError(f"cannot reach the rerank gateway at {url}: {exc}") from exc
        payload = _json(response)
        if response.status_code != 200:
            message, code = _error_message(payload, response)
            raise RerankGatewayError(
                f"rerank gateway answered {response.status_code}"
                f"{f' {code}' if code else ''}: {message}",
                status_code=response.status_code,
                code=code,
            )
        return _parse_results(payload, len(documents), url)


def _drop(table: pa.Table, columns: Any) -> pa.Table:
    present = [c for c in columns if c in table.column_names]
    return table.drop_columns(present) if present else table


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def _error_message(payload: Any, response: httpx.Response) -> tuple[str, str | None]:
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"]), (str(error["code"]) if error.get("code") else None)
        for key in ("message", "detail"):
            if payload.get(key):
                return str(payload[key]), None
    text = response.text.strip()
    return (text[:500] if text else response.reason_phrase or "no body"), None


def _parse_results(payload: Any, n_documents: int, url: str) -> list[tuple[int, float]]:
    results = payload.get("results") if isinstance(payload, dict) else None
    if not isinstance(results, list):
        raise RerankGatewayError(f"rerank gateway at {url} answered without a results list")
    pairs: list[tuple[int, float]] = []
    seen: set[int] = set()
    for item in results:
        index = item.get("index") if isinstance(item, dict) else None
        score = item.get("relevance_score") if isinstance(item, dict) else None
        if (not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_documents
                or index in seen or not isinstance(score, int | float) or isinstance(score, bool)):
            raise RerankGatewayError(f"rerank gateway at {url} answered an unusable result: {item!r}")
        seen.add(index)
        pairs.append((index, float(score)))
    return pairs
