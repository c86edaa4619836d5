"""Open-ended HTTP load from a separate process: wrk (Debian's package), driven by a generated Lua script.

wrk is a C load generator, so the load costs little CPU next to the server it
measures (on 2 shared cores that matters: a Python client would take as much
CPU as the gateway). Each run posts one JSON body over `connections`
keep-alive connections for `seconds`, and the script's `done` hook prints the
numbers as one JSON line: requests, errors, requests/s, p50/p90/p99/max latency.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.load import LoadResult

_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local function slurp(path)
  local f = io.open(path, "rb")
  local data = f:read("*a")
  f:close()
  return data
end
wrk.body = slurp("%(body)s")
if %(unique)s then
  -- Every request a new body: the marker in the template becomes a counter (misses, never cache hits).
  local prefix, suffix = slurp("%(body)s.prefix"), slurp("%(body)s.suffix")
  local counter = 0
  request = function()
    counter = counter + 1
    return wrk.format(nil, nil, nil, prefix .. counter .. suffix)
  end
end
local statuses = {}
response = function(status, headers, body)
  if status ~= 200 then statuses[status] = (statuses[status] or 0) + 1 end
end
done = function(summary, latency, requests)
  local bad = 0
  for _, n in pairs(statuses) do bad = bad + n end
  local e = summary.errors
  io.write(string.format(
    '\\nWRK-JSON {"requests": %%d, "seconds": %%f, "non_2xx": %%d, "socket_errors": %%d, ' ..
    '"p50_ms": %%f, "p90_ms": %%f, "p99_ms": %%f, "max_ms": %%f, "mean_ms": %%f, "bytes": %%d}\\n',
    summary.requests, summary.duration / 1e6, bad + e.status, e.connect + e.read + e.write + e.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000, latency.mean / 1000, summary.bytes))
end
"""


def wrk_path() -> str:
    path = shutil.which("wrk")
    if path is None:
        raise SystemExit("wrk is not installed: `./dev.sh bench` installs it (Debian package wrk)")
    return path


UNIQUE = b"@@N@@"  # in a body: replaced by a per-request counter


def run_wrk(url: str, body: bytes, *, seconds: float, connections: int, timeout: float = 30.0) -> LoadResult:
    """POST `body` to `url` as fast as `connections` keep-alive connections allow, for `seconds`.

    A body holding `UNIQUE` is sent with a different number there each time. One wrk
    thread drives every connection (threads would repeat each other's numbers, and one is
    plenty against a Python server).
    """
    threads = 1
    with tempfile.TemporaryDirectory(prefix="rerank-wrk-") as tmp:
        body_path, script = Path(tmp) / "body.json", Path(tmp) / "post.lua"
        body_path.write_bytes(body.replace(UNIQUE, b"0"))
        unique = UNIQUE in body
        if unique:
            prefix, _, suffix = body.partition(UNIQUE)
            Path(f"{body_path}.prefix").write_bytes(prefix)
            Path(f"{body_path}.suffix").write_bytes(suffix)
        script.write_text(_SCRIPT % {"body": str(body_path), "unique": "true" if unique else "false"})
        duration = max(1, round(seconds))
        command = [wrk_path(), f"-t{threads}", f"-c{max(connections, threads)}", f"-d{duration}s",
                   f"--timeout={timeout:g}s", "-s", str(script), url]
        done = subprocess.run(command, capture_output=True, text=True, timeout=duration + timeout + 30)
    for line in done.stdout.splitlines():
        if line.startswith("WRK-JSON "):
            return LoadResult(**json.loads(line.removeprefix("WRK-JSON ")))
    raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]}{done.stderr[-1000:]}")
