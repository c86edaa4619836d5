"""PNG charts for the benchmarks (matplotlib, from the `bench` extra), and their progress bars.

Every chart is bars with min-max whiskers: on shared machines the spread over
runs is part of the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bench.report import Spread


def progress(total: int, what: str) -> Any:
    """A progress bar on stderr (tqdm); `.update()` per step, `.set_postfix_str()` for the current one."""
    from tqdm import tqdm

    # disable=None: drawn on a terminal, silent in logs and CI.
    return tqdm(total=total, desc=what, unit="step", dynamic_ncols=True, leave=False, disable=None)


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def bars(path: Path, title: str, labels: Sequence[str], panels: Sequence[tuple[str, Sequence[Spread]]],
         reference: Iterable[float | None] = (), colors: Sequence[str] | None = None) -> Path:
    """Horizontal bars, one panel per (x label, values per label); `reference` draws a dashed line per panel."""
    plt = _pyplot()
    references = list(reference) + [None] * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels) + 2.5, 0.38 * len(labels) + 1.6),
                             sharey=True, squeeze=False)
    positions = list(range(len(labels)))[::-1]
    for ax, (xlabel, values), ref in zip(axes[0], panels, references, strict=False):
        medians = [v.median for v in values]
        whiskers = [[v.median - v.low for v in values], [v.high - v.median for v in values]]
        ax.barh(positions, medians, xerr=whiskers, color=colors or "#4c72b0", alpha=0.85, capsize=2)
        if ref is not None:
            ax.axvline(ref, color="#c44e52", linestyle="--", linewidth=1)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", alpha=0.3)
    axes[0][0].set_yticks(positions, labels, fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
