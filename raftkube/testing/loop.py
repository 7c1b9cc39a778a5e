"""An asyncio loop on a thread of its own, so the synchronous `Cluster` can drive async code (the KV client, the
API load balancer) from a plain test."""
from __future__ import annotations

import asyncio
import threading
from typing import Any, Awaitable, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="raftkube-testing", daemon=True)
        self._thread.start()

    def run(self, awaitable: Awaitable[T], timeout: float | None = None) -> T:
        """Run `awaitable` on the loop and wait for its result here."""
        return asyncio.run_coroutine_threadsafe(_wrap(awaitable), self.loop).result(timeout)

    def spawn(self, awaitable: Awaitable[Any]) -> "asyncio.Future[Any]":
        return asyncio.run_coroutine_threadsafe(_wrap(awaitable), self.loop)

    def close(self) -> None:
        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.loop.is_running():
            self.run(cancel_all(), timeout=10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(timeout=10)
        self.loop.close()


async def _wrap(awaitable: Awaitable[T]) -> T:
    return await awaitable
