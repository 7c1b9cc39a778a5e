"""fdatasync off the event loop: callers wait for their journal generation to be on disk.

A sync takes a fraction of a millisecond to a few milliseconds, and a stalling disk can take seconds: on the
event loop that would stall every request of this master and, on a leader, its heartbeats. Here the loop hands
the journal's writes to the OS, one thread runs fdatasync, and each waiter's callback runs on the loop once an
fdatasync that started after its writes has finished. Waiters that arrive during a sync share the next one: group
commit.

The loop then waits for the sync it started, for at most BRIEF_WAIT, and finishes it there if it is done: while
the loop waits it holds no GIL the sync thread needs, whereas a loop that ran on fought the thread for the GIL at
every socket call as the sync ended (a leader's first acknowledgement took 100-200 us more to read). Leader CPU per
put fell 12-25% (bench/README.md). A sync that outlasts the wait finishes on the loop's next turn as usual, and the
loop stops waiting until a sync takes less than BRIEF_WAIT again: a slow disk costs the loop one BRIEF_WAIT.
A follower, whose acknowledgement waits for the sync anyway, calls `sync_here` instead when no sync is running:
no thread at all, at the price of its loop for the length of that sync.

The skip-fsync lab (`fsync=False`, kvstore/mechanisms.py) answers every waiter at once, as if its writes were on
disk. kill -9 of a process loses nothing it handed to the kernel, so to stand for a power cut the journal's bytes
stay in this process (the page cache a power cut loses) until a writeback every WRITEBACK seconds, as the kernel's
flusher thread would write them, still without fdatasync.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor, TimeoutError as FutureTimeout
from typing import Callable

from kvstore.journal import DurableJournal

log = logging.getLogger("raftkube.disk")

WRITEBACK = 5.0  # seconds between writebacks in the skip-fsync lab (Linux's vm.dirty_writeback_centisecs)
BRIEF_WAIT = 0.002  # seconds the loop waits for a sync it started, while syncs take less


class DiskSync:
    def __init__(self, journal: DurableJournal, loop: asyncio.AbstractEventLoop, *, fsync: bool = True) -> None:
        self.journal = journal
        self.loop = loop
        self.fsync = fsync
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="fdatasync")
        self._waiters: list[tuple[int, Callable[[], None]]] = []
        self._running = False
        self._wait_briefly = True  # the last sync took less than BRIEF_WAIT
        self.failed = False
        self._writeback = None if fsync else loop.call_later(WRITEBACK, self._write_back)

    def needs_sync(self) -> bool:
        """Does the journal hold entries that no fdatasync has covered yet?"""
        return self.fsync and self.journal.needs_sync()

    def when_durable(self, callback: Callable[[], None]) -> None:
        """Run `callback` on the loop once everything written so far is on disk."""
        if not self.fsync:  # the skip-fsync lab: pretend
            callback()
            return
        generation = self.journal.write_out()
        if generation <= self.journal.synced_generation:
            callback()
            return
        self._waiters.append((generation, callback))
        self._maybe_start()

    @property
    def busy(self) -> bool:
        return self._running

    def sync_here(self) -> bool:
        """fdatasync on the calling thread (the loop) when no sync is running: no hand-off to the thread and back.
        False if one is running (then use when_durable)."""
        if self._running or self.failed or not self.fsync:
            return False
        target = self.journal.write_out()
        if target > self.journal.synced_generation:
            try:
                os.fdatasync(self.journal.fileno())
            except OSError as error:
                self._failed(error)
                return False
            self.journal.mark_synced(target)
        self._release()
        return True

    def _maybe_start(self) -> None:
        if self._running or not self._waiters or self.failed:
            return
        self._running = True
        target = self.journal.write_out()
        # Our own descriptor: the journal may close and reopen its file (a trim after a snapshot)
        # while the thread syncs; syncing the old file then is harmless, a closed descriptor is not.
        fd = os.dup(self.journal.fileno())
        future = self._thread.submit(_timed_fdatasync, fd)
        if self._wait_briefly:
            try:
                future.exception(timeout=BRIEF_WAIT)
            except FutureTimeout:
                self._wait_briefly = False
        if future.done():
            self._done(future, target, fd)
        else:
            asyncio.wrap_future(future, loop=self.loop).add_done_callback(lambda _: self._done(future, target, fd))

    def _done(self, future: Future, target: int, fd: int) -> None:
        self._running = False
        os.close(fd)
        error = future.exception()
        if error is not None:
            self._failed(error)
            return
        self._wait_briefly = future.result() < BRIEF_WAIT
        self.journal.mark_synced(target)
        self._release()
        self._maybe_start()

    def _release(self) -> None:
        ready = [cb for gen, cb in self._waiters if gen <= self.journal.synced_generation]
        self._waiters = [(gen, cb) for gen, cb in self._waiters if gen > self.journal.synced_generation]
        for callback in ready:
            callback()

    def _failed(self, error: BaseException) -> None:
        """The disk refused: nothing more can be acknowledged (etcd stops the member too)."""
        log.critical("fdatasync of the Raft journal failed: %s; this master acknowledges nothing more", error)
        self.failed = True

    def _write_back(self) -> None:
        self.journal.write_out()
        self._writeback = self.loop.call_later(WRITEBACK, self._write_back)

    def close(self) -> None:
        if self._writeback is not None:
            self._writeback.cancel()
        self._thread.shutdown(wait=True)


def _timed_fdatasync(fd: int) -> float:
    """On the sync thread: how long the fdatasync took."""
    started = time.monotonic()
    os.fdatasync(fd)
    return time.monotonic() - started
