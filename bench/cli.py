"""Command-line options the benchmarks share, parsed one way."""

from __future__ import annotations

import argparse
from collections.abc import Collection
from pathlib import Path
from typing import Any

from bench import report, upstream


def parser(doc: str | None) -> argparse.ArgumentParser:
    """A parser whose --help is the benchmark's module docstring: what it measures and how to run it."""
    return argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)


def add_json(parser: argparse.ArgumentParser, name: str) -> None:
    default = report.RESULTS / f"{name}.json"
    parser.add_argument("--json", type=Path, nargs="?", const=default, default=None, metavar="PATH",
                        help=f"also write the results as JSON to PATH (no PATH: bench/results/{name}.json)")


def add_output(parser: argparse.ArgumentParser, name: str) -> None:
    """--json PATH for benchmarks that always write their JSON and a PNG beside it."""
    parser.add_argument("--json", type=Path, default=report.RESULTS / f"{name}.json", metavar="PATH",
                        help=f"where the JSON goes, the PNG beside it (default bench/results/{name}.json)")


def add_keep_logs(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--keep-logs", action="store_true", help="keep the servers' logs and config in /tmp")


def add_repeat(parser: argparse.ArgumentParser, default: int = 1) -> None:
    parser.add_argument("--repeat", type=int, default=default, metavar="N",
                        help=f"measure N times and print min / median / max over the runs (default {default})")


def add_smoke(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--smoke", action="store_true",
                        help="a tiny configuration that only proves the benchmark runs (CI's); numbers mean nothing")


def comma_list(parser: argparse.ArgumentParser, text: str, what: str,
               allowed: Collection[str] | None = None) -> list[str]:
    """"a, b,c" -> ["a", "b", "c"], in order; an argument error for items outside `allowed`."""
    items = [item.strip() for item in text.split(",") if item.strip()]
    if allowed is not None and (bad := [item for item in items if item not in allowed]):
        parser.error(f"unknown {what}(s) {bad}; choose from {', '.join(sorted(allowed))}")
    return items


def as_json(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed options, for a results file: paths as strings, lists kept as lists."""
    return {key: str(value) if isinstance(value, Path) else value for key, value in vars(args).items()}


def add_measuring(parser: argparse.ArgumentParser, name: str, knobs: bool = True) -> None:
    """What every measuring benchmark takes: --repeat (3), --smoke, --json, and which upstream."""
    add_repeat(parser, default=3)
    add_smoke(parser)
    add_output(parser, name)
    upstream.add_options(parser, knobs=knobs)


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    args = parser.parse_args(argv)
    upstream.check_options(parser, args)
    return args
