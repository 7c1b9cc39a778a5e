"""The durable Raft journal: what is synced survives, a torn tail is cut, compaction rewrites safely."""
import os

from kvstore.journal import DurableJournal, durable_replace


def entries(j):
    return [j[i] for i in range(len(j))]


def synced(path, n, prefix=b"c"):
    """A journal at `path` holding entries 1..n of term 1, on disk."""
    j = DurableJournal(path)
    for i in range(1, n + 1):
        j.add(prefix + b"%d" % i, i, 1)
    j.sync()
    return j


def test_synced_entries_come_back_after_reopening(tmp_path):
    path = str(tmp_path / "raft.journal")
    j = synced(path, 5, b"cmd")
    j.setCurrentTerm(3, "127.0.0.1:7002")
    j._destroy()
    again = DurableJournal(path)
    assert entries(again) == [(b"cmd%d" % i, i, 1) for i in range(1, 6)]
    assert again.getCurrentTerm() == 3 and again.getVotedForNodeId() == "127.0.0.1:7002"


def test_unsynced_entries_never_reach_the_file(tmp_path):
    path = str(tmp_path / "raft.journal")
    j = DurableJournal(path)
    j.add(b"a", 1, 1)
    j.sync()
    j.add(b"b", 2, 1)  # buffered: a crash now loses it, and nobody was told it was stored
    assert os.path.getsize(path) > 0
    assert entries(DurableJournal(path)) == [(b"a", 1, 1)]


def test_a_torn_tail_is_cut_on_open(tmp_path):
    path = str(tmp_path / "raft.journal")
    j = DurableJournal(path)
    j.add(b"whole", 1, 1)
    j.add(b"torn", 2, 1)
    j.sync()
    size = os.path.getsize(path)
    with open(path, "r+b") as f:
        f.truncate(size - 2)  # a crash in the middle of writing the last record
    again = DurableJournal(path)
    assert entries(again) == [(b"whole", 1, 1)]
    again.add(b"next", 2, 2)
    again.sync()
    assert entries(DurableJournal(path)) == [(b"whole", 1, 1), (b"next", 2, 2)]


def test_delete_from_and_to_rewrite_the_file(tmp_path):
    path = str(tmp_path / "raft.journal")
    j = DurableJournal(path)
    for i in range(1, 11):
        j.add(b"c%d" % i, i, 1)
    j.deleteEntriesFrom(8)  # a conflicting suffix from an old term
    j.add(b"new9", 9, 2)
    j.deleteEntriesTo(3)  # the prefix is in a snapshot now
    j.sync()
    expected = [(b"c%d" % i, i, 1) for i in range(4, 9)] + [(b"new9", 9, 2)]
    assert entries(j) == expected
    assert entries(DurableJournal(path)) == expected


def test_a_snapshot_trim_keeps_what_fits_in_the_catch_up_allowance(tmp_path):
    j = synced(str(tmp_path / "raft.journal"), 10, b"c")  # records of equal size
    record = j._ends[0]
    assert j.catch_up_start(8, max_bytes=10 * record, max_entries=3) == 5  # the entry count binds
    assert j.catch_up_start(8, max_bytes=2 * record, max_entries=100) == 6  # the bytes bind
    assert j.catch_up_start(8, max_bytes=2 * record - 1, max_entries=100) == 7  # a record kept whole or not at all
    assert j.catch_up_start(8, max_bytes=100 * record, max_entries=100) == 0  # everything fits
    assert j.catch_up_start(8, max_bytes=0, max_entries=0) == 8  # nothing kept: pysyncobj's own trim
    assert j.catch_up_start(0, max_bytes=100, max_entries=100) == 0


