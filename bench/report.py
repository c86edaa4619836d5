"""From measurements to output: percentiles, spreads over repeated runs, text tables, verdicts, JSON files."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Where `--json` without a path writes; ignored by git.
RESULTS = Path(__file__).resolve().parent / "results"


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest rank: the smallest value that at least a share `q` of the values are at or below; NaN for none."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


@dataclass(frozen=True)
class Spread:
    """One number over repeated runs: on a shared machine the range says more than any single run."""

    low: float
    median: float
    high: float

    def format(self, spec: str = ".1f") -> str:
        return f"{self.low:{spec}} / {self.median:{spec}} / {self.high:{spec}}"


def spread(values: Iterable[float]) -> Spread:
    ordered = sorted(values)
    return Spread(ordered[0], statistics.median(ordered), ordered[-1])


def table(header: Sequence[str], rows: Iterable[Sequence[str]], align: str = "") -> str:
    """Columns as wide as their widest cell, under a dashed rule. `align` has one "<" or ">" per column;
    missing ones mean the first column left-aligned and the rest right-aligned (numbers)."""
    rows = [list(row) for row in rows]
    align = align.ljust(1, "<").ljust(len(header), ">")
    widths = [max(len(row[i]) for row in [list(header), *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        padded = (c.ljust(w) if a == "<" else c.rjust(w) for c, w, a in zip(cells, widths, align, strict=True))
        return "  ".join(padded).rstrip()

    return "\n".join([line(header), "  ".join("-" * w for w in widths), *map(line, rows)])


def verdicts(checks: Iterable[tuple[str, bool]], indent: str = "") -> list[str]:
    return [f"{indent}{'PASS' if passed else 'FAIL'}  {text}" for text, passed in checks]


def write_json(path: Path, payload: Any) -> None:
    """`payload` as indented JSON; dataclasses (spreads) become objects, paths and other odd values strings."""
    def default(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return dataclasses.asdict(value)
        return str(value)

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, default=default))
