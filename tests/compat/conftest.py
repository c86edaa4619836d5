"""Real rerank client libraries against the real gateway process, changing only their base URL.

Every test here drives a published client (cohere, litellm, voyageai,
langchain-cohere, lancedb) against the session `gateway` fixture from
tests/conftest.py: a real uvicorn process whose default alias `judge` ranks by
query-word overlap through a fake OpenAI-compatible upstream. A client that is
not installed skips its tests; `./dev.sh test` installs them all.

Clients whose only way to change the URL is an environment variable read at
import time (cohere's `CO_API_URL`) run in a fresh Python subprocess, so the
variable is set before the library loads and nothing leaks into this process.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, GatewayProcess

# Loopback must never go through a proxy from the environment (requests and httpx both honour it).
_LOOPBACK = "127.0.0.1,localhost,::1"
for _name in ("NO_PROXY", "no_proxy"):
    os.environ[_name] = ",".join(filter(None, [_LOOPBACK, os.environ.get(_name)]))

API_KEY = "test-key"  # every client insists on a key; the gateway ignores it

# The judge grades a document by how many query words (longer than 2 letters) it contains:
# "capital" and "france" put documents 1 and 2 first, 3 and 4 next, 0 last.
DOCS = [
    "Bananas are yellow fruit.",
    "Paris is the capital of France.",
    "The capital city of France is Paris, on the Seine.",
    "France borders Spain.",
    "Berlin is the capital of Germany.",
]
BEST = {1, 2}


def install_hint(package: str) -> str:
    return f"{package} is not installed; `./dev.sh test` installs it (the compat extra)"


def query(text: str = "capital of France") -> str:
    """A query no earlier request sent, so the gateway's cache does not answer it."""
    return f"{text} {uuid.uuid4().hex[:8]}"


def check_ranking(pairs: Iterable[tuple[int, float]], n_docs: int = len(DOCS), top_n: int | None = None,
                  best: set[int] | None = BEST) -> list[int]:
    """(index, score) pairs in the order the client returned them: a ranked subset of the documents."""
    pairs = [(int(i), float(s)) for i, s in pairs]
    assert len(pairs) == (n_docs if top_n is None else min(top_n, n_docs)), pairs
    indices = [i for i, _ in pairs]
    assert len(set(indices)) == len(indices), f"duplicate indices: {indices}"
    assert all(0 <= i < n_docs for i in indices), f"index out of range: {indices}"
    scores = [s for _, s in pairs]
    assert all(0.0 <= s <= 1.0 for s in scores), f"score outside [0, 1]: {scores}"
    assert scores == sorted(scores, reverse=True), f"scores increase down the list: {scores}"
    if best is not None:
        assert indices[0] in best, f"the judge's best document is not first: {indices}"
    return indices


@pytest.fixture
def base_url(gateway: GatewayProcess) -> str:
    return gateway.url


_ACCESS = re.compile(r"gateway\.access: (?P<line>\{.*\})")


@pytest.fixture
def paths_hit(gateway: GatewayProcess) -> Callable[[], list[str]]:
    """Reads the paths the gateway served since the test started (from its JSON access lines)."""
    start = gateway.log.stat().st_size

    def read() -> list[str]:
        with gateway.log.open("rb") as log:
            log.seek(start)
            text = log.read().decode("utf-8", "replace")
        lines = [json.loads(m["line"]) for m in _ACCESS.finditer(text)]
        return [line["route"] for line in lines if line["method"] == "POST"]

    return read


def run_python(code: str, env: dict[str, str | None], timeout: float = 120) -> Any:
    """Runs `code` in a fresh interpreter with `env` applied (None removes a variable).

    The code prints one JSON value as its last line, which is returned."""
    full_env = {**os.environ, **env}
    full_env = {k: v for k, v in full_env.items() if v is not None}
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], cwd=ROOT, env=full_env,
        capture_output=True, text=True, timeout=timeout,
    )
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture
def subprocess_env(gateway: GatewayProcess, tmp_path: Path) -> Iterator[dict[str, str | None]]:
    """Environment for a subprocess client: warnings are errors there too, and no stray keys or URLs."""
    yield {"PYTHONWARNINGS": "error", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT),
           "CO_API_KEY": None, "COHERE_API_KEY": None, "CO_API_URL": None}


# -- LanceDB -------------------------------------------------------------------------------------

# Rows for a LanceDB table, with duplicated texts (rows 5 and 6 repeat rows 1 and 0). For
# "capital of France" the judge grades rows 1, 2, 5 highest, then 3, 4, then 0, 6, 7.
TABLE_TEXTS = [
    "Bananas are yellow fruit.",
    "Paris is the capital of France.",
    "The capital city of France is Paris, on the Seine.",
    "France borders Spain.",
    "Berlin is the capital of Germany.",
    "Paris is the capital of France.",
    "Bananas are yellow fruit.",
    "The Seine flows through Paris.",
]
TABLE_TIERS = [{1, 2, 5}, {3, 4}, {0, 6, 7}]  # row ids by grade, best first
EMBEDDING_DIMS = 32
_embedding_class: list[Any] = []


def embedding_function() -> Any:
    """A tiny deterministic LanceDB text embedder: hashed bag of words, L2-normalised. No downloads."""
    if not _embedding_class:
        import zlib

        from lancedb.embeddings import TextEmbeddingFunction, get_registry

        @get_registry().register("compat-bag-of-words")
        class BagOfWords(TextEmbeddingFunction):
            def ndims(self) -> int:
                return EMBEDDING_DIMS

            def generate_embeddings(self, texts: Any, *args: Any, **kwargs: Any) -> list[list[float]]:
                vectors = []
                for text in texts:
                    vector = [0.0] * EMBEDDING_DIMS
                    for word in re.findall(r"\w+", str(text).lower()):
                        vector[zlib.crc32(word.encode()) % EMBEDDING_DIMS] += 1.0
                    norm = sum(v * v for v in vector) ** 0.5 or 1.0
                    vectors.append([v / norm for v in vector])
                return vectors

        _embedding_class.append(BagOfWords)
    return _embedding_class[0].create()


@pytest.fixture
def lancedb_table(tmp_path: Path) -> Any:
    """A real LanceDB table in tmp_path: id, text (FTS-indexed) and an embedded vector."""
    lancedb = pytest.importorskip("lancedb", reason=install_hint("lancedb"))
    from lancedb.index import FTS
    from lancedb.pydantic import LanceModel, Vector

    embedder = embedding_function()

    class Row(LanceModel):
        id: int
        text: str = embedder.SourceField()
        vector: Vector(embedder.ndims()) = embedder.VectorField()  # type: ignore[valid-type]

    db = lancedb.connect(tmp_path / "db")
    table = db.create_table("docs", schema=Row)
    table.add([{"id": i, "text": text} for i, text in enumerate(TABLE_TEXTS)])
    # create_fts_index("text") does the same but is deprecated since lancedb 0.25 (a DeprecationWarning).
    table.create_index("text", config=FTS())
    return table
