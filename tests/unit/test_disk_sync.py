"""fdatasync off the event loop: waiters run once their writes are on disk, whatever the journal does meanwhile."""
import asyncio
import os
import threading

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
