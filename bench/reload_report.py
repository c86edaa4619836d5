"""What one phase of `reload_under_load` did: requests by outcome, latency, reloads, versions served, log ERRORs."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field

from bench import report
from bench.load import Sample
from bench.reload_driver import Reload


@dataclass
class PhaseReport:
    run: str
    phase: str
    seconds: float
    sent: int
    ok_2xx: int
    non_2xx: dict[str, int]
    transport_errors: int
    bad_answers: int  # 200s that are not a full ranking
    rps: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    reloads_attempted: int
    reloads_succeeded: int
    reloads_rejected: int
    reloads_unverified: int
    config_version: int | None
    versions_served: list[int]
    log_errors: dict[str, int] = field(default_factory=dict)  # gateway ERROR lines by message, not rejections
    failures: list[str] = field(default_factory=list)  # up to 5 examples

    @property
    def failed(self) -> int:
        return sum(self.non_2xx.values()) + self.transport_errors + self.bad_answers


def log_errors(text: str) -> dict[str, int]:
    """The gateway's ERROR lines in `text`, by message; the expected rejections left out."""
    found: Counter[str] = Counter()
    for line in text.splitlines():
        head, sep, message = line.partition(" ERROR ")
        if sep and "rejected, still serving version" not in message:
            found[message[:80]] += 1
    return dict(found)


def phase_report(run: str, phase: str, samples: list[Sample], t0: float, t1: float, reloads: list[Reload],
                 version: int | None, errors: dict[str, int]) -> PhaseReport:
    mine = [s for s in samples if t0 <= s.start < t1]
    answered = [s for s in mine if s.status is not None]
    non_2xx = Counter(str(s.status) for s in answered if not s.is_2xx)
    bad = [s for s in mine if s.is_2xx and s.error is not None]
    latencies = [s.latency * 1000 for s in answered]
    return PhaseReport(
        run, phase, round(t1 - t0, 1), len(mine), sum(s.good for s in mine), dict(non_2xx),
        len(mine) - len(answered), len(bad), round(len(mine) / (t1 - t0), 1) if t1 > t0 else 0.0,
        round(report.percentile(latencies, 0.50), 1), round(report.percentile(latencies, 0.99), 1),
        round(max(latencies, default=math.nan), 1),
        len(reloads), sum(r.ok is True for r in reloads), sum(r.ok is False for r in reloads),
        sum(not r.verified for r in reloads), version,
        sorted({s.version for s in mine if s.version is not None}), errors,
        [f"{s.status}: {s.error}" for s in mine if s.error is not None][:5],
    )


def table(phases: list[PhaseReport]) -> str:
    header = ["run", "phase", "secs", "sent", "2xx", "non-2xx", "transport", "bad 200", "req/s",
              "p50 ms", "p99 ms", "max ms", "reloads", "ok", "rejected", "unverified", "config v", "v served",
              "log ERRORs"]
    rows = [[p.run, p.phase, f"{p.seconds:.1f}", str(p.sent), str(p.ok_2xx),
             ", ".join(f"{k}:{v}" for k, v in sorted(p.non_2xx.items())) or "0", str(p.transport_errors),
             str(p.bad_answers), f"{p.rps:.1f}", f"{p.p50_ms:.1f}", f"{p.p99_ms:.1f}", f"{p.max_ms:.1f}",
             str(p.reloads_attempted), str(p.reloads_succeeded), str(p.reloads_rejected),
             str(p.reloads_unverified), str(p.config_version), _span(p.versions_served),
             str(sum(p.log_errors.values()))] for p in phases]
    return report.table(header, rows, align="<<")


def _span(versions: list[int]) -> str:
    if not versions:
        return "-"
    return str(versions[0]) if len(versions) == 1 else f"{versions[0]}..{versions[-1]} ({len(versions)})"
