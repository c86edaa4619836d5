"""python -m simulator --port 9200 [--preset gpt-4-turbo] [--noise 0.2] ... (see simulator/README.md)."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

import uvicorn

from simulator.judgments import DATA_DIR, Judgments
from simulator.knobs import KnobError, Knobs, parse
from simulator.server import KEEP_ALIVE_SECONDS, Simulator


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m simulator",
        description="A simulated hosted chat model (OpenAI chat completions) that answers rerank prompts "
                    "from TREC DL judgments at a hosted model's speed.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="listen address (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument("--data", type=Path, default=DATA_DIR, help=f"TREC DL directory (default {DATA_DIR})")
    parser.add_argument("--log-level", default="warning")
    defaults = Knobs()
    for field in dataclasses.fields(Knobs):
        parser.add_argument(f"--{field.name}", dest=field.name, metavar="VALUE",
                            help=f"default for the {field.name} knob ({getattr(defaults, field.name)})")
    return parser


def knobs_from(args: argparse.Namespace) -> Knobs:
    spec = ",".join(f"{f.name}={getattr(args, f.name)}" for f in dataclasses.fields(Knobs)
                    if getattr(args, f.name) is not None)
    return Knobs(**parse(spec))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        defaults = knobs_from(args)
    except KnobError as exc:
        print(f"simulator: {exc}", file=sys.stderr)
        return 2
    started = time.monotonic()
    judgments = Judgments.load(args.data)
    if not judgments.queries:
        print(f"simulator: no TREC DL judgments in {args.data}: every passage is graded by term overlap",
              file=sys.stderr)
    simulator = Simulator(defaults, judgments)
    print(f"simulator: http://{args.host}:{args.port}/v1 ({judgments.queries} judged queries, "
          f"defaults: {defaults.spec() or 'none changed'}; loaded in {time.monotonic() - started:.2f}s)",
          file=sys.stderr, flush=True)
    uvicorn.run(simulator.app, host=args.host, port=args.port, log_level=args.log_level, backlog=4096,
                timeout_keep_alive=KEEP_ALIVE_SECONDS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
