"""A hostile upstream against a real gateway process: huge, malformed, key-echoing and empty answers.

Whatever an upstream sends, the gateway reads a bounded amount of it, bills no more than it
asked for, answers in OpenAI's error shape with no traceback, server path or key in any
encoding, keeps upstream texts out of its log, and never caches an unusable answer.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from gateway.upstream.redact import WINDOW
from tests.conftest import FAKE_KEY, SLIDING, GatewayProcess, free_port, write_config
from tests.support.fake_upstream import ServerThread
from tests.support.hostile_upstream import USAGE, HostileUpstream, key_forms

DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "France borders Spain."]
ECHOES = list(key_forms(FAKE_KEY))
MODELS = ["huge-declared", "huge-chunked", "gzip-bomb", "huge-text", *(f"usage-{k}" for k in USAGE),
          *(f"echo-key-{e}" for e in ECHOES), "quote-prompt", "traceback", "surrogate-error", "empty", "empty-once",
          "no-choices", "valid"]
RELIABILITY = """[reliability]
max_attempts = 2
backoff_base_seconds = 0.01
backoff_max_seconds = 0.02
retry_budget_ratio = 1.0
breaker_failure_threshold = 100000"""
# What no error message may hold: a traceback, a source line, a server path.
LEAKS = re.compile(r"Traceback|File \"|site-packages|/srv/|/home/|/work/|/usr/|\.py\b|received_args")


@pytest.fixture(scope="module")
def hostile() -> Iterator[HostileUpstream]:
    upstream = HostileUpstream()
    with ServerThread(upstream.app, free_port()) as server:
        upstream.port = server.port  # type: ignore[attr-defined]
        yield upstream


@pytest.fixture(scope="module")
def gateway(hostile: HostileUpstream, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("hostile")
    base = f'api_base = "http://127.0.0.1:{hostile.port}/v1"'  # type: ignore[attr-defined]
    # Listwise as the sliding window without logprobs: one permutation call per request.
    sliding = f"{base}\n{SLIDING}"
    aliases = [("judge", "valid", "sliding", sliding)]  # the default write_config names
    aliases += [(m, m, "sliding", sliding) for m in MODELS] + [(f"{m}-pw", m, "pointwise", base) for m in MODELS]
    config = write_config(tmp / "config.toml", 0, RELIABILITY, aliases)
    process = GatewayProcess(config, tmp / "gateway.log")
    yield process
    process.stop()


def rerank(gateway: GatewayProcess, model: str, **extra: object) -> httpx.Response:
    body = {"query": f"capital France {uuid.uuid4().hex[:8]}", "documents": DOCS, "model": model, **extra}
    return httpx.post(f"{gateway.url}/v1/rerank", json=body, timeout=60)


def check_error_shape(response: httpx.Response) -> str:
    assert response.status_code < 500 or response.status_code in (502, 503, 504), response.text
    body = response.json()
    if response.status_code >= 400:
        assert set(body["error"]) == {"message", "type", "code", "param"}
        assert body["message"] == body["detail"] == body["error"]["message"]
        assert not LEAKS.search(body["message"]), body["message"]
        return str(body["message"])
    return ""


def leaked_key(text: str) -> str | None:
    """A run of the key, in any echoed form, found in `text`."""
    lowered = text.lower()
    forms = key_forms(FAKE_KEY)
    forms["base64-bearer"] = forms["base64-bearer"][12:]  # its first 12 characters encode "Bearer sk"
    for form in forms.values():
        form = form.lower().strip(".")
        for i in range(len(form) - WINDOW - 3):
            if form[i: i + WINDOW + 4] in lowered:
                return form[i: i + WINDOW + 4]
    return None


@pytest.mark.parametrize("model", ["huge-declared", "huge-chunked", "gzip-bomb"])
def test_a_huge_answer_is_refused_unread_within_the_deadline(gateway, model: str) -> None:
    started = time.monotonic()
    response = rerank(gateway, model, timeout=5)
    elapsed = time.monotonic() - started
    message = check_error_shape(response)
    assert response.status_code == 502 and "answered more than 1048576 bytes" in message
    assert elapsed < 5  # refused, not parsed: far inside the request's own deadline
    assert httpx.get(f"{gateway.url}/health", timeout=2).status_code == 200


@pytest.mark.parametrize("mode", ["", "-pw"])
def test_a_long_answer_is_parsed_by_prefix_and_billed_at_most_what_was_asked(gateway, mode: str) -> None:
    body = rerank(gateway, f"huge-text{mode}").json()
    calls = body["meta"]["llm_calls"]
    # listwise asks for 5 tokens per passage + 10, pointwise for 1 token (logprobs) per document
    asked = (5 * len(DOCS) + 10) * calls if not mode else calls
    assert 0 < body["usage"]["completion_tokens"] <= asked
    assert sorted(r["index"] for r in body["results"]) == [0, 1, 2]


@pytest.mark.parametrize("kind", list(USAGE))
@pytest.mark.parametrize("mode", ["", "-pw"])
def test_hostile_usage_is_clamped_to_sane_integers(gateway, kind: str, mode: str) -> None:
    response = rerank(gateway, f"usage-{kind}{mode}")
    assert response.status_code == 200, response.text
    body = response.json()
    usage, calls = body["usage"], body["meta"]["llm_calls"]
    assert all(type(usage[k]) is int and usage[k] >= 0 for k in usage)
    assert usage["completion_tokens"] <= (5 * len(DOCS) + 10 if not mode else 1) * calls
    assert usage["prompt_tokens"] <= 2 * 16000 * calls  # never more than the context could hold
    assert body["meta"]["cost_usd"] >= 0 and body["meta"]["parse_failures"] == 0


def test_metrics_survive_hostile_usage(gateway) -> None:
    for kind in USAGE:
        rerank(gateway, f"usage-{kind}")
    metrics = httpx.get(f"{gateway.url}/metrics").text
    assert 'rerank_gateway_tokens_total{direction="input",model="usage-negative"}' in metrics
    assert "-" not in "".join(line.split()[-1] for line in metrics.splitlines()
                              if line.startswith(("rerank_gateway_tokens_total", "rerank_gateway_cost_usd_total")))


@pytest.mark.parametrize("echo", ECHOES)
def test_an_echoed_key_leaks_in_no_encoding(gateway, echo: str) -> None:
    message = check_error_shape(rerank(gateway, f"echo-key-{echo}"))
    assert "Incorrect API key provided" in message
    assert leaked_key(message) is None, message
    time.sleep(0.1)
    assert leaked_key(gateway.log.read_text()) is None


def test_upstream_texts_that_quote_the_prompt_stay_out_of_the_log(gateway) -> None:
    canary = f"canary-{uuid.uuid4().hex}"
    response = httpx.post(f"{gateway.url}/v1/rerank", timeout=60, json={
        "query": "capital", "documents": [f"{canary} Paris", "b"], "model": "quote-prompt"})
    assert response.status_code == 502 and canary in response.json()["error"]["message"]  # the client's own text
    time.sleep(0.1)
    log = gateway.log.read_text()
    assert canary not in log
    assert "upstream model openai/quote-prompt failed (HTTP 400)" in log  # what failed is still logged


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("mode", ["", "-pw"])
def test_no_answer_of_a_hostile_upstream_makes_a_500_or_leaks(gateway, model: str, mode: str) -> None:
    response = rerank(gateway, f"{model}{mode}", timeout=20)
    check_error_shape(response)
    assert "\\udfff" not in response.text and leaked_key(response.text) is None
    if response.status_code == 200:
        assert sorted(r["index"] for r in response.json()["results"]) == [0, 1, 2]


def test_an_empty_answer_is_tried_once_more_and_never_cached(gateway, hostile) -> None:
    query = f"capital {uuid.uuid4().hex}"
    before = hostile.calls["empty"]
    first = rerank(gateway, "empty", query=query)
    assert first.status_code == 200 and first.json()["meta"]["parse_failures"] == 1
    assert hostile.calls["empty"] - before == 2  # the one window, tried twice
    again = rerank(gateway, "empty", query=query)
    assert again.headers["x-cache"] == "MISS" and hostile.calls["empty"] - before == 4


def test_one_empty_answer_is_recovered_by_the_retry(gateway) -> None:
    body = rerank(gateway, "empty-once").json()
    assert body["meta"]["parse_failures"] == 0 and body["meta"]["retries"] == 1
    assert [r["index"] for r in body["results"]] == [0, 1, 2]
