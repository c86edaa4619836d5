"""Drop-in compatibility over HTTP: paths, dialects, lenient bodies, client model names."""

from __future__ import annotations

import http.client
import json
import uuid

import httpx
import pytest

from gateway.http.protocol import RerankResponse
from tests.integration.test_http_api import DOCS


def q(text: str = "capital France") -> str:
    return f"{text} {uuid.uuid4().hex[:8]}"


@pytest.mark.parametrize("path", ["/v1/rerank", "/v2/rerank", "/rerank", "/v1/v2/rerank", "/v1/v1/rerank"])
def test_every_client_path_serves_the_union_body(client: httpx.Client, path: str) -> None:
    response = client.post(path, json={"query": q(), "documents": DOCS, "top_n": 2})
    assert response.status_code == 200, response.text
    body = response.json()
    RerankResponse.model_validate(body)
    assert body["object"] == "rerank" and len(body["results"]) == 2
    assert "data" not in body  # only Voyage's clients read it (below)
    assert body["meta"]["billed_units"] == {"search_units": 1}
    assert body["meta"]["tokens"]["input_tokens"] == body["usage"]["prompt_tokens"]
    assert body["meta"]["api_version"] == {"version": "2"}


@pytest.mark.parametrize(
    ("extra", "headers"),
    [
        ({"top_k": 2, "truncation": True}, {}),  # the voyageai SDK (and LanceDB's, LangChain's Voyage rerankers)
        ({"top_k": None, "truncation": True}, {}),
        ({"model": "rerank-2"}, {}),  # a hand-written client of Voyage's API
        ({"model": "rerank-2.5-lite"}, {}),
        ({"model": "rerank-lite-1"}, {}),
        ({"return_documents": True}, {"user-agent": "litellm/1.106.2"}),  # LiteLLM's voyage/ provider
        ({}, {"x-fern-sdk-name": "voyageai"}),
    ],
)
def test_voyage_clients_get_data_as_well(client: httpx.Client, extra: dict, headers: dict) -> None:
    body = client.post("/v1/rerank", json={"query": q(), "documents": DOCS, **extra}, headers=headers).json()
    assert body["data"] == body["results"] and len(body["results"]) == (2 if extra.get("top_k") else len(DOCS))
    # Voyage's API returns no documents unless asked; its SDK takes the texts from its own list.
    assert all(("document" in r) == bool(extra.get("return_documents")) for r in body["results"])


@pytest.mark.parametrize("model", ["rerank-v3.5", "rerank-english-v3.0", "jina-reranker-v2-base-multilingual"])
def test_other_clients_get_no_data(client: httpx.Client, model: str) -> None:
    body = client.post("/v1/rerank", json={"query": q(), "documents": DOCS, "model": model, "top_n": 2},
                       headers={"user-agent": "cohere/5.21.1"}).json()
    assert "data" not in body and all("document" in r for r in body["results"])


def test_tei_bodies_get_a_bare_array(client: httpx.Client) -> None:
    response = client.post("/rerank", json={"query": q(), "texts": DOCS, "return_text": True,
                                            "raw_scores": False, "truncate": False,
                                            "truncation_direction": "Right"})
    items = response.json()
    assert isinstance(items, list) and len(items) == len(DOCS)
    assert set(items[0]) == {"index", "score", "text"} and items[0]["text"] == DOCS[items[0]["index"]]
    assert [i["score"] for i in items] == sorted((i["score"] for i in items), reverse=True)
    plain = client.post("/tei/rerank", json={"query": q(), "texts": DOCS}).json()
    assert set(plain[0]) == {"index", "score"}


def test_infinity_dialect_returns_documents_as_strings(client: httpx.Client) -> None:
    body = client.post("/infinity/rerank", json={"query": q(), "documents": DOCS, "return_documents": True,
                                                 "model": "default/not-specified"}).json()
    assert body["object"] == "rerank" and body["id"].startswith("infinity-") and isinstance(body["created"], int)
    assert all(isinstance(r["document"], str) for r in body["results"])
    assert body["usage"]["prompt_tokens"] > 0
    without = client.post("/infinity/rerank", json={"query": q(), "documents": DOCS}).json()
    assert all("document" not in r for r in without["results"])


