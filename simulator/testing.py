"""Starting the simulator for a test or a benchmark, and reading what it saw.

    with simulator.running(noise=0.1) as sim:          # a thread of this process, a free port
        api_base = sim.api_base(bias=0.5)              # "http://127.0.0.1:PORT/knobs/bias=0.5/v1"
        ...  # litellm.acompletion(model="openai/sim-instant", api_base=api_base, api_key="x", ...)
        assert rounds(sim.calls()) == 3

`SimulatorClient(url)` reads a simulator started elsewhere (`python -m simulator`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import uvicorn

from simulator.judgments import Judgments
from simulator.knobs import Knobs, parse
from simulator.server import KEEP_ALIVE_SECONDS, Simulator


class SimulatorClient:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=30, trust_env=False)

    def api_base(self, **knobs: object) -> str:
        """An OpenAI `api_base` that runs calls with these knobs (validated here, not on the first call)."""
        if not knobs:
            return f"{self.url}/v1"
        spec = ",".join(f"{k}={int(v) if isinstance(v, bool) else v}" for k, v in knobs.items())
        parse(spec)
        return f"{self.url}/knobs/{spec}/v1"

    def calls(self) -> list[dict[str, Any]]:
        return self._get("/calls")

    def stats(self) -> dict[str, Any]:
        return self._get("/stats")

    def reset(self) -> None:
        self._http.post("/reset").raise_for_status()

    def close(self) -> None:
        self._http.close()

    def _get(self, path: str) -> Any:
        response = self._http.get(path)
        response.raise_for_status()
        return response.json()


_SHARED: dict[str, Judgments] = {}


def shared_judgments() -> Judgments:
    """The TREC judgments, loaded once per process (tests start many simulators)."""
    if "default" not in _SHARED:
        _SHARED["default"] = Judgments.load()
    return _SHARED["default"]


@contextmanager
def running(judgments: Judgments | None = None, **defaults: Any) -> Iterator[RunningSimulator]:
    """A simulator on a free loopback port, in a daemon thread, until the block ends."""
    simulator = Simulator(Knobs(**defaults), judgments if judgments is not None else shared_judgments())
    config = uvicorn.Config(simulator.app, host="127.0.0.1", port=0, log_level="warning", lifespan="off",
                            backlog=4096, timeout_keep_alive=KEEP_ALIVE_SECONDS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="simulator", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the simulator did not start")
        time.sleep(0.005)
    port = server.servers[0].sockets[0].getsockname()[1]
    handle = RunningSimulator(f"http://127.0.0.1:{port}", simulator)
    try:
        yield handle
    finally:
        handle.close()
        server.should_exit = True
        thread.join(timeout=10)


class RunningSimulator(SimulatorClient):
    """A `SimulatorClient` that also holds the in-process `Simulator` (its records, its defaults)."""

    def __init__(self, url: str, simulator: Simulator) -> None:
        super().__init__(url)
        self.simulator = simulator
        self.port = int(url.rsplit(":", 1)[1])
