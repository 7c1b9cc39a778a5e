"""A Raft journal for pysyncobj that is on disk before it counts.

pysyncobj's own FileJournal writes an mmap and never syncs it (docs/pysyncobj.md). This one
implements the same interface with an append-only file: `add` only buffers; `sync` writes the
buffer and fdatasyncs it. The replica calls `sync` before a follower acknowledges entries and at
the end of every tick, before the leader's next commit calculation (kvstore/replica.py), so only
entries that are on disk are counted. Many entries appended in one tick share one fdatasync:
that is our group commit at the disk.

Record layout: u32 length of (idx, term, command) | u32 crc32 of it | u64 idx | u64 term | command.
A torn or corrupt tail (a crash mid-write) is cut off on open.
Term and vote are written to `<path>.meta` as JSON through a synced temporary file and a rename.
"""
from __future__ import annotations

import bisect
import json
import os
import struct
import zlib
from collections import deque

_HEAD = struct.Struct("<II")
_IDX_TERM = struct.Struct("<QQ")


def _fsync_dir(path: str) -> None:
    fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: str, data: bytes) -> None:
    """Replace `path` with `data` so that a crash leaves either the old or the new file."""
    tmp = path + ".tmp"
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as f:
        f.write(data)
    durable_replace(tmp, path)


def durable_replace(tmp: str, path: str) -> None:
    """Rename the finished file `tmp` over `path`, both on disk before this returns: the file's
    data first, then the directory entry. Readable by the owner only."""
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fchmod(fd, 0o600)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path)


def _encode(command: bytes, idx: int, term: int) -> bytes:
    body = _IDX_TERM.pack(idx, term) + bytes(command)
    return _HEAD.pack(len(body), zlib.crc32(body)) + body


