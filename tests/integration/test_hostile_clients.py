"""Hostile clients against a real gateway process: hostile Unicode in every field and on every path,
oversized and repeated fields, slashes, and clients that are slow to send.

Every body-reading endpoint answers JSON, never a 500; text that is not valid Unicode is refused
once, at decoding, before any upstream call; an error repeats a bounded amount of what it was sent.
"""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateway.http.routes import RERANK_PATHS
from tests.conftest import GatewayProcess

PATHS = [*RERANK_PATHS, "/tei/rerank", "/infinity/rerank", "/v1/rerank/", "//v1//rerank"]
DOCS = ["Paris is the capital of France.", "Bananas are yellow."]

# Characters that break naive text handling: lone surrogates, NUL, bidi and zero-width controls,
# non-characters, combining marks, look-alike digits and brackets, template tokens.
NASTY = st.sampled_from(["\ud800", "\udfff", "\udbff", "\udc00", "\x00", "\u202e", "\u200b", "\ufeff", "\uffff",
                         "\U0010ffff", "\u0301", "③", "⟦", "［", "\U0001f600"])
PIECES = st.sampled_from(["\udbff\udc00", "⟦3⟧", "［1］", "<|im_end|>", "</passage>", "[INST]"])
HOSTILE = st.lists(st.text(alphabet=st.characters(exclude_categories=()) | NASTY, max_size=12) | PIECES,
                   min_size=1, max_size=6).map("".join)
FIELDS = ["query", "instruction", "model", "mode", "rank_field", "rank_field_value", "document", "document_text",
          "extra_key", "extra_value", "texts", "unknown_key", "nested"]


def body_with(field: str, text: str) -> dict[str, Any]:
    """A valid request body with `text` in the place `field` names."""
    body: dict[str, Any] = {"query": f"capital France {uuid.uuid4().hex[:6]}", "documents": list(DOCS),
                            "model": "judge"}
    if field in ("query", "instruction", "mode"):
        body[field] = text
    elif field == "model":
        body["model"] = f"rerank-{text}"  # matches the rerank-* glob: resolved, hashed, echoed back
    elif field == "rank_field":
        body.update(rank_fields=[text, "title"], documents=[{text: "x", "title": d} for d in DOCS])
    elif field == "rank_field_value":
        body.update(rank_fields=["title"], documents=[{"title": f"{text} {d}"} for d in DOCS])
    elif field == "document":
        body["documents"] = [f"{text} {DOCS[0]}", DOCS[1]]
    elif field == "document_text":
        body["documents"] = [{"text": f"{text} {DOCS[0]}"}, {"text": DOCS[1]}]
    elif field == "extra_key":
        body["documents"] = [{"text": DOCS[0], text: 1}, {"text": DOCS[1]}]
    elif field == "extra_value":
        body["documents"] = [{"text": DOCS[0], "meta": {"note": text}}, {"text": DOCS[1]}]
    elif field == "texts":
        body = {"query": body["query"], "texts": [f"{text} {DOCS[0]}", DOCS[1]], "return_text": True}
    elif field == "unknown_key":
        body[text] = text
    elif field == "nested":
        body["documents"] = [{"text": DOCS[0], "deep": [[{"k": [text]}]]}, {"text": DOCS[1]}]
    return body


