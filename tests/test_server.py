"""How the process serves: the event loop it runs on, and the heap it leaves the collector."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT


def run(code: str) -> object:
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_server_runs_on_uvloop() -> None:
    assert run("import json, uvloop; from gateway.server import loop_factory; "
               "print(json.dumps(loop_factory() is uvloop.new_event_loop))") is True


def test_start_up_objects_are_frozen_and_collections_are_rarer() -> None:
    # In a child: freezing changes the whole process's collector.
    frozen, thresholds = run("import gc, json; from gateway.server import settle_heap; "
                             "settle_heap(); "
                             "print(json.dumps([gc.get_freeze_count(), list(gc.get_threshold())]))")
    assert frozen > 100_000  # LiteLLM and its SDKs, loaded and warmed up
    assert thresholds[0] >= 10_000
