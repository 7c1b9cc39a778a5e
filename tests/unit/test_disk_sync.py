"""fdatasync off the event loop: waiters run once their writes are on disk, whatever the journal does meanwhile."""
import asyncio
import os
import threading
import time

from kvstore import disk_sync
from kvstore.disk_sync import DiskSync
from kvstore.journal import DurableJournal


async def test_a_journal_trim_during_a_sync_does_not_fail_the_disk(tmp_path, monkeypatch):
    """A snapshot's trim rewrites the journal and closes its descriptor while the sync thread may be using
    it: that sync must not end in EBADF (which would stop this master acknowledging anything, for good)."""
    journal = DurableJournal(str(tmp_path / "raft.journal"))
    disk = DiskSync(journal, asyncio.get_running_loop())
    journal_fd = journal.fileno()
    release, synced = threading.Event(), threading.Event()
    real_fdatasync, real_close = os.fdatasync, os.close

    def slow_fdatasync(fd):
        release.wait(5)
        try:
            real_fdatasync(fd)
        finally:
            synced.set()

    def close(fd):  # the sync runs just after the journal closed its descriptor, before it reopens the file
        real_close(fd)
        if fd == journal_fd:
            release.set()
            synced.wait(5)

    monkeypatch.setattr(os, "fdatasync", slow_fdatasync)
    monkeypatch.setattr(os, "close", close)
    for i in range(1, 5):
        journal.add(b"c%d" % i, i, 1)
    done = asyncio.Event()
    disk.when_durable(done.set)
    await asyncio.sleep(0.05)  # the thread waits inside fdatasync now
    journal.deleteEntriesTo(2)  # closes the descriptor the sync started with, and reopens the file
    await asyncio.wait_for(done.wait(), 5)
    assert not disk.failed
    journal.add(b"c5", 5, 1)
    more = asyncio.Event()
    disk.when_durable(more.set)
    await asyncio.wait_for(more.wait(), 5)
    assert [journal[i][1] for i in range(len(journal))] == [3, 4, 5]
    disk.close()


async def test_the_loop_waits_briefly_for_a_fast_sync_and_never_for_a_stuck_disk(tmp_path, monkeypatch):
    """A sync that ends within BRIEF_WAIT is finished before when_durable returns (no turn of the loop, no GIL
    fight with the sync thread); one that does not is left to the thread, and the loop does not wait again until a
    sync is fast again: a stuck disk costs the loop one BRIEF_WAIT, never the length of the stall."""
    monkeypatch.setattr(disk_sync, "BRIEF_WAIT", 0.2)  # room for a busy machine to wake the sync thread
    journal = DurableJournal(str(tmp_path / "raft.journal"))
    disk = DiskSync(journal, asyncio.get_running_loop())
    stuck = threading.Event()
    release = threading.Event()

    def fdatasync(fd):  # a disk that answers at once, until it is stuck
        if stuck.is_set():
            release.wait(5)

    monkeypatch.setattr(os, "fdatasync", fdatasync)

    async def sync(index: int) -> bool:
        """Write an entry and ask for it on disk; True if it was on disk when when_durable returned."""
        journal.add(b"c%d" % index, index, 1)
        done = asyncio.Event()
        disk.when_durable(done.set)
        at_once = done.is_set()
        await asyncio.wait_for(done.wait(), 5)
        return at_once

    assert await sync(1)
    stuck.set()
    journal.add(b"c2", 2, 1)
    done = asyncio.Event()
    started = time.monotonic()
    disk.when_durable(done.set)
    assert time.monotonic() - started < 1.0 and not done.is_set()  # back while the disk is still stuck
    stuck.clear()
    release.set()
    await asyncio.wait_for(done.wait(), 5)
    assert not await sync(3)  # the last sync was slow: not waited for, though this one is fast
    assert await sync(4)  # and the one after a fast one is waited for again
    disk.close()