class DurableJournal:
    """The interface pysyncobj's SyncObj expects of `createJournal(path)`."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._meta_path = path + ".meta"
        self._entries: list[tuple[bytes, int, int]] = []
        self._ends: list[int] = []  # file offset after each entry
        self._pending = bytearray()
        self._generation = 0  # raised by every write or truncation of the file
        self.synced_generation = 0  # the newest generation an fdatasync has covered
        self._written_up_to: deque[tuple[int, int]] = deque()  # (generation, last index in the file then), unsynced
        self.conflicts = 0  # conflicting suffixes dropped
        self.drops = 0  # entries dropped, by a conflict or a clear: acknowledgements waiting for a sync go stale
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._load()
        self._written = self._end()
        self.durable_index = self.last_index  # entries up to here are on disk (what was read back is)
        self._meta = self._load_meta()
        self._meta_dirty = False

    # -- loading --------------------------------------------------------------------------

    def _load(self) -> None:
        size = os.fstat(self._fd).st_size
        data = os.pread(self._fd, size, 0) if size else b""
        pos = 0
        while pos + _HEAD.size <= len(data):
            length, crc = _HEAD.unpack_from(data, pos)
            body = data[pos + _HEAD.size: pos + _HEAD.size + length]
            if length < _IDX_TERM.size or len(body) != length or zlib.crc32(body) != crc:
                break
            idx, term = _IDX_TERM.unpack_from(body)
            pos += _HEAD.size + length
            self._entries.append((body[_IDX_TERM.size:], idx, term))
            self._ends.append(pos)
        if pos != size:
            os.ftruncate(self._fd, pos)
            os.fsync(self._fd)

    def _load_meta(self) -> dict:
        try:
            with open(self._meta_path, "rb") as f:
                return json.loads(f.read())
        except (OSError, ValueError):
            return {}

    # -- the log --------------------------------------------------------------------------
    #
    # The file holds the log's records up to `_written`; `_pending` holds the bytes that follow
    # them, not yet written. Entries are only ever removed from the end for a real conflict (the
    # replica keeps what a resend repeats, kvstore/log_matching.py) or from the start for a snapshot.

    def _end(self) -> int:
        return self._ends[-1] if self._ends else 0

    @property
    def last_index(self) -> int:
        return self._entries[-1][1] if self._entries else 0

    @property
    def size(self) -> int:
        """Bytes of the log's records (what a restart reads back and applies again)."""
        return self._end()

    def add(self, command: bytes, idx: int, term: int) -> None:
        entry = (bytes(command), idx, term)
        record = _encode(*entry)
        self._pending += record
        self._entries.append(entry)
        self._ends.append(self._end() + len(record))

    def write_out(self) -> int:
        """Hand the log as it stands to the OS; return its generation: it is on disk once an
        fdatasync that started after this call has finished."""
        if self._pending:
            os.pwrite(self._fd, self._pending, self._written)
            self._written += len(self._pending)
            self._pending.clear()
            self._generation += 1
            self._written_up_to.append((self._generation, self.last_index))
        return self._generation

    def needs_sync(self) -> bool:
        return self._generation > self.synced_generation or bool(self._pending)

    def mark_synced(self, generation: int) -> None:
        """An fdatasync that started after `generation` was written has finished: `durable_index` moves on."""
        self.synced_generation = max(self.synced_generation, generation)
        while self._written_up_to and self._written_up_to[0][0] <= generation:
            self.durable_index = max(self.durable_index, self._written_up_to.popleft()[1])

    def fileno(self) -> int:
        return self._fd

    def sync(self) -> None:
        """Make the log durable as it stands, now; cheap when nothing changed."""
        generation = self.write_out()
        if generation > self.synced_generation:
            os.fdatasync(self._fd)
            self.mark_synced(generation)

    def clear(self) -> None:
        self._entries.clear()
        self._ends.clear()
        self._truncate(0)
        os.fsync(self._fd)
        self.mark_synced(self._generation)
        self.durable_index = 0
        self.drops += 1

    def deleteEntriesFrom(self, entryFrom: int) -> None:  # noqa: N802 - pysyncobj's name
        """Drop entries [entryFrom:]: the leader's log differs from there on (Raft §5.3)."""
        if entryFrom >= len(self._entries):
            return
        del self._entries[entryFrom:]
        del self._ends[entryFrom:]
        last = self.last_index  # what follows may come back with other terms: not durable until synced again
        self.durable_index = min(self.durable_index, last)
        self._written_up_to = deque((gen, min(index, last)) for gen, index in self._written_up_to)
        end = self._end()
        if end < self._written:
            self._truncate(end)
        else:
            del self._pending[end - self._written:]
        self.conflicts += 1
        self.drops += 1

    def _truncate(self, end: int) -> None:
        os.ftruncate(self._fd, end)
        self._written = end
        self._pending.clear()
        self._generation += 1

    def catch_up_start(self, pos: int, max_bytes: int, max_entries: int) -> int:
        """Where the log may start once a snapshot covers the entries before offset `pos`, keeping at most
        `max_entries` of those and `max_bytes` bytes of their records (for followers a little behind)."""
        target = (self._ends[pos - 1] if pos > 0 else 0) - max_bytes  # the earliest record start we keep
        first = 0 if target <= 0 else bisect.bisect_left(self._ends, target) + 1
        return min(pos, max(first, pos - max_entries, 0))

    def forget_before(self, pos: int) -> None:
        """Drop entries [:pos] from the log in memory only, a snapshot covering them: the file keeps their
        records until the next `deleteEntriesTo` rewrites it (a restart reads them back and drops them again)."""
        del self._entries[:pos]
        del self._ends[:pos]

    def deleteEntriesTo(self, entryTo: int) -> None:  # noqa: N802
        """Drop entries [:entryTo] (they are in a snapshot now): rewrite the file atomically."""
        keep = self._entries[entryTo:]
        data = b"".join(_encode(*e) for e in keep)
        write_atomically(self._path, data)
        os.close(self._fd)
        self._fd = os.open(self._path, os.O_RDWR)
        self._entries, self._ends = [], []
        self._pending.clear()
        self._written = len(data)
        self._generation += 1
        pos = 0
        for command, idx, term in keep:
            pos += _HEAD.size + _IDX_TERM.size + len(command)
            self._entries.append((command, idx, term))
            self._ends.append(pos)
        self._written_up_to.append((self._generation, self.last_index))
        self.mark_synced(self._generation)  # write_atomically synced it

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self) -> int:
        return len(self._entries)

    def flush(self) -> None:
        self.sync()

    def _destroy(self) -> None:
        self.sync()
        self._save_meta_if_dirty()
        os.close(self._fd)

    # -- meta: commit index (lazily), term and vote (at once) ---------------------------

    def setRaftCommitIndex(self, raftCommitIndex: int) -> None:  # noqa: N802
        self._meta["raftCommitIndex"] = raftCommitIndex
        self._meta_dirty = True

    def getRaftCommitIndex(self) -> int:  # noqa: N802
        return self._meta.get("raftCommitIndex", 1)

    def setCurrentTerm(self, term: int, votedForNodeId) -> None:  # noqa: N802
        """Raft's currentTerm and votedFor must be durable before a vote leaves (Raft fig. 2)."""
        self._meta["currentTerm"] = term
        self._meta["votedForNodeId"] = votedForNodeId
        write_atomically(self._meta_path, json.dumps(self._meta).encode())
        self._meta_dirty = False

    def getCurrentTerm(self) -> int:  # noqa: N802
        return self._meta.get("currentTerm", 0)

    def getVotedForNodeId(self):  # noqa: N802
        return self._meta.get("votedForNodeId")

    def onOneSecondTimer(self) -> None:  # noqa: N802
        self._save_meta_if_dirty()

    def _save_meta_if_dirty(self) -> None:
        if self._meta_dirty:
            write_atomically(self._meta_path, json.dumps(self._meta).encode())
            self._meta_dirty = False
