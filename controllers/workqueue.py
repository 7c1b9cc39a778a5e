"""A workqueue of object keys, as client-go's: a key waits at most once, is worked on by one worker at a time,
and a key whose sync failed comes back after an exponential backoff (capped), so a failing object never spins.

    key = await queue.get()
    try:
        await sync(key); queue.forget(key)
    except Exception:
        queue.retry(key)
    finally:
        queue.done(key)
"""
from __future__ import annotations

import asyncio


class WorkQueue:
    def __init__(self, base_delay: float = 0.005, max_delay: float = 30.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._ready: asyncio.Queue[str] = asyncio.Queue()
        self._dirty: set[str] = set()  # waiting to be worked on
        self._processing: set[str] = set()  # a worker has it now
        self._failures: dict[str, int] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def __len__(self) -> int:
        return len(self._dirty)

    def add(self, key: str) -> None:
        if key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:  # otherwise done() queues it again
            self._ready.put_nowait(key)

    def add_after(self, key: str, delay: float) -> None:
        """Add the key after `delay` seconds (an earlier pending add_after for it wins)."""
        if delay <= 0:
            self.add(key)
            return
        loop = asyncio.get_running_loop()
        timer = self._timers.get(key)
        due = loop.time() + delay
        if timer is not None and not timer.cancelled() and timer.when() <= due:
            return
        if timer is not None:
            timer.cancel()
        self._timers[key] = loop.call_at(due, self._fire, key)

    def _fire(self, key: str) -> None:
        self._timers.pop(key, None)
        self.add(key)

    def retry(self, key: str) -> float:
        """The key failed: add it back after its backoff (base * 2^failures, capped). Returns the delay."""
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        delay = min(self.base_delay * 2 ** failures, self.max_delay)
        self.add_after(key, delay)
        return delay

    def forget(self, key: str) -> None:
        """The key synced: its next failure starts the backoff from the beginning."""
        self._failures.pop(key, None)

    async def get(self) -> str:
        key = await self._ready.get()
        self._dirty.discard(key)
        self._processing.add(key)
        return key

    def done(self, key: str) -> None:
        self._processing.discard(key)
        if key in self._dirty:  # added again while it was being worked on
            self._ready.put_nowait(key)

    def shutdown(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
