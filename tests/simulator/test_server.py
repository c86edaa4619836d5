"""The simulator over real HTTP through litellm.acompletion, as the gateway calls it."""

from __future__ import annotations

import asyncio
import math
import re
import time

import httpx
import pytest

import simulator
from tests.simulator import prompts
from tests.simulator.conftest import complete, needs_trec
from tests.simulator.prompts import GRADES, QUERY, TEXTS

pytestmark = pytest.mark.anyio


def ids(text: str) -> list[int]:
    return [int(i) for i in re.findall(r"\[(\d+)\]", text)]


async def test_listwise_answers_a_permutation_in_judged_order(sim: simulator.RunningSimulator) -> None:
    for messages in (prompts.rankgpt(QUERY, TEXTS), prompts.single_message(QUERY, TEXTS)):
        reply = await complete(sim.api_base(), messages, max_tokens=100)
        order = ids(reply.choices[0].message.content)
        assert sorted(order) == [1, 2, 3, 4, 5]
        assert [GRADES[i - 1] for i in order] == sorted(GRADES, reverse=True)
        assert reply.choices[0].finish_reason == "stop"


async def test_max_tokens_cuts_the_answer_with_finish_reason_length(sim: simulator.RunningSimulator) -> None:
    reply = await complete(sim.api_base(), prompts.rankgpt(QUERY, TEXTS), max_tokens=4)
    assert reply.choices[0].finish_reason == "length"
    assert reply.usage.completion_tokens == 4 and reply.choices[0].message.content == "[4] >"


async def test_usage_counts_the_prompt_like_openai(sim: simulator.RunningSimulator) -> None:
    from gateway.strategies.tokens import count_messages, get_encoding

    messages = prompts.rankgpt(QUERY, TEXTS)
    reply = await complete(sim.api_base(), messages, max_tokens=100)
    assert reply.usage.prompt_tokens == count_messages(get_encoding("cl100k_base"), messages)
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


async def test_pointwise_label_with_a_distribution_peaked_at_the_grade(sim: simulator.RunningSimulator) -> None:
    for text, grade in prompts.PASSAGES:
        reply = await complete(sim.api_base(), prompts.graded(QUERY, text), max_tokens=1, logprobs=True,
                               top_logprobs=10)
        choice = reply.choices[0]
        assert choice.message.content == str(grade)
        (first,) = choice.logprobs.content
        assert len(first.top_logprobs) == 10 and first.top_logprobs[0].token == str(grade)
        labels = {a.token: math.exp(a.logprob) for a in first.top_logprobs if a.token.isdigit()}
        expected = sum(int(t) * p for t, p in labels.items()) / sum(labels.values())
        assert abs(expected - grade) < 0.5


async def test_logprobs_only_when_asked_and_never_with_the_knob_off(sim: simulator.RunningSimulator) -> None:
    messages = prompts.graded(QUERY, TEXTS[3])
    plain = await complete(sim.api_base(), messages, max_tokens=1, top_logprobs=5)  # no logprobs=True
    assert getattr(plain.choices[0], "logprobs", None) is None
    without = await complete(sim.api_base(logprobs=False), messages, max_tokens=1, logprobs=True, top_logprobs=5)
    assert getattr(without.choices[0], "logprobs", None) is None and without.choices[0].message.content == "3"


async def test_the_usage_knob_drops_usage(sim: simulator.RunningSimulator) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(sim.api_base(usage=False) + "/chat/completions",
                                   json={"model": "sim-instant", "messages": prompts.graded(QUERY, TEXTS[0])})
    assert response.status_code == 200 and "usage" not in response.json()


async def test_first_answers_one_token_and_a_distribution_over_identifiers(sim: simulator.RunningSimulator) -> None:
    reply = await complete(sim.api_base(), prompts.first(QUERY, TEXTS), max_tokens=1, logprobs=True,
                           top_logprobs=20)
    choice = reply.choices[0]
    assert choice.message.content == "4" and reply.usage.completion_tokens == 1
    alternatives = [a.token for a in choice.logprobs.content[0].top_logprobs]
    identifiers = [int(t) for t in alternatives if t.isdigit()]
    assert sorted(identifiers) == [1, 2, 3, 4, 5]
    assert [GRADES[i - 1] for i in identifiers] == sorted(GRADES, reverse=True)
    top3 = await complete(sim.api_base(), prompts.first(QUERY, TEXTS), max_tokens=1, logprobs=True, top_logprobs=3)
    assert [int(a.token) for a in top3.choices[0].logprobs.content[0].top_logprobs] == identifiers[:3]


async def test_batch_answers_a_line_per_passage_each_label_with_its_own_logprobs(
    sim: simulator.RunningSimulator,
) -> None:
    reply = await complete(sim.api_base(), prompts.batch(QUERY, TEXTS), max_tokens=40, logprobs=True,
                           top_logprobs=5)
    choice = reply.choices[0]
    lines = choice.message.content.splitlines()
    assert lines == [f"[{i}] {g}" for i, g in enumerate(GRADES, 1)]
    content = choice.logprobs.content
    assert "".join(t.token for t in content) == choice.message.content
    lines: list[list[object]] = [[]]
    for token in content:
        lines[-1].append(token) if token.token != "\n" else lines.append([])
    for line, grade in zip(lines, GRADES, strict=True):
        label = line[-1]  # "[", "3", "]", " ", "<label>"
        alternatives = [a.token for a in label.top_logprobs]  # type: ignore[attr-defined]
        assert label.token == alternatives[0] == str(grade)  # type: ignore[attr-defined]
        assert len([a for a in alternatives if a in "0123"]) >= 2


