"""The one retry policy of the API server's own read-change-write steps."""
from __future__ import annotations

import asyncio
import random
from typing import Awaitable, Callable, TypeVar

from api import errors

T = TypeVar("T")
STALE_BUDGET = 10.0  # seconds a write may keep losing compare-and-swaps to other writers before it gives up


async def retry_stale(attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (read, change, compare-and-swap) again, after a short random pause, while it loses its
    compare-and-swap to another writer (errors.StaleWrite); any other error ends it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + STALE_BUDGET
    pause = 0.002
    while True:
        try:
            return await attempt()
        except errors.StaleWrite:
            if loop.time() > deadline:
                raise
        await asyncio.sleep(random.uniform(0, pause))
        pause = min(pause * 2, 0.1)
