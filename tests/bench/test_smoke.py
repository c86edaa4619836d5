"""Every benchmark, once, in its tiny smoke configuration: none may rot between the runs that measure.

The numbers of a smoke run mean nothing; what is checked is that each benchmark
starts its servers, drives its load, prints a table and writes its JSON and PNG.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.suite import BENCHMARKS
from bench.trec import DATA_DIR
from tests.conftest import ROOT

NEEDS = [
    (shutil.which("wrk") is not None, "wrk is not installed (Debian package wrk; `./dev.sh test` installs it)"),
    (Path(sys.executable).with_name("py-spy").exists() or shutil.which("py-spy") is not None,
     "py-spy is not installed (the bench extra; `./dev.sh test` installs it)"),
    (shutil.which("valgrind") is not None,
     "valgrind is not installed (Debian package valgrind; `./dev.sh test` installs it)"),
    ((DATA_DIR / "dl19-qrels.txt").is_file(), f"TREC DL data not found in {DATA_DIR}"),
]


@pytest.mark.timeout(1800)
def test_every_benchmark_runs_in_its_smoke_configuration(tmp_path: Path) -> None:
    for present, reason in NEEDS:
        if not present:
            pytest.skip(reason)
    done = subprocess.run([sys.executable, "-m", "bench.suite", "--smoke", "--out", str(tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=1700)
    assert done.returncode == 0, done.stdout + done.stderr[-8000:]
    for name in BENCHMARKS:
        assert f"{name} " in done.stdout and "FAILED" not in done.stdout
        written = tmp_path / f"{name}.json"
        assert written.is_file(), f"{name} wrote no JSON"
        json.loads(written.read_text())
    # The suite's own benchmarks also draw their results.
    for name in ("latency", "quality", "cost", "profile", "cpu_per_request", "strategies", "instructions"):
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, f"{name} drew no plot"
