"""The simulator reads prompts as a model would: it imports nothing of the gateway, and ships outside it."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_no_simulator_module_imports_the_gateway_or_the_tests() -> None:
    for path in sorted((ROOT / "simulator").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            for name in names:
                assert name.split(".")[0] not in {"gateway", "tests", "bench"}, f"{path.name}:{node.lineno}: {name}"


def test_the_gateway_wheel_does_not_carry_it() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["packages"] == ["gateway"]
