"""Running the JavaScript checks in tests/js (real npm packages, installed by `./dev.sh test`)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

JS = Path(__file__).resolve().parents[1] / "js"
INSTALL = "`./dev.sh test` installs it (npm ci in tests/js, Debian's chromium)"


def missing(*packages: str, chromium: bool = False) -> str | None:
    """Why the JS checks cannot run here, or None."""
    if shutil.which("node") is None:
        return f"node is not installed; {INSTALL}"
    for package in packages:
        if not (JS / "node_modules" / package / "package.json").is_file():
            return f"npm package {package} is not installed in tests/js/node_modules; {INSTALL}"
    if chromium and not Path(os.environ.get("CHROMIUM", "/usr/bin/chromium")).is_file():
        return f"chromium is not installed at /usr/bin/chromium; {INSTALL}"
    return None


def run_node(args: list[str], gateway_url: str, timeout: float = 300, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "GATEWAY_URL": gateway_url, "NO_PROXY": "127.0.0.1,localhost", **env}
    return subprocess.run(["node", *args], cwd=JS, env=environment, capture_output=True, text=True, timeout=timeout)
