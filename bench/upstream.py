"""Which model the benchmarks talk to: the simulated hosted upstream, or a real OpenAI-compatible one.

    --base-url URL --model NAME [--api-key-env VAR]   any OpenAI-compatible server (a real model)
    (default)                                         the simulator (`python -m simulator`), started here,
                                                      with --noise / --bias / --preset for its knobs

Without the `simulator` package (it lives beside `gateway/` in a checkout), the
tests' fake upstream stands in: judgments-driven too, but instant and only for
the multi-turn listwise and pointwise prompts.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench import harness

# Simulator speed presets by the name the benchmarks use for them.
SPEEDS = {"instant": "sim-instant", "hosted": "sim-gpt-4-turbo"}


def have_simulator() -> bool:
    return importlib.util.find_spec("simulator") is not None


def add_options(parser: argparse.ArgumentParser, knobs: bool = True) -> None:
    group = parser.add_argument_group("upstream (default: the simulator, started by the benchmark)")
    group.add_argument("--base-url", help="an OpenAI-compatible base URL (e.g. https://api.openai.com/v1) "
                                          "instead of the simulator")
    group.add_argument("--model", help="with --base-url: the model name it serves (e.g. gpt-4o-mini)")
    group.add_argument("--api-key-env", default=harness.KEY_ENV,
                       help="with --base-url: the environment variable holding its API key")
    group.add_argument("--no-logprobs", action="store_true", help="with --base-url: the model has no logprobs")
    if knobs:
        group.add_argument("--noise", type=float, default=0.0,
                           help="simulator: probability a passage's grade is replaced by a random one")
        group.add_argument("--bias", type=float, default=0.0,
                           help="simulator: position bias, grades the first passage gains over the last")
        group.add_argument("--preset", default="instant", help="simulator speed: instant, gpt-4-turbo, gpt-4o, ...")


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if bool(args.base_url) != bool(args.model):
        parser.error("--base-url and --model go together")


@dataclass
class Upstream:
    """A running (or remote) upstream and how to address it."""

    kind: str  # "simulator", "fake" or "remote"
    url: str  # its root, without /v1
    key_env: str = harness.KEY_ENV
    logprobs: bool = True
    model_name: str | None = None  # remote: the one model

    def target(self, speed: str = "instant", **knobs: float) -> harness.Target:
        """The address of one model: a speed preset and knobs on the simulator, the model itself elsewhere."""
        if self.kind == "remote":
            return harness.Target(self.url, self.model_name or "", self.key_env, self.logprobs)
        if self.kind == "fake":
            return harness.Target(f"{self.url}/v1", "judge")
        spec = ",".join(f"{k}={v:g}" for k, v in knobs.items() if v)
        base = f"{self.url}/knobs/{spec}/v1" if spec else f"{self.url}/v1"
        return harness.Target(base, SPEEDS.get(speed, f"sim-{speed}"))


@contextlib.contextmanager
def running(args: argparse.Namespace | None, workdir: Path) -> Iterator[Upstream]:
    """The upstream the options name, started here unless it is remote; stopped on exit."""
    if args is not None and getattr(args, "base_url", None):
        yield Upstream("remote", args.base_url.rstrip("/"), args.api_key_env, not args.no_logprobs, args.model)
        return
    if have_simulator():
        server = harness.start_simulator(workdir)
        kind, ready = "simulator", "/health"
    else:
        server = harness.start_module("fake-upstream", harness.FAKE_UPSTREAM, [], workdir)
        kind, ready = "fake", "/stats"
    try:
        server.wait_ready(ready)
        yield Upstream(kind, server.url)
    finally:
        server.stop()