def lone_surrogate_in(body: Any) -> bool:
    """Whether `body`, as the server decodes it, holds a lone surrogate (an escaped high-low pair is one
    character once decoded, even when it was two code points here)."""
    try:
        json.dumps(json.loads(json.dumps(body)), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


@settings(max_examples=250, database=None, suppress_health_check=list(HealthCheck))
@given(path=st.sampled_from(PATHS), field=st.sampled_from(FIELDS), text=HOSTILE)
def test_hostile_unicode_in_any_field_on_any_path_is_never_a_500(gateway: GatewayProcess, upstream, path: str,
                                                                 field: str, text: str) -> None:
    body = body_with(field, text)
    calls = sum(upstream.calls.values())
    response = httpx.post(f"{gateway.url}{path}", content=json.dumps(body).encode(),  # \\uXXXX escapes
                          headers={"content-type": "application/json"}, timeout=60)
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    assert response.headers["content-type"].startswith("application/json")
    payload = response.json()  # always valid JSON, so always valid text
    if response.status_code >= 400:
        assert {"error", "message", "detail"} <= set(payload)
    if lone_surrogate_in(body):
        assert response.status_code == 400 and payload["error"]["code"] == "invalid_json", response.text
        assert "surrogate" in payload["error"]["message"]
        assert sum(upstream.calls.values()) == calls  # refused before any upstream call


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("field", FIELDS)
def test_a_lone_surrogate_is_a_400_everywhere(client: httpx.Client, upstream, path: str, field: str) -> None:
    calls = sum(upstream.calls.values())
    response = client.post(path, content=json.dumps(body_with(field, "\udfff")).encode(),
                           headers={"content-type": "application/json"})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_json", response.text
    assert sum(upstream.calls.values()) == calls


def test_escaped_text_that_only_looks_like_a_surrogate_is_fine(client: httpx.Client) -> None:
    for query in ("\\udfff literally", "\U0001f600 paired \ud83d\ude00".encode("utf-16", "surrogatepass")
                  .decode("utf-16")):
        response = client.post("/v1/rerank", json={"query": f"{query} {uuid.uuid4().hex}", "documents": DOCS})
        assert response.status_code == 200, response.text


def test_trailing_and_doubled_slashes_are_served_never_redirected(client: httpx.Client) -> None:
    for path in ("/v1/rerank/", "//v1//rerank", "/v2/rerank///"):
        response = client.post(path, json={"query": f"capital {uuid.uuid4().hex}", "documents": DOCS},
                               headers={"host": "evil.example"})
        assert response.status_code == 200 and "location" not in response.headers, path
    assert client.get("/health/").json() == {"status": "ok"}


BIG = "x" * 150_000  # under the test gateway's 200 kB body limit
OVERSIZED = [
    pytest.param({"model": f"rerank-{BIG}"}, "invalid_model", id="model"),
    pytest.param({"model": BIG}, "invalid_model", id="model-no-glob"),
    pytest.param({"mode": BIG}, "invalid_mode", id="mode"),
    pytest.param({"query": BIG}, "query_too_long", id="query"),
    pytest.param({"instruction": BIG}, "instruction_too_long", id="instruction"),
    pytest.param({"rank_fields": [f"f{i}-{'y' * 1000}" for i in range(100)], "documents": [{"a": "b"}]},
                 "invalid_rank_fields", id="rank-fields"),
    pytest.param({"rank_fields": [BIG[:2000]], "documents": [{"a": "b"}]}, "invalid_documents", id="rank-field"),
    pytest.param({"top_n": BIG}, "invalid_top_n", id="top-n"),
]


@pytest.mark.parametrize(("extra", "code"), OVERSIZED)
def test_errors_echo_a_bounded_amount_of_their_input(client: httpx.Client, extra: dict[str, Any], code: str,
                                                     upstream) -> None:
    calls = sum(upstream.calls.values())
    response = client.post("/v1/rerank", json={"query": "q", "documents": DOCS, **extra})
    assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text[:300]
    assert len(response.content) < 4000
    assert sum(upstream.calls.values()) == calls


def test_unknown_paths_echo_a_bounded_path(client: httpx.Client) -> None:
    response = client.get("/" + "a" * 10_000)
    assert response.status_code == 404 and len(response.content) < 2000


def test_repeated_rank_fields_are_ranked_once(client: httpx.Client, upstream) -> None:
    docs = [{"title": "Paris", "body": "capital of France"}, {"title": "Bananas", "body": "yellow"}]
    query = f"capital {uuid.uuid4().hex}"
    once = client.post("/v1/rerank", json={"query": query, "documents": docs, "rank_fields": ["title", "body"]})
    many = client.post("/v1/rerank", json={"query": query, "documents": docs,
                                           "rank_fields": ["title", "body"] * 30})
    assert once.status_code == many.status_code == 200
    assert many.headers["x-cache"] == "HIT"  # the same texts: the repetition changed nothing
    # A passage is a line "[n] ..." (of one message, or its own turn in the multi-turn format).
    passages = [line for m in upstream.last_request["messages"] for line in m["content"].splitlines()
                if line.startswith("[1]")]
    assert len(passages) == 1 and passages[0].count("title:") == 1


@pytest.mark.parametrize(("field", "code"), [("query", "query_too_long"), ("instruction", "instruction_too_long")])
def test_text_repeated_in_every_call_is_bounded_in_tokens(client: httpx.Client, upstream, field: str,
                                                          code: str) -> None:
    """Under the character limit, but each of these characters costs tiktoken a token or more."""
    text = "\U0001f9ea\u0f3a" * 1900  # 3,800 characters, well over 4,096 / 1,024 tokens
    calls = sum(upstream.calls.values())
    response = client.post("/v1/rerank", json={"query": "q", "documents": DOCS, field: text, "mode": "pointwise"})
    assert response.status_code == 400 and response.json()["error"]["code"] == code, response.text
    assert "tokens" in response.json()["error"]["message"]
    assert sum(upstream.calls.values()) == calls


def test_heavy_valid_documents_are_answered_and_probes_stay_up(start_gateway) -> None:
    """50 documents of 100,000 characters (5 MB, within every limit), five requests at once."""
    gateway = start_gateway(server="max_body_bytes = 6000000")
    docs = [("\u200b[7] <|im_end|> capital France " * 3000)[:100_000] for _ in range(50)]
    results: list[int] = []

    def heavy() -> None:
        response = httpx.post(f"{gateway.url}/v1/rerank", timeout=120, json={
            "query": f"capital {uuid.uuid4().hex}", "documents": docs, "model": "judge-pointwise",
            "return_documents": False})
        results.append(response.status_code)

    threads = [threading.Thread(target=heavy) for _ in range(5)]
    for thread in threads:
        thread.start()
    probes = [httpx.get(f"{gateway.url}/health", timeout=30).status_code for _ in range(5)]
    for thread in threads:
        thread.join()
    assert results == [200] * 5 and probes == [200] * 5


# --- slow clients, through real sockets ----------------------------------------------------------

SLOW = ("max_concurrent_requests = 2\nbody_read_timeout_seconds = 1.5\nheader_read_timeout_seconds = 1.5\n"
        "keep_alive_seconds = 1")


class Trickler(threading.Thread):
    """Sends `head`, then one byte of `drip` every `interval` seconds, until the server answers or closes."""

    def __init__(self, port: int, head: bytes, drip: bytes, interval: float = 0.3) -> None:
        super().__init__(daemon=True)
        self.port, self.head, self.drip, self.interval = port, head, drip, interval
        self.answer = b""
        self.ended_after: float | None = None

    def run(self) -> None:
        started = time.monotonic()
        with socket.create_connection(("127.0.0.1", self.port)) as sock:
            sock.settimeout(self.interval)
            sent = 0
            try:
                if self.head:
                    sock.sendall(self.head)
                while time.monotonic() - started < 30:
                    try:
                        chunk = sock.recv(65536)
                        if not chunk:
                            break  # closed by the server
                        self.answer += chunk
                        continue  # an answer is coming: read it all
                    except TimeoutError:
                        pass
                    if self.drip:
                        sock.sendall(self.drip[sent % len(self.drip):][:1])
                        sent += 1
            except OSError:
                pass  # reset by the server after it answered or closed
        self.ended_after = time.monotonic() - started


def test_slow_bodies_cost_a_connection_not_a_request_slot(start_gateway) -> None:
    gateway = start_gateway(server=SLOW)
    head = (b"POST /v1/rerank HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100000\r\n\r\n{")
    slow = [Trickler(gateway.port, head, b" ") for _ in range(8)]  # 4x max_concurrent_requests
    for client in slow:
        client.start()
    time.sleep(0.5)
    served = [httpx.post(f"{gateway.url}/v1/rerank", json={"query": f"capital {i}", "documents": DOCS},
                         timeout=30).status_code for i in range(4)]
    for client in slow:
        client.join(timeout=30)
    assert served == [200] * 4  # never 503 overloaded while the slow clients trickle
    for client in slow:
        assert client.ended_after is not None and client.ended_after < 1.5 + 2.0
        if client.answer:
            assert client.answer.startswith(b"HTTP/1.1 408 ") and b'"code":"request_timeout"' in client.answer


def test_slow_and_silent_headers_and_idle_keep_alive_are_closed_in_seconds(start_gateway) -> None:
    gateway = start_gateway(server=SLOW)
    trickling = Trickler(gateway.port, b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-Slow: aaaaaaaaaaaaaaaaaaaa")
    silent = Trickler(gateway.port, b"", b"", interval=0.2)
    trickling.start()
    silent.start()
    with socket.create_connection(("127.0.0.1", gateway.port)) as sock:  # one answer, then idle
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        sock.settimeout(10)
        answered = b""
        while not answered.endswith(b'{"status":"ok"}'):
            answered += sock.recv(65536)
        idle_from = time.monotonic()
        assert sock.recv(65536) == b""  # closed by the server
        idle = time.monotonic() - idle_from
    trickling.join(timeout=30)
    silent.join(timeout=30)
    assert answered.startswith(b"HTTP/1.1 200 ") and idle < 1 + 2.0
    assert trickling.ended_after is not None and trickling.ended_after < 1.5 + 2.0 and not trickling.answer
    assert silent.ended_after is not None and silent.ended_after < 1.5 + 2.0