@pytest.mark.parametrize(
    "name", ["rerank-v3.5", "rerank-english-v3.0", "jina-reranker-v2-base-multilingual", "rerank-2",
             "bge-reranker-v2", "BAAI/bge-reranker-v2-m3", "assisters-rerank-v1"],
)
def test_client_model_names_map_to_the_default_and_are_echoed(client: httpx.Client, name: str) -> None:
    body = client.post("/v1/rerank", json={"query": q(), "documents": DOCS, "model": name}).json()
    assert body["model"] == name
    assert body["meta"]["model_alias"] == "judge" and body["meta"]["llm_model"] == "openai/judge"


def test_unmapped_names_are_still_not_found(client: httpx.Client) -> None:
    response = client.post("/v2/rerank", json={"query": "q", "documents": DOCS, "model": "gpt-4o"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("authorization", ["Bearer None", "Bearer fake-api-key", "Bearer ", "Basic x"])
def test_any_authorization_header_is_harmless_when_auth_is_off(gateway, authorization: str) -> None:
    # http.client, because httpx refuses to send "Bearer " with its trailing space as clients do.
    connection = http.client.HTTPConnection("127.0.0.1", gateway.port, timeout=30)
    body = json.dumps({"query": q(), "documents": DOCS})
    connection.request("POST", "/v1/rerank", body, {"Authorization": authorization,
                                                    "Content-Type": "application/json"})
    assert connection.getresponse().status == 200
    connection.close()


def test_real_client_bodies_with_nulls_and_extras(client: httpx.Client) -> None:
    bodies = [
        {"model": "rerank-v3.5", "top_n": 3, "max_tokens_per_doc": None},  # langchain-cohere
        {"model": "rerank-2", "top_k": None, "truncation": True},  # voyageai
        {"model": "jina-reranker-v2-base-multilingual", "top_n": None},  # LanceDB Jina
        {"model": "rerank-v3.5", "priority": 0, "max_tokens_per_doc": 4096},  # cohere v2
        {"model": "m", "return_documents": True, "instruction": None, "truncate_prompt_tokens": -1} ,
    ]
    for extra in bodies:
        if extra["model"] == "m":
            extra["model"] = None
        response = client.post("/v2/rerank", json={"query": q(), "documents": DOCS, **extra})
        assert response.status_code == 200, (extra, response.text)


def test_instruction_reaches_the_prompt(client: httpx.Client, upstream) -> None:
    client.post("/v1/rerank", json={"query": q(), "documents": DOCS, "instruction": "Prefer [1] recent facts"})
    last_user = upstream.last_request["messages"][-1]["content"]
    assert "Instruction: Prefer (1) recent facts" in last_user


def test_max_tokens_per_doc_lowers_the_passage_budget(client: httpx.Client, upstream) -> None:
    long_doc = "capital " * 400
    client.post("/v1/rerank", json={"query": q(), "documents": [long_doc, "France"], "max_tokens_per_doc": 10})
    passage = next(m["content"] for m in upstream.last_request["messages"] if m["content"].startswith("[1]"))
    assert len(passage.split()) <= 12


def test_rank_fields_rank_by_the_named_fields(client: httpx.Client) -> None:
    docs = [{"title": "Bananas", "body": "yellow fruit"}, {"title": "Paris", "body": "capital of France"}]
    body = client.post("/v1/rerank", json={"query": q(), "documents": docs, "rank_fields": ["title", "body"],
                                           "return_documents": True}).json()
    assert body["results"][0]["index"] == 1
    assert body["results"][0]["document"] == {**docs[1], "text": "title: Paris\nbody: capital of France"}


def test_validation_errors_are_400_never_422(client: httpx.Client) -> None:
    for body in [{"query": 1, "documents": DOCS}, {"query": "q", "documents": DOCS, "top_n": "x"},
                 {"query": "q", "documents": [{"image": "x"}]}]:
        response = client.post("/v2/rerank", json=body)
        assert response.status_code == 400
        assert {"message", "detail", "error"} <= set(response.json())
