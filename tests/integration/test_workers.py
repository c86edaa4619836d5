"""`rerank-gateway serve --workers 2`: one port, every worker reloaded by SIGHUP and /admin/reload, /metrics
added up over the workers, graceful drain on SIGTERM."""

from __future__ import annotations

import signal
import threading
import time

import httpx

from gateway.ops.auth import hash_key
from tests.conftest import ALIASES, NO_RETRIES, GatewayProcess, write_config
from tests.support.faults import Fault

ADMIN = "admin-secret-for-workers"
BASE = f'{NO_RETRIES}\n[auth]\nadmin_keys = [{{name = "ops", sha256 = "{hash_key(ADMIN)}"}}]'
DOCS = ["Paris is the capital of France.", "Bananas are yellow."]


def fresh(gateway: GatewayProcess, method: str, path: str, **kwargs: object) -> httpx.Response:
    """A request on a new connection, so the kernel may hand it to any worker."""
    with httpx.Client(timeout=30) as http:
        return http.request(method, f"{gateway.url}{path}", **kwargs)


def versions(gateway: GatewayProcess, n: int = 16) -> set[str]:
    return {fresh(gateway, "GET", "/health").headers["x-config-version"] for _ in range(n)}


def wait_for_version(gateway: GatewayProcess, version: str) -> None:
    deadline = time.monotonic() + 20
    while versions(gateway) != {version}:
        assert time.monotonic() < deadline, f"workers did not all reach version {version}"
        time.sleep(0.2)


def test_workers_share_a_port_and_all_reload(tmp_path, upstream) -> None:
    config = write_config(tmp_path / "config.toml", upstream.port, BASE)
    gateway = GatewayProcess(config, tmp_path / "gateway.log", args=("--workers", "2"),
                             start_seconds=180)  # two workers import LiteLLM at once
    admin = {"Authorization": f"Bearer {ADMIN}"}
    try:
        pids = {fresh(gateway, "GET", "/admin/config", headers=admin).json()["pid"] for _ in range(40)}
        assert len(pids) == 2 and gateway.process.pid not in pids
        sent = 0
        for n in range(10):
            assert fresh(gateway, "POST", "/v1/rerank", json={"query": f"q {n}", "documents": DOCS}).status_code == 200
            sent += 1
        metrics = fresh(gateway, "GET", "/metrics").text
        assert f'rerank_gateway_requests_total{{model="judge",route="/v1/rerank",status="200"}} {sent}.0' in metrics

        write_config(config, upstream.port, BASE, [*ALIASES, ("added", "judge", "pointwise", "")])
        gateway.process.send_signal(signal.SIGHUP)  # to the supervisor
        wait_for_version(gateway, "2")
        write_config(config, upstream.port, BASE)
        reloaded = fresh(gateway, "POST", "/admin/reload", headers=admin)
        assert reloaded.status_code == 200 and reloaded.json()["version"] == 3
        wait_for_version(gateway, "3")  # the other worker too
        assert gateway.process.poll() is None
    finally:
        gateway.stop()


def test_sigterm_drains_every_worker(tmp_path, upstream) -> None:
    aliases = [*ALIASES, ("crawl", "crawl", "listwise", "")]
    config = write_config(tmp_path / "config.toml", upstream.port, BASE, aliases,
                          server="drain_seconds = 0.5\ngraceful_shutdown_seconds = 10")
    gateway = GatewayProcess(config, tmp_path / "gateway.log", args=("--workers", "2"),
                             start_seconds=180)  # two workers import LiteLLM at once
    upstream.faults.always("crawl", Fault.delay(1.5))
    results: list[int] = []

    def slow() -> None:
        results.append(fresh(gateway, "POST", "/v1/rerank", json={"query": "slow", "documents": DOCS,
                                                                  "model": "crawl"}).status_code)

    try:
        clients = [threading.Thread(target=slow) for _ in range(4)]
        for client in clients:
            client.start()
        time.sleep(0.5)
        gateway.process.send_signal(signal.SIGTERM)
        for client in clients:
            client.join()
        assert gateway.process.wait(timeout=30) == 0
    finally:
        upstream.faults.clear("crawl")
        if gateway.process.poll() is None:
            gateway.stop()
    assert results == [200] * 4