def test_entries_set_aside_in_memory_stay_in_the_file_until_a_rewrite(tmp_path):
    """A restart sets aside the entries its snapshot covers (kvstore/replica.py, _snapshot_read) without
    rewriting the file on its way up; what it appends after them and a later conflict still land right."""
    path = str(tmp_path / "raft.journal")
    j = synced(path, 6)
    j.forget_before(3)
    j.add(b"c7", 7, 1)
    j.add(b"c8", 8, 1)
    j.sync()
    j.deleteEntriesFrom(4)  # offset 4 in memory: index 8
    j.add(b"new8", 8, 2)
    j.sync()
    assert entries(j) == [(b"c4", 4, 1), (b"c5", 5, 1), (b"c6", 6, 1), (b"c7", 7, 1), (b"new8", 8, 2)]
    assert entries(DurableJournal(path)) == [(b"c%d" % i, i, 1) for i in range(1, 8)] + [(b"new8", 8, 2)]
    j.deleteEntriesTo(2)  # the next snapshot's trim rewrites the file from memory
    assert entries(DurableJournal(path)) == entries(j) == [(b"c6", 6, 1), (b"c7", 7, 1), (b"new8", 8, 2)]


def test_a_conflict_cuts_the_file_and_counts(tmp_path):
    """Only a real conflict removes entries from the end (the replica keeps resent ones: log_matching.py)."""
    path = str(tmp_path / "raft.journal")
    j = synced(path, 5)
    j.deleteEntriesFrom(3)  # the new leader's log differs from entry 4 on
    j.add(b"x4", 4, 2)
    j.sync()
    assert j.conflicts == 1
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1), (b"c3", 3, 1), (b"x4", 4, 2)]


def test_deleting_past_the_end_is_no_conflict(tmp_path):
    j = synced(str(tmp_path / "raft.journal"), 3)
    j.deleteEntriesFrom(3)
    assert j.conflicts == 0 and len(j) == 3


def test_a_dropped_tail_does_not_come_back_after_a_sync(tmp_path):
    path = str(tmp_path / "raft.journal")
    j = synced(path, 4)
    j.deleteEntriesFrom(2)
    j.sync()
    assert entries(DurableJournal(path)) == [(b"c1", 1, 1), (b"c2", 2, 1)]


def test_a_snapshot_is_on_disk_before_it_replaces_the_old_one_and_its_name_after(tmp_path, monkeypatch):
    """The journal trim that follows a snapshot relies on it: the file's data, then the rename itself."""
    path, tmp = str(tmp_path / "raft.snapshot"), str(tmp_path / "raft.snapshot.tmp")
    with open(tmp, "wb") as f:
        f.write(b"state")
    calls = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
                        or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: calls.append(("replace", b)) or real_replace(a, b))
    durable_replace(tmp, path)
    assert calls == [("fsync", tmp), ("replace", path), ("fsync", str(tmp_path))]
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_the_durable_index_moves_only_with_a_sync_that_covers_it(tmp_path):
    """The leader counts itself in a majority only up to `durable_index` (kvstore/replica.py)."""
    j = synced(str(tmp_path / "raft.journal"), 3)
    assert j.durable_index == 3
    j.add(b"c4", 4, 1)
    first = j.write_out()
    j.add(b"c5", 5, 1)
    second = j.write_out()
    assert j.durable_index == 3  # written, not synced
    j.mark_synced(first)
    assert j.durable_index == 4
    j.deleteEntriesFrom(3)  # a conflict drops 4 and 5; 4 comes back with another term, not yet synced
    j.add(b"c4'", 4, 2)
    j.write_out()
    assert j.durable_index == 3
    j.mark_synced(second)  # that sync covered the old 4 and 5, not the new 4
    assert j.durable_index == 3
    j.sync()
    assert j.durable_index == 4
    assert DurableJournal(str(tmp_path / "raft.journal")).durable_index == 4


def test_a_clear_drops_entries_as_a_conflict_does(tmp_path):
    """What an acknowledgement waiting for its sync checks before it leaves (_Pacer.ack_when_durable): were any
    entries dropped meanwhile, by a conflict or by a snapshot from the leader that cleared the journal."""
    j = synced(str(tmp_path / "raft.journal"), 5)
    j.deleteEntriesFrom(3)
    assert (j.conflicts, j.drops) == (1, 1)
    j.clear()
    assert (j.conflicts, j.drops) == (1, 2)
