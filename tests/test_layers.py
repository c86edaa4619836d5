"""The package is layered, and imports only go down (docs/architecture.md).

    entry       app, server, supervisor,     assemble and run everything
                cli, __main__
    http        gateway.http.*               bodies in, JSON out; knows HTTP, nothing else does
    service     gateway.service              the use case: query in, answer out
    strategies  gateway.strategies.*         ranking methods, prompts, parsing, scoring
    ops         gateway.ops.*                reload, keys, limits, metrics, shedding
    upstream    gateway.upstream.*           the chat-client seam, LiteLLM, the local model, retries
    cache       gateway.cache.*              result caches
    ground      config, errors, offline,     imported by all, importing none of the above
                breaker, validation_messages

A module may import its own package and any layer of a lower rank; layers of
the same rank (strategies and ops, upstream and cache) stay out of each other.
Type-only imports count too: a small Protocol replaces an upward one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gateway"

RANKS = {"ground": 0, "upstream": 1, "cache": 1, "strategies": 2, "ops": 2, "service": 3, "http": 4, "entry": 5}
SUBPACKAGES = {"http", "strategies", "upstream", "cache", "ops"}
GROUND = {"config", "errors", "offline", "breaker", "validation_messages", "__init__"}
ENTRY = {"app", "server", "supervisor", "cli", "__main__"}


def layer(module: str) -> str:
    """The layer of `gateway.<...>` module `module` ("gateway.http.routes" -> "http")."""
    parts = module.split(".")[1:] or ["__init__"]
    if parts[0] in SUBPACKAGES:
        return parts[0]
    if parts[0] == "service":
        return "service"
    if parts[0] in GROUND:
        return "ground"
    if parts[0] in ENTRY:
        return "entry"
    raise AssertionError(f"gateway.{parts[0]} has no layer: add it to tests/test_layers.py and the docs")


def module_name(path: Path) -> str:
    relative = path.relative_to(PACKAGE.parent).with_suffix("")
    return ".".join(relative.parts)


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every gateway import in the file, including nested and TYPE_CHECKING ones."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if alias.name.startswith("gateway")]
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("gateway"):
            # `from gateway.http import routes` imports gateway.http.routes.
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                is_module = (PACKAGE.parent / Path(*candidate.split("."))).with_suffix(".py").exists()
                found.append((node.lineno, candidate if is_module else node.module))
    return found


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "lancedb.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: module_name(p))
def test_imports_only_go_down(path: Path) -> None:
    source = module_name(path)
    own = layer(source)
    for line, target in imported_modules(path):
        if target == "gateway":  # `from gateway import __version__`: the package root is ground
            continue
        theirs = layer(target)
        assert theirs == own or RANKS[theirs] < RANKS[own], (
            f"{path.relative_to(PACKAGE.parent)}:{line}: {source} ({own}) imports {target} ({theirs}), "
            "a layer that is not below its own"
        )


def test_the_lancedb_integration_is_client_side() -> None:
    """`gateway.lancedb` runs in the user's process: it talks HTTP to a gateway and imports none of it."""
    assert imported_modules(PACKAGE / "lancedb.py") == []


def test_every_module_has_a_layer() -> None:
    for path in MODULES:
        layer(module_name(path))


def test_the_check_catches_an_upward_import(tmp_path: Path) -> None:
    """The check itself: a strategy importing the HTTP edge is refused."""
    bad = tmp_path / "bad.py"
    bad.write_text("from gateway.http.protocol import RerankRequest\n")
    [(line, target)] = imported_modules(bad)
    assert layer(target) == "http" and RANKS[layer(target)] > RANKS["strategies"]