async def test_knobs_in_the_path_change_answers_per_request(sim: simulator.RunningSimulator) -> None:
    messages = prompts.rankgpt(QUERY, TEXTS)
    perfect = ids((await complete(sim.api_base(), messages, max_tokens=100)).choices[0].message.content)
    noisy = [ids((await complete(sim.api_base(noise=1.0, seed=s), messages, max_tokens=100))
                 .choices[0].message.content) for s in range(6)]
    assert any(order != perfect for order in noisy)
    again = ids((await complete(sim.api_base(noise=1.0, seed=0), messages, max_tokens=100)).choices[0].message.content)
    assert again == noisy[0]
    # A strong position bias ranks the window in its input order, whatever the grades.
    biased = ids((await complete(sim.api_base(bias=5), messages, max_tokens=100)).choices[0].message.content)
    assert biased == [1, 2, 3, 4, 5] != perfect


async def test_the_steady_preset_shows_rounds_and_concurrency(sim: simulator.RunningSimulator) -> None:
    sim.reset()
    messages = prompts.graded(QUERY, TEXTS[0])
    started = time.monotonic()
    await asyncio.gather(*(complete(sim.api_base(), messages, model="sim-steady", max_tokens=1) for _ in range(8)))
    await complete(sim.api_base(), messages, model="sim-steady", max_tokens=1)
    calls = sim.calls()
    assert len(calls) == 9 and {c["kind"] for c in calls} == {"pointwise"}
    assert all(c["end"] - c["start"] >= 0.1 for c in calls) and time.monotonic() - started >= 0.2
    assert simulator.rounds(calls) == 2
    stats = sim.stats()
    assert stats["calls"] == 9 and stats["rounds"] == 2 and stats["max_concurrency"] >= 2


def test_a_call_never_ends_before_its_planned_time_even_on_uvloop() -> None:
    """uvloop's millisecond timers fire up to one early; the steady preset's rounds rely on full durations."""
    import uvloop

    from simulator.server import sleep_until

    async def earliest() -> float:
        worst = 1.0
        for _ in range(50):
            when = time.monotonic() + 0.005
            await sleep_until(when)
            worst = min(worst, time.monotonic() - when)
        return worst

    assert uvloop.run(earliest()) >= 0


async def test_hundreds_of_concurrent_calls_are_served_at_once(sim: simulator.RunningSimulator) -> None:
    sim.reset()
    messages = prompts.graded(QUERY, TEXTS[0])
    base = sim.api_base(ttft=5, p95=5)  # every call 5 s: all 200 are launched while the first still waits
    await asyncio.gather(*(complete(base, messages, max_tokens=1) for _ in range(200)))
    calls = sim.calls()
    assert len(calls) == 200 and simulator.rounds(calls) == 1
    assert sim.stats()["max_concurrency"] == simulator.peak_concurrency(calls) == 200
    assert max(c["end"] - c["start"] - c["planned"] for c in calls) < 1.0  # answered on time, not queued


async def test_a_hosted_preset_is_slower_for_more_output(sim: simulator.RunningSimulator) -> None:
    """gpt-4-turbo at a tenth of its time: a permutation takes longer than a one-token answer."""
    base = sim.api_base(scale=0.1, p95=0.8)  # median TTFT 0.08 s: no long tail in a test
    started = time.monotonic()
    await complete(base, prompts.graded(QUERY, TEXTS[0]), model="sim-gpt-4-turbo", max_tokens=1)
    one_token = time.monotonic() - started
    started = time.monotonic()
    await complete(base, prompts.rankgpt(QUERY, TEXTS), model="sim-gpt-4-turbo", max_tokens=100)
    permutation = time.monotonic() - started
    assert permutation > one_token and permutation > 0.1 * 24 / 35  # 24 output tokens at 35/s, scaled


async def test_errors_knob_fails_calls_with_an_openai_error(sim: simulator.RunningSimulator) -> None:
    async with httpx.AsyncClient(trust_env=False) as http:
        response = await http.post(sim.api_base(errors=1.0) + "/chat/completions",
                                   json={"model": "sim-instant", "messages": prompts.graded(QUERY, TEXTS[0])})
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize(("path", "body"), [
    ("/knobs/noise=2/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}]}),
    ("/v1/chat/completions", {"model": "m", "messages": []}),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 0}),
    ("/v1/chat/completions", {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}),
])
async def test_bad_requests_get_a_400_in_openais_shape(sim: simulator.RunningSimulator, path: str,
                                                        body: dict[str, object]) -> None:
    async with httpx.AsyncClient(base_url=sim.url, trust_env=False) as http:
        response = await http.post(path, json=body)
    assert response.status_code == 400 and set(response.json()["error"]) == {"message", "type", "param", "code"}


async def test_anything_else_gets_a_short_generic_answer(sim: simulator.RunningSimulator) -> None:
    reply = await complete(sim.api_base(), [{"role": "user", "content": "Hello there"}], max_tokens=50)
    assert reply.choices[0].message.content and sim.calls()[-1]["kind"] == "generic"


@needs_trec
async def test_a_trec_window_is_ranked_from_the_judgments(trec_sim: simulator.RunningSimulator) -> None:
    from bench.trec import load_qrels, load_queries

    query = load_queries("dl19")[0]
    judged = load_qrels("dl19")[query.qid]
    window = query.candidates[:20]
    reply = await complete(trec_sim.api_base(), prompts.rankgpt(query.query, [c.text for c in window]),
                           max_tokens=110)
    grades = [judged.get(window[i - 1].docid, 0) for i in ids(reply.choices[0].message.content)]
    assert grades == sorted(grades, reverse=True) and trec_sim.calls()[-1]["judged"] == 20
