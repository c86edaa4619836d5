"""`pip install .` without the repo's scripts: the wheel carries the prompts and the license, `local` is an
extra, and an installed copy serves prompts from inside the package."""

from __future__ import annotations

import email
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # The project's own build backend (hatchling, pinned in the test extra), without network or isolation.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, capture_output=True, timeout=300)
    (built,) = out.glob("rerank_gateway-*.whl")
    return built


def test_the_wheel_holds_the_package_prompts_and_license_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {"gateway/_prompts/listwise.toml", "gateway/_prompts/pointwise.toml", "gateway/cli.py"} <= set(names)
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    top = {n.split("/")[0] for n in names}
    assert top == {"gateway", next(t for t in top if t.endswith(".dist-info"))}, top  # no tests/, bench/, docs/


def test_the_metadata_offers_local_as_an_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        meta = email.message_from_bytes(archive.read(next(n for n in archive.namelist() if n.endswith("METADATA"))))
    assert meta["License-Expression"] == "Apache-2.0"
    assert {"local", "test", "compat"} <= set(meta.get_all("Provides-Extra"))
    requires = meta.get_all("Requires-Dist")
    assert any(r.startswith("llama-cpp-python==") and "extra == 'local'" in r for r in requires)
    assert not any(r.startswith(("llama-cpp-python", "pytest", "cohere")) and "extra ==" not in r for r in requires)


def test_an_installed_wheel_finds_its_prompts_inside_the_package(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(target),
                    str(wheel)], check=True, capture_output=True, timeout=300)
    code = ("import gateway, sys; from gateway.strategies.prompts import default_prompts_dir, load_prompts; "
            "d = default_prompts_dir(); print(d); print(sorted(load_prompts(d)))")
    env = {**os.environ, "PYTHONPATH": str(target)}  # the installed copy, not the checkout
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    directory, prompts = result.stdout.splitlines()
    assert Path(directory) == target / "gateway" / "_prompts" and prompts == "['listwise', 'pointwise']"
