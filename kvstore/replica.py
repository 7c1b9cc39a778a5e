"""The Raft glue: one pysyncobj replica carrying the MVCC state machine.

What we add around pysyncobj (see PYSYNCOBJ-NOTES.md for why each is needed):
- durability: `DurableJournal` replaces pysyncobj's unsynced mmap journal, and `_SyncingTransport`
  syncs it before any message leaves, so "acknowledged" means "on disk on a majority";
- one replicated method, `apply_batch`, that applies a msgpack list of commands under a lock the
  readers share, and hands the events to `on_applied` (called on the Raft thread);
- security: the cluster secret is always set, and the Raft port binds the `--raft` host only;
- a failpoint (`partitioned`) that drops every Raft message to and from chosen peers, for chaos
  demos without root.

Threading: pysyncobj's tick thread applies commands and runs callbacks. Readers on the event loop
take `lock` around every read of `consumer.machine`.
"""
from __future__ import annotations

import os
import threading
from typing import Any, Callable

import msgpack
import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.transport import TCPTransport

from kvstore.journal import DurableJournal
from kvstore.kv import Event
from kvstore.mvcc import StateMachine

OnApplied = Callable[[list[Event], int], None]


def _create_journal(path: str | None = None):
    if path is None:
        raise ValueError("raftkube replicas always keep a journal on disk")
    return DurableJournal(path)


# pysyncobj builds its journal through this module-level name (pysyncobj 0.3.17, syncobj.py).
_syncobj_module.createJournal = _create_journal


class KVConsumer(SyncObjConsumer):
    """The replicated part of a replica. Attributes set after `super().__init__()` go into snapshots."""

    def __init__(self, on_applied: OnApplied, on_restored: Callable[[], None]) -> None:
        self._on_applied = on_applied
        self._on_restored = on_restored
        self.lock = threading.Lock()
        super().__init__()
        self.machine = StateMachine()

    @replicated
    def apply_batch(self, batch: bytes) -> list[Any]:
        commands = msgpack.unpackb(batch, raw=False)
        results = []
        events: list[Event] = []
        with self.lock:
            for command in commands:
                result, evs = self.machine.apply(command)
                results.append(result)
                events.extend(evs)
            revision = self.machine.revision
        self._on_applied(events, revision)
        return results

    def _deserialize(self, data: dict) -> None:
        """A snapshot replaces the state (restart, or a lagging follower catching up)."""
        with self.lock:
            super()._deserialize(data)
        self._on_restored()


class _SyncingTransport(TCPTransport):
    """Syncs the journal before every message, and drops messages for a partition failpoint."""

    before_send: Callable[[], None] = staticmethod(lambda: None)
    partitioned: frozenset[str] = frozenset()

    def send(self, node, message) -> bool:
        if node.id in self.partitioned:
            return False
        self.before_send()
        return super().send(node, message)

    def _onMessageReceived(self, node, message) -> None:  # noqa: N802 - pysyncobj's name
        if node.id in self.partitioned:
            return
        super()._onMessageReceived(node, message)


class Replica(SyncObj):
    def __init__(self, *, self_addr: str, peers: list[str], data_dir: str, secret: str,
                 on_applied: OnApplied, on_restored: Callable[[], None],
                 on_state_changed: Callable[[int, int], None] | None = None,
                 snapshot_entries: int = 20_000, timing: dict[str, float] | None = None) -> None:
        os.makedirs(data_dir, exist_ok=True)
        self.consumer = KVConsumer(on_applied, on_restored)
        timing = {**DEFAULT_TIMING, **(timing or {})}
        conf = SyncObjConf(
            password=secret,
            bindAddress=self_addr,
            journalFile=os.path.join(data_dir, "raft.journal"),
            fullDumpFile=os.path.join(data_dir, "raft.snapshot"),
            appendEntriesUseBatch=False,  # send entries as they come, not on the next heartbeat
            commandsWaitLeader=False,  # fail fast with MISSING_LEADER; the Store retries
            dynamicMembershipChange=True,
            onStateChanged=on_state_changed,
            logCompactionMinEntries=snapshot_entries,
            logCompactionMinTime=300,
            **timing,
        )
        super().__init__(self_addr, peers, conf, consumers=[self.consumer],
                         transportClass=_SyncingTransport)
        # Nothing may be stored on self from here on: pysyncobj snapshots every attribute added
        # after its __init__, and a transport does not pickle.
        journal = self._SyncObj__raftLog  # pysyncobj 0.3.17 keeps both private
        self._SyncObj__transport.before_send = journal.sync
        self.addOnTickCallback(journal.sync)  # covers a 1-master cluster, which sends nothing

    def set_partitioned(self, peers: set[str]) -> None:
        """Failpoint: behave as if the network to these peers (raft addresses) were cut."""
        self._SyncObj__transport.partitioned = frozenset(peers)

    def partitioned_peers(self) -> frozenset[str]:
        return self._SyncObj__transport.partitioned


DEFAULT_TIMING = {
    "raftMinTimeout": 0.3,
    "raftMaxTimeout": 0.6,
    "appendEntriesPeriod": 0.05,
    "autoTickPeriod": 0.01,
    "connectionTimeout": 1.5,
    "connectionRetryTime": 0.3,
    "leaderFallbackTimeout": 1.0,
}
