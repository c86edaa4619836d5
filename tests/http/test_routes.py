"""`cancel_on_disconnect`: a request's work is cancelled when its client leaves, and a cache hit pays for no
watcher."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.http.routes import cancel_on_disconnect


class Connection:
    """What `cancel_on_disconnect` reads of a request: `receive()`, which answers once the client leaves."""

    def __init__(self) -> None:
        self.left = asyncio.Event()
        self.receives = 0
        self.abandoned = 0  # receives cancelled: the watcher stopped

    async def receive(self) -> dict[str, Any]:
        self.receives += 1
        try:
            await self.left.wait()
        except asyncio.CancelledError:
            self.abandoned += 1
            raise
        return {"type": "http.disconnect"}


@pytest.mark.anyio
async def test_work_done_in_its_first_step_is_answered_without_watching_the_connection() -> None:
    async def hit() -> str:
        return "from the cache"

    connection = Connection()
    assert await cancel_on_disconnect(connection, hit()) == "from the cache"  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert connection.receives == 0


@pytest.mark.anyio
async def test_a_client_that_leaves_cancels_work_that_waits() -> None:
    cancelled = asyncio.Event()

    async def miss() -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "ranked"

    connection = Connection()
    outcome = asyncio.ensure_future(cancel_on_disconnect(connection, miss()))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert connection.receives == 1 and not outcome.done()
    connection.left.set()
    assert await asyncio.wait_for(outcome, 2) is None and cancelled.is_set()


@pytest.mark.anyio
async def test_work_that_finishes_while_the_client_stays_is_answered_and_the_watcher_stopped() -> None:
    async def miss() -> str:
        await asyncio.sleep(0.05)
        return "ranked"

    connection = Connection()
    assert await cancel_on_disconnect(connection, miss()) == "ranked"  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    assert connection.receives == connection.abandoned == 1
