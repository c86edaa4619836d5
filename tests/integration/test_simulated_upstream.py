"""The gateway (a real uvicorn process) against the simulated hosted upstream, on real TREC DL19 queries."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

import simulator
from bench.trec import load_qrels, load_queries, mean_ndcg
from simulator.judgments import DATA_DIR
from tests.conftest import GatewayProcess

pytestmark = pytest.mark.skipif(not (DATA_DIR / "dl19-qrels.txt").is_file(),
                                reason=f"TREC DL data not found in {DATA_DIR} (set TREC_DL_DIR)")

QUERIES = 3


@pytest.fixture(scope="module")
def sim() -> Iterator[simulator.RunningSimulator]:
    with simulator.running() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(sim: simulator.RunningSimulator, tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    tmp = tmp_path_factory.mktemp("simulated")
    # (alias, simulated model, mode, logprobs, knobs): the sliding window without logprobs is one call per
    # window; "slow" calls last 1 s, so calls launched together overlap on any machine.
    slow = sim.api_base(scale=10)
    aliases = [("sim-sliding", "sim-instant", "sliding", False, sim.api_base()),
               ("sim-pointwise", "sim-instant", "pointwise", True, sim.api_base()),
               ("sim-batched", "sim-instant", "batched", True, sim.api_base()),
               ("sim-listwise", "sim-instant", "listwise", True, sim.api_base()),
               ("sim-steady", "sim-steady", "sliding", False, sim.api_base()),
               ("sim-steady-listwise", "sim-steady", "listwise", True, slow),
               ("sim-steady-batched", "sim-steady", "batched", True, slow)]
    lines = ['default_model = "sim-sliding"', "[cache]\nenabled = false"]
    for alias, model, mode, logprobs, api_base in aliases:
        lines.append(f'[models."{alias}"]\nlitellm_model = "openai/{model}"\napi_base = "{api_base}"\n'
                     f'api_key_env = "FAKE_UPSTREAM_KEY"\nmode = "{mode}"\nlogprobs = {str(logprobs).lower()}\n'
                     "context_window = 128000")
    config = tmp / "config.toml"
    config.write_text("\n\n".join(lines) + "\n")
    process = GatewayProcess(config, tmp / "gateway.log")
    yield process
    process.stop()


def rerank(gateway: GatewayProcess, model: str, query: str, documents: list[str]) -> list[int]:
    response = httpx.post(f"{gateway.url}/v1/rerank", timeout=120, json={
        "model": model, "query": query, "documents": documents, "return_documents": False,
    })
    assert response.status_code == 200, response.text
    return [r["index"] for r in response.json()["results"]]


@pytest.mark.parametrize(("model", "kinds", "calls_per_query"), [
    ("sim-sliding", {"listwise"}, 9), ("sim-pointwise", {"pointwise"}, 100), ("sim-batched", {"batch"}, 20),
    ("sim-listwise", {"first", "pointwise"}, None),  # tdpart-first: 7 windows, and grades for the top
])
def test_a_perfect_simulated_model_reranks_dl19_far_above_bm25(
    gateway: GatewayProcess, sim: simulator.RunningSimulator, model: str, kinds: set[str],
    calls_per_query: int | None,
) -> None:
    qrels = load_qrels("dl19")
    bm25, reranked = {}, {}
    sim.reset()
    for q in load_queries("dl19")[:QUERIES]:
        docids = [c.docid for c in q.candidates]
        bm25[q.qid] = docids
        reranked[q.qid] = [docids[i] for i in rerank(gateway, model, q.query, [c.text for c in q.candidates])]
    calls = sim.calls()
    assert {c["kind"] for c in calls} == kinds
    assert calls_per_query is None or len(calls) == QUERIES * calls_per_query
    assert all(c["judged"] == c["passages"] for c in calls)  # every passage matched its judgment
    baseline, ours = mean_ndcg(bm25, qrels), mean_ndcg(reranked, qrels)
    assert ours > baseline + 20, (baseline, ours)


def test_the_sliding_window_is_nine_sequential_rounds(gateway: GatewayProcess, sim: simulator.RunningSimulator) -> None:
    q = load_queries("dl19")[0]
    sim.reset()
    rerank(gateway, "sim-steady", q.query, [c.text for c in q.candidates])
    calls = sim.calls()
    assert len(calls) == 9 and simulator.rounds(calls) == 9 and simulator.peak_concurrency(calls) == 1


@pytest.mark.parametrize(("model", "rounds"), [("sim-steady-listwise", 2), ("sim-steady-batched", 1)])
def test_listwise_is_two_rounds_and_the_default_one(gateway: GatewayProcess, sim: simulator.RunningSimulator,
                                                     model: str, rounds: int) -> None:
    """What the 4 and 5 s budgets rest on, counted on the simulator's own timeline: tdpart-first's two
    rounds (the chunks run with the first window, grading overlaps both), batched's one."""
    q = load_queries("dl19")[1]
    sim.reset()
    rerank(gateway, model, q.query, [c.text for c in q.candidates])
    assert simulator.rounds(sim.calls()) == rounds
