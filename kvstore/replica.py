"""The Raft glue: one pysyncobj replica carrying the MVCC state machine, on the asyncio loop.

What we add around pysyncobj (docs/pysyncobj.md says why each is needed):
- one thread: pysyncobj runs without its tick thread. Its sockets are watched by the event loop
  (`LoopPoller`), and `Replica` runs a tick after socket events, after new proposals, and every
  `TICK_PERIOD` for timeouts. Apply, callbacks, reads and HTTP handlers never run at the same
  time, so the state machine needs no lock and no hand-over between threads costs latency;
- durability: `DurableJournal` replaces pysyncobj's unsynced mmap journal; a follower's
  acknowledgement waits until its entries are on disk (`_SyncingTransport`), and the
  leader counts itself in a commit only up to its own durable index (`_Pacer`): acknowledged means
  on disk on a majority. The leader syncs off the loop (`DiskSync`) while it goes on sending; a
  follower syncs on the loop when no sync is running, since its acknowledgement waits for it;
- group commit: the leader sends what a tick appended in one message per follower (`_Pacer`);
- linearizable reads by ReadIndex (read_index.py): the leader confirms it still leads with one
  message to each follower and back, and the read waits until its replica has applied the index;
- one replicated method, `apply_batch`, that applies a msgpack list of commands and hands the
  events to `on_applied`;
- security: the cluster secret is always set, and the Raft port binds the `--raft` host only;
- a failpoint (`set_partitioned`) that drops every Raft message to and from chosen peers, for
  chaos demos without root.
"""
from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import logging
import math
import os
import signal
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator, NoReturn

import msgpack
import pysyncobj.serializer as _serializer_module
import pysyncobj.syncobj as _syncobj_module
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.monotonic import monotonic as raft_clock  # CLOCK_MONOTONIC_RAW: not time.monotonic's clock
from pysyncobj.node import Node
from pysyncobj.poller import POLL_EVENT_TYPE, Poller
from pysyncobj.syncobj import _COMMAND_TYPE, _RAFT_STATE
from pysyncobj.transport import TCPTransport

from kvstore import log_matching, prevote, raft_encoding, read_index
from kvstore.disk_sync import DiskSync
from kvstore.journal import DurableJournal, durable_replace
from kvstore.kv import Event
from kvstore.lessor import Lessor
from kvstore.mechanisms import ALL, Mechanisms
from kvstore.member_identity import MemberIdentity
from kvstore.mvcc import StateMachine

log = logging.getLogger("raftkube.replica")

OnApplied = Callable[[list[Event], int], None]
# pysyncobj sends an entry of appendEntriesBatchSizeBytes or more in pieces ("transmission"), and its sender
# marks the last piece by the command's length rather than the pickled entry's, so a follower may unpickle half
# an entry. Entries stay far below this (a batch is at most 4 MiB, one request at most store.MAX_COMMAND_BYTES):
# every entry goes whole, in a message of up to this many bytes of entries.
MAX_MESSAGE_BYTES = 32 << 20
TICK_PERIOD = 0.01  # seconds between ticks when nothing happens: election and heartbeat timers
REFUSAL_GRACE = 1.5  # seconds a refused master waits for a leader to take it before it stops (Replica._refuse)
PRE_VOTE_MARGIN = 0.05  # seconds: an election timer this close to running out is run out for the pre-vote


@dataclass
class _Watched:
    fd: int  # our duplicate of pysyncobj's descriptor
    callback: Callable[[int, int], None]
    writing: bool = False


class LoopPoller(Poller):
    """pysyncobj's poller interface on the asyncio loop: the loop watches the sockets and calls
    pysyncobj's handlers; `poll` has nothing left to do. After every event, `after_event` runs
    (the replica schedules a tick there).

    The loop watches a duplicate of each descriptor: pysyncobj closes a socket before it
    unsubscribes it, and the loop cannot stop watching a descriptor that is already closed."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.after_event: Callable[[], None] = lambda: None
        self._watched: dict[int, _Watched] = {}

    def subscribe(self, descr: int, callback: Callable[[int, int], None], eventMask: int) -> None:  # noqa: N803
        w = self._watched.get(descr)
        if w is None:
            w = self._watched[descr] = _Watched(os.dup(descr), callback)
            self.loop.add_reader(w.fd, self._fire, descr, POLL_EVENT_TYPE.READ)  # pysyncobj always reads
        w.callback = callback
        writing = bool(eventMask & POLL_EVENT_TYPE.WRITE)
        if writing and not w.writing:
            self.loop.add_writer(w.fd, self._fire, descr, POLL_EVENT_TYPE.WRITE)
        elif w.writing and not writing:
            self.loop.remove_writer(w.fd)
        w.writing = writing

    def unsubscribe(self, descr: int) -> None:
        w = self._watched.pop(descr, None)
        if w is not None:
            self.loop.remove_reader(w.fd)
            self.loop.remove_writer(w.fd)
            os.close(w.fd)

    def poll(self, timeout: float) -> None:
        """Nothing to wait for: the loop delivers events as they come."""

    def _fire(self, descr: int, event: int) -> None:
        w = self._watched.get(descr)
        if w is not None:
            w.callback(descr, event)
        self.after_event()


def _create_journal(path: str | None = None) -> DurableJournal:
    if path is None:
        raise ValueError("raftkube replicas always keep a journal on disk")
    return DurableJournal(path)


def _create_poller(poller_type: str) -> LoopPoller:
    return LoopPoller(asyncio.get_running_loop())


# pysyncobj builds its journal and poller through these module-level names (0.3.17, syncobj.py), and
# renames a finished snapshot (in the forked child that writes it, or as a follower receives one) with
# `atomicReplace`: ours syncs the file and its directory first, since the journal trim that follows
# relies on the snapshot being on disk.
_syncobj_module.createJournal = _create_journal
_syncobj_module.createPoller = _create_poller
_serializer_module.atomicReplace = durable_replace

raft_encoding.install()  # cheaper messages, pickles and snapshots (kvstore/raft_encoding.py)


class KVConsumer(SyncObjConsumer):
    """The replicated part of a replica. Attributes set after `super().__init__()` go into snapshots."""

    def __init__(self, on_applied: OnApplied, on_restored: Callable[[], None], lessor: Lessor) -> None:
        self._on_applied = on_applied
        self._on_restored = on_restored
        self.lessor = lessor  # this master's lease deadlines: not replicated, not in snapshots
        super().__init__()
        self.machine = StateMachine()

    @replicated
    def apply_batch(self, batch: bytes) -> list[Any]:
        results = []
        events: list[Event] = []
        for command in msgpack.unpackb(batch, raw=False):
            result, evs = self.machine.apply(command)
            results.append(result)
            events.extend(evs)
            if isinstance(result, dict) and result.get("lease_refreshed"):
                self.lessor.refreshed(result["id"], result["ttl"])
        self._on_applied(events, self.machine.revision)
        return results

    def _deserialize(self, data: dict) -> None:
        """A snapshot replaces the state (restart, or a lagging follower catching up)."""
        super()._deserialize(data)
        self._on_restored()


class SnapshotUnreadable(Exception):
    """A snapshot did not load: the replica stops (`Replica._snapshot_unreadable`)."""


class _SyncingTransport(TCPTransport):
    """Holds a follower's acknowledgements until the entries are on disk; drops messages for a
    partition failpoint.

    A leader's append_entries that carries no entries, sent only because the commit index moved
    (`Replica.send_commit_index`), is marked `noack`, and the follower sends back no success for it:
    that answer would tell the leader nothing it does not know (the follower's log did not change),
    yet it cost both sides a message on every commit. A follower still answers a mismatch, and every
    heartbeat and every message with entries, so the leader's next and match indexes and its
    CheckQuorum clock (pysyncobj's last response times) move as before. An older follower ignores
    the mark and answers.

    During a tick, a leader holds its answers to the commands followers forwarded ("apply_command_response":
    the index each got) and sends them after the tick (`held_answers`), so that the tick's append_entries,
    which carry those commands to the followers' disks, leave first. An answer still precedes, on the same
    connection, every message that could tell that follower the index is committed: those leave in a later
    tick (an answer for an index the follower has already applied is, to pysyncobj, an unknown outcome: the
    Store would propose the command again)."""

    ack_when_durable: Callable[[Any, dict], None] | None = None
    current_term: Callable[[], int] = staticmethod(lambda: 0)  # the replica's, stamped on its answers
    partitioned: frozenset[str] = frozenset()
    member_id: str | None = None  # carried by every message (member_identity.py)

    def __init__(self, *args, **kwargs) -> None:
        self.marking_noack = False  # a leader: mark the entry-less append_entries it sends now
        self.held: list[tuple[Any, dict]] | None = None  # a leader, during a tick: its answers to forwarded commands
        self.holding_success = False  # a follower: send no success for the noack message it handles now
        self.refused: set[str] = set()  # peers whose last message we refused: they get only why (Replica._refuse)
        self.known_members: dict[str, str] = {}  # the ids a leader knows, carried by its append_entries
        super().__init__(*args, **kwargs)

    def send(self, node, message) -> bool:
        if node.id in self.partitioned:
            return False
        kind = message.get("type")
        if node.id in self.refused and kind != "member_refused":
            return False
        if self.held is not None and kind == "apply_command_response":
            self.held.append((node, message))
            return True
        if kind == "next_node_idx":
            message["term"] = self.current_term()  # which term's append_entries it answers (see Replica)
            if message.get("success") and self.holding_success:
                return True
            if message.get("success") and self.ack_when_durable:
                self.ack_when_durable(node, message)  # "I have your entries up to N": on disk first
                return True
        return self.send_now(node, message)

    def send_now(self, node, message) -> bool:
        if node.id in self.partitioned:
            return False
        message["mid"] = self.member_id
        if message.get("type") == "append_entries":  # a leader's: who it knows at each address
            message["mids"] = self.known_members
            if self.marking_noack and not message.get("entries"):
                message["noack"] = True
        return super().send(node, message)

    @contextlib.contextmanager
    def held_answers(self) -> Iterator[None]:
        """Send the answers to forwarded commands when the block ends, after what it sent itself."""
        self.held = []
        try:
            yield
        finally:
            held, self.held = self.held, None
            for node, message in held:
                self.send(node, message)

    def _onMessageReceived(self, node, message) -> None:  # noqa: N802 - pysyncobj's name
        if node.id in self.partitioned:
            return
        super()._onMessageReceived(node, message)

    def _onNodeConnected(self, node) -> None:  # noqa: N802 - pysyncobj's name
        """Say who we are at once: in Raft two followers may never exchange a message, yet each must
        know the other's member id to refuse an impostor after a wipe (member_identity.py)."""
        super()._onNodeConnected(node)
        self.send(node, {"type": "hello"})


class _Pacer:
    """When the replica ticks, and what it does after each tick.

    After every tick (once pysyncobj has appended every queued command), the leader sends the
    new entries and the new commit index to the followers in one message each, then the journal
    is synced off the loop (`DiskSync`). The leader ticks on while its sync runs (Raft thesis
    §10.2.1): it takes new commands, sends them, and commits what a majority holds on disk,
    counting itself only up to its own durable index (`Replica.durable_commit_view`). A follower
    ticks on too: its acknowledgements wait for its syncs instead. A leader alone has no one to
    pipeline with and ticks only once its journal is synced. pysyncobj alone either sends per
    command (one follower fsync each) or waits for the next heartbeat."""

    def __init__(self) -> None:
        self.replica: Replica | None = None
        self.sent = (0, 0)  # (last log index, commit index) the followers were last sent
        self.tick_scheduled = False
        self.syncing = False
        self.timer: asyncio.TimerHandle | None = None

    def start(self, replica: "Replica", loop: asyncio.AbstractEventLoop, *, fsync: bool = True) -> None:
        self.replica = replica
        self.journal: DurableJournal = replica._SyncObj__raftLog
        self.disk = DiskSync(self.journal, loop, fsync=fsync)
        self.loop = loop
        replica._poller.after_event = self.soon
        transport: _SyncingTransport = replica._SyncObj__transport
        transport.ack_when_durable = self.ack_when_durable
        self.timer = loop.call_later(TICK_PERIOD, self.periodic)

    def soon(self) -> None:
        """Tick once the loop has run what is ready (many events, one tick)."""
        if not self.tick_scheduled and self.replica is not None:
            self.tick_scheduled = True
            self.loop.call_soon(self.tick)

    def periodic(self) -> None:
        self.timer = self.loop.call_later(TICK_PERIOD, self.periodic)
        self.tick()

    def tick(self) -> None:
        self.tick_scheduled = False
        replica = self.replica
        if replica is None:
            return
        if self.syncing and replica.alone():  # its own disk is the whole majority
            return
        if replica._isLeader() and replica.alone() and self.disk.needs_sync():
            self.sync_then_tick()
            return
        try:
            replica.maybe_pre_vote()
            with replica.durable_commit_view(), replica._SyncObj__transport.held_answers():
                if not replica.state_loaded.is_set():
                    self.load()
                else:
                    replica.doTick(0.0)
        except SnapshotUnreadable:
            pass  # pysyncobj logged the error, on_fatal what it means
        except Exception:  # noqa: BLE001 - pysyncobj's own tick thread logs and carries on too
            log.exception("raft tick failed")

    def load(self) -> None:
        """The tick that loads what is on disk: the snapshot, then the journal's committed entries after it,
        which it applies at once. That is the state the master keeps, so the collector is paused while it grows
        (32,000 puts on top of 100,000 keys: 0.27 -> 0.12 s) and it is frozen after (gc.freeze): full collections
        no longer walk it, and reference counting frees what a later write replaces."""
        replica = self.replica
        started = time.perf_counter()
        with _collector_paused():
            replica.doTick(0.0)
            if replica._SyncObj__needLoadDumpFile:  # not loaded yet (the Raft port is not bound yet)
                return
            replica.adopt_logged_changes()
            gc.freeze()  # before the collector runs again: it would walk all that was loaded, once more
        replica.state_loaded.set()
        log.info("raft %s: state loaded from disk (snapshot and journal): applied up to index %d, revision %d, "
                 "in %.3f s", replica.self_addr, replica.raftLastApplied, replica.consumer.machine.revision,
                 time.perf_counter() - started)

    def after_tick(self) -> None:
        replica = self.replica
        if self.journal.size > replica.snapshot_bytes:  # a restart would read and apply it all again
            replica.forceLogCompaction()
        if replica._isLeader():
            now = (replica._SyncObj__getCurrentLogIndex(), replica.raftCommitIndex)
            if now != self.sent:
                commit_only = now[0] == self.sent[0]
                self.sent = now
                if commit_only:
                    replica.send_commit_index()
                else:
                    replica._SyncObj__sendAppendEntries()  # first: followers write while we do
            if self.disk.needs_sync() and not self.syncing:
                self.sync_then_tick()  # the leader's durable index moves on: a commit may follow
        # A follower's entries are synced before it acknowledges them (ack_when_durable).

    def sync_then_tick(self) -> None:
        self.syncing = True
        self.disk.when_durable(self._synced)

    def _synced(self) -> None:
        self.syncing = False
        self.soon()

    def ack_when_durable(self, node, message: dict) -> None:
        drops = self.journal.drops
        transport: _SyncingTransport = self.replica._SyncObj__transport

        def send() -> None:
            if self.journal.drops == drops:  # else the entries it vouches for may be gone (a conflict, a snapshot)
                transport.send_now(node, message)

        if self.disk.sync_here():  # a follower's sync is on the commit's path anyway: no thread hand-off
            send()
        else:
            self.disk.when_durable(send)

    def stop(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.replica = None
        self.disk.close()


class Replica(SyncObj):
    def __init__(self, *, self_addr: str, peers: list[str], data_dir: str, secret: str,
                 on_applied: OnApplied, on_restored: Callable[[], None],
                 on_fatal: Callable[[str], None] = lambda why: None, snapshot_entries: int = 20_000,
                 snapshot_bytes: int = 32 << 20, timing: dict[str, float] | None = None,
                 mechanisms: Mechanisms = ALL) -> None:
        """`on_fatal(why)` is called when this replica cannot go on and its master must stop: a peer refused it
        because its data dir was made anew while the cluster knew another at this address (member_identity.py),
        and no leader took it within REFUSAL_GRACE; or a snapshot, its own or the leader's, would not load. A
        snapshot is taken
        (and the journal trimmed) every `snapshot_entries` entries or `snapshot_bytes` of journal.
        `mechanisms` has them all on, but in a lab (kvstore/mechanisms.py)."""
        os.makedirs(data_dir, exist_ok=True)
        # Attributes set before SyncObj.__init__ stay out of its snapshots; set none after it.
        self.self_addr = self_addr
        self.identity = MemberIdentity(data_dir, enforced=mechanisms.member_identity)
        self._on_fatal = on_fatal
        self._refused: tuple[float, str] | None = None  # (when, why) a peer refused us, until a leader takes us
        self.snapshot_bytes = snapshot_bytes
        self._refusals_sent: dict[str, float] = {}  # peer address -> when we last told it why
        self.consumer = KVConsumer(on_applied, on_restored, _lessor(mechanisms))
        self._pace = _Pacer()
        self._prevote = prevote.PreVote()
        self._stale_leader: int | None = None  # the older term of a leader that reached us while we had none
        self.pre_votes = 0  # rounds started (a metric)
        self._leader_heard: float | None = None  # monotonic time of the last append_entries of a current leader
        self._real_match_index: dict | None = None  # pysyncobj's, while durable_commit_view shows it another
        self._leader_reads = read_index.LeaderRounds()
        self._follower_reads = read_index.Rounds()
        self._read_role = (0, False)  # (term, leading) that the reads' rounds belong to
        self._applied_waits: list[tuple[int, int, asyncio.Future]] = []  # a heap of (index, n, read) to release
        self._applied_waits_n = itertools.count()
        self._loading_index: int | None = None  # the index of the snapshot being loaded, once it is read
        self.state_loaded = asyncio.Event()  # set once the snapshot and journal on disk are loaded (_Pacer.load):
        # no read is answered before (Store.range), nor is the kube API imported (raftkube/master.py)
        self._received: tuple | None = None  # the leader's snapshot, read, until pysyncobj loads it
        self._stale_snapshot = False  # the leader's last piece was of a snapshot older than our commit index
        conf = SyncObjConf(
            autoTick=False,  # ticks come from the event loop (_Pacer)
            password=secret,
            bindAddress=self_addr,
            journalFile=os.path.join(data_dir, "raft.journal"),
            fullDumpFile=os.path.join(data_dir, "raft.snapshot"),
            appendEntriesUseBatch=True,  # entries leave once per tick, from _Pacer.after_tick
            appendEntriesBatchSizeBytes=MAX_MESSAGE_BYTES,
            commandsWaitLeader=False,  # fail fast with MISSING_LEADER; the Store retries
            dynamicMembershipChange=True,
            logCompactionMinEntries=snapshot_entries,
            logCompactionMinTime=300,
            **{**DEFAULT_TIMING, **(timing or {}), **_lab_timing(mechanisms)},
        )
        super().__init__(self_addr, peers, conf, consumers=[self.consumer],
                         transportClass=_SyncingTransport)
        # pysyncobj 0.3.17 keeps the journal, the transport and the sender private (see _Pacer).
        self._SyncObj__transport.member_id = self.identity.id
        self._SyncObj__transport.current_term = lambda: self.raftCurrentTerm
        self._SyncObj__transport.known_members = self.identity.peers
        serializer = self._SyncObj__serializer
        write_snapshot = serializer.serialize
        serializer.serialize = lambda data, index: write_snapshot(self._configuration_at_snapshot(data), index)
        read_snapshot = serializer.deserialize
        serializer.deserialize = lambda: self._snapshot_read(self._take_received() or _without_gc(read_snapshot))
        receive_piece = serializer.setTransmissionData
        serializer.setTransmissionData = lambda piece: self._receive_snapshot_piece(receive_piece, piece)
        self.addOnTickCallback(self._pace.after_tick)
        self.addOnTickCallback(self._serve_reads)
        self.addOnTickCallback(self._check_refused)
        self._pace.start(self, asyncio.get_running_loop(), fsync=mechanisms.fsync)

    # -- what we change in pysyncobj's handling of peer messages ----------------------------

    def _SyncObj__onMessageReceived(self, node, message: dict) -> None:  # noqa: N802 - replaces pysyncobj's
        """Every message from a peer comes here first (pysyncobj registers this name with its transport).

        A follower keeps the entries a leader resends instead of dropping its tail (log_matching.py),
        a snapshot's pieces move no commit index over the follower's own log, and a leader never moves a
        follower's next index back on a success: an acknowledgement that arrives late (it waited for the
        follower's fsync) says nothing against entries sent since. Nor does one sent in an earlier term:
        pysyncobj's answers (next_node_idx) carry no term, so ours carry the term of the append_entries they
        answer, and a leader takes only those of its own term. An acknowledgement held back by a slow fsync
        could otherwise reach a master that lost the lead and won it back, whose log had changed meanwhile
        under another leader, and count the follower for entries it does not hold."""
        if self._pace.replica is None:
            return  # stopped: closed, or a snapshot would not load
        handle = super()._SyncObj__onMessageReceived
        kind = message.get("type")
        refusal = self.identity.check(node.id, message.get("mid"))
        if refusal is not None:
            self._refuse(node, refusal)
            return
        self._SyncObj__transport.refused.discard(node.id)
        if kind == "member_refused":
            if self._refused is None:
                log.warning("%s; unless a leader takes this master within %gs, it stops", message["why"],
                            REFUSAL_GRACE)
                self._refused = (raft_clock(), message["why"])
            return
        if kind == "hello":  # its member id is all it says, and check() learnt it
            return
        if kind in ("pre_vote", "pre_vote_response"):
            self._on_pre_vote_message(node, message)
            return
        if kind in _READ_MESSAGES:
            self._on_read_message(node, message)
            return
        if kind == "append_entries" and message["term"] < self.raftCurrentTerm and self._getLeader() is None:
            self._stale_leader = message["term"]  # see maybe_pre_vote
        if kind == "append_entries" and message["term"] >= self.raftCurrentTerm:
            self._stale_leader = None
            self._leader_heard = raft_clock()
            self._prevote.cancel()
            self.identity.adopt(message.get("mids") or {}, self.self_addr)
        if kind == "append_entries" and "prevLogIdx" in message and "transmission" not in message:
            current = message["term"] >= self.raftCurrentTerm
            plan = log_matching.plan_append(message, self._entry_at, self._last_index())
            transport: _SyncingTransport = self._SyncObj__transport
            transport.holding_success = bool(message.get("noack")) and not message.get("entries")
            try:
                handle(node, plan.message)
                if plan.ack is not None and current:
                    self._SyncObj__sendNextNodeIdx(node, nextNodeIdx=plan.ack + 1, success=True)
            finally:
                transport.holding_success = False
            return
        if kind == "append_entries" and "prevLogIdx" not in message:
            handle(node, log_matching.unvouched(message, self.raftCommitIndex))
            if self._stale_snapshot:  # dropped (_receive_snapshot_piece): the leader learns where our log ends
                self._stale_snapshot = False
                self._SyncObj__sendNextNodeIdx(node, success=False, reset=True)
            return
        if kind == "next_node_idx" and message.get("term", self.raftCurrentTerm) != self.raftCurrentTerm:
            return  # it answers an append_entries of another term: about a log this leader may no longer have
        if kind == "next_node_idx" and message.get("success") and not message.get("reset"):
            next_index: dict = self._SyncObj__raftNextIndex
            before = next_index.get(node)
            handle(node, message)
            if before is not None and next_index.get(node, before) < before:
                next_index[node] = before
            return
        handle(node, message)

    def send_commit_index(self) -> None:
        """Tell the followers the new commit index in entry-less append_entries they do not answer
        (_SyncingTransport). It is no heartbeat: pysyncobj's next heartbeat stays due when it was."""
        transport: _SyncingTransport = self._SyncObj__transport
        heartbeat_due = self._SyncObj__newAppendEntriesTime
        transport.marking_noack = True
        try:
            self._SyncObj__sendAppendEntries()
        finally:
            transport.marking_noack = False
            self._SyncObj__newAppendEntriesTime = heartbeat_due

    # -- commit: a majority of durable copies, the leader's own counted once synced ---------

    def alone(self) -> bool:
        return not self._SyncObj__otherNodes

    @contextlib.contextmanager
    def durable_commit_view(self) -> Iterator[None]:
        """Around a tick: the leader's commit calculation counts the leader only up to its durable index.

        pysyncobj counts the leader in every majority for every entry it has appended (`_onTick`: count = 1),
        which is right only once the leader's journal is synced. The leader here appends and sends while its
        own fdatasync runs (Raft thesis §10.2.1), so for the calculation, which comes first in the tick, the
        follower with the highest match index is seen at most at the leader's durable index D. For N >= 2
        that gives pysyncobj's count exactly the majority of {D, follower match indexes}: the set it counts
        is {infinity, min(m1, D), m2, ...} against the true {max(m1, D), min(m1, D), m2, ...}, whose
        largest element never decides a majority of two or more. The real match indexes are back before the
        tick applies entries (`_SyncObj__applyLogEntries`) and after it, whatever happens."""
        real = self._SyncObj__raftMatchIndex
        durable = self._SyncObj__raftLog.durable_index
        if not (self._isLeader() and real) or durable >= self._last_index():
            yield
            return
        top = max(real, key=real.get)
        self._SyncObj__raftMatchIndex = {**real, top: min(real[top], durable)}
        self._real_match_index = real
        try:
            yield
        finally:
            self._restore_match_index()

    def _restore_match_index(self) -> None:
        if self._real_match_index is not None:
            self._SyncObj__raftMatchIndex = self._real_match_index
            self._real_match_index = None

    def _SyncObj__applyLogEntries(self) -> bool:  # noqa: N802 - replaces pysyncobj's
        """Comes right after the commit calculation in pysyncobj's tick: the real match indexes from here on."""
        self._restore_match_index()
        return super()._SyncObj__applyLogEntries()

    # -- members: who may speak for an address (member_identity.py) -------------------------

    def _refuse(self, node, refusal: str) -> None:
        """Drop a message from a stranger at a member's address, send it nothing more, and tell it why (once a
        second). The stranger stops unless a leader takes it meanwhile (`_check_refused`): a replica that has not
        appended the member add that let a newcomer in yet refuses it too, but the leader, which has, does not."""
        self._SyncObj__transport.refused.add(node.id)
        now = raft_clock()
        if now - self._refusals_sent.get(node.id, 0.0) < 1.0:
            return
        self._refusals_sent[node.id] = now
        why = f"{self.self_addr} refuses {node.id}: {refusal}"
        log.warning("%s", why)
        self._SyncObj__transport.send(node, {"type": "member_refused", "why": why})

    def _check_refused(self) -> None:
        """After every tick: a refusal stands if no leader's append_entries came in the REFUSAL_GRACE after it."""
        if self._refused is None:
            return
        since, why = self._refused
        if self._leader_heard is not None and self._leader_heard > since:
            log.info("a leader takes this master: the refusal (%s) came from a member behind the cluster", why)
            self._refused = None
        elif raft_clock() - since > REFUSAL_GRACE:
            self._refused = None
            self._on_fatal(why)

    def _SyncObj__doChangeCluster(self, request, reverse: bool = False) -> bool:  # noqa: N802 - replaces pysyncobj's
        """A member added or removed: whoever speaks for its address from now on is learnt afresh."""
        changed = super()._SyncObj__doChangeCluster(request, reverse)
        if changed:
            self.identity.forget(request[1])
        return changed

    # -- elections: PreVote (prevote.py) ---------------------------------------------------

    def maybe_pre_vote(self) -> None:
        """Before each tick: when the election timer has run out, ask the others first; pysyncobj's own
        election (a new term) runs only once a majority said yes, or for a leadership transfer.

        The timer counts as run out PRE_VOTE_MARGIN early: pysyncobj reads it again a moment later in the same
        tick (after its once-a-second journal work, which can take a millisecond), and a timer that ran out in
        between started a real election, a new term, on a follower cut off from everyone. Healed, it ignored the
        leader's older term and the others denied it their pre-votes (they had a leader): stuck for good.

        And should a follower still be left in a newer term with no leader (a leader transfer cut short, say),
        a leader of an older term that reaches it makes it campaign when its timer runs out, without a pre-vote,
        as etcd answers such a leader with its term: the leader steps down on the newer term and the cluster
        elects one that every member follows. One election, instead of a member lost."""
        if self._isLeader() or self._SyncObj__transferInProgress:
            return
        now = raft_clock()
        if self._SyncObj__raftElectionDeadline >= now + PRE_VOTE_MARGIN or not self._SyncObj__connectedToAnyone():
            return
        if self._prevote.won and self._prevote.term == self.raftCurrentTerm + 1:
            self._prevote.cancel()  # pysyncobj campaigns in this tick
            return
        stale, self._stale_leader = self._stale_leader, None
        if stale is not None and self._getLeader() is None:  # at most once an election timeout
            log.warning("a leader of term %d reaches this master, which has none in term %d: campaigning in term "
                        "%d so that the cluster moves to a term every member can follow", stale, self.raftCurrentTerm,
                        self.raftCurrentTerm + 1)
            self._prevote.cancel()
            self._SyncObj__raftElectionDeadline = 0  # pysyncobj campaigns in this tick
            return
        self._SyncObj__raftElectionDeadline = now + self._SyncObj__generateRaftTimeout()
        self.pre_votes += 1
        others = self._SyncObj__otherNodes
        self._prevote.start(current_term=self.raftCurrentTerm, members=len(others) + 1, self_id=self.self_addr)
        if self._prevote.won:  # no one else to ask
            self._SyncObj__raftElectionDeadline = 0
            return
        last_term, last_index = self._last_position()
        for node in others:
            self._SyncObj__transport.send(node, {"type": "pre_vote", "term": self._prevote.term,
                                                 "last_log_term": last_term, "last_log_index": last_index})

    def _on_pre_vote_message(self, node, message: dict) -> None:
        if message["type"] == "pre_vote":
            heard = None if self._leader_heard is None else raft_clock() - self._leader_heard
            granted = message["term"] > self.raftCurrentTerm and prevote.grant(
                candidate=(message["last_log_term"], message["last_log_index"]), ours=self._last_position(),
                leader_heard_ago=heard, min_timeout=self.conf.raftMinTimeout, leading=self._isLeader())
            self._SyncObj__transport.send(node, {"type": "pre_vote_response", "term": message["term"],
                                                 "granted": granted, "current_term": self.raftCurrentTerm})
            return
        if message["current_term"] > self.raftCurrentTerm:  # we were behind: catch up, as on any higher term
            self._SyncObj__setCurrentTerm(message["current_term"], None)
            self._SyncObj__setState(_RAFT_STATE.FOLLOWER)
            self._prevote.cancel()
        elif self._prevote.on_response(voter=node.id, term=message["term"], granted=message["granted"]):
            self._SyncObj__raftElectionDeadline = 0  # campaign on the next tick
            self.wake()

    def _last_position(self) -> prevote.LogPosition:
        last = self._SyncObj__raftLog[-1]
        return last[2], last[1]

    # -- linearizable reads: ReadIndex (read_index.py) --------------------------------------

    def read_index(self) -> asyncio.Future:
        """A future that resolves once this replica has applied everything committed before the call. It fails
        with ReadIndexLost when the replica's role or term changes first: ask again."""
        read = self._pace.loop.create_future()
        (self._leader_reads if self._isLeader() else self._follower_reads).add(read)
        self.wake()
        return read

    def _serve_reads(self) -> None:
        """After every tick: forget the rounds of another role or term, start or resend a round, and release
        the reads whose index is applied."""
        role = (self.raftCurrentTerm, self._isLeader())
        if role != self._read_role:
            self._read_role = role
            for read in self._leader_reads.abandon() + self._follower_reads.abandon():
                if isinstance(read, asyncio.Future) and not read.done():
                    read.set_exception(read_index.ReadIndexLost(f"{self.self_addr}: the raft leader changed"))
        now = raft_clock()
        transport = self._SyncObj__transport
        if role[1]:
            rounds = self._leader_reads
            if (rounds.queued or rounds.current) and self._committed_in_term():  # most ticks have no read
                r = rounds.start(now=now, index=self._read_index()) or rounds.resend(now=now)
                if r is not None:
                    for node in self._SyncObj__otherNodes:
                        transport.send(node, {"type": "read_index", "round": r.number, "term": role[0]})
                    self._release(rounds.confirmed(self._voters()))  # at once when alone
        elif (leader := self._getLeader()) is not None:
            r = self._follower_reads.start(now=now) or self._follower_reads.resend(now=now)
            if r is not None:
                transport.send(leader, {"type": "read_index_request", "round": r.number})
        applied = self.raftLastApplied
        while self._applied_waits and self._applied_waits[0][0] <= applied:
            read = heapq.heappop(self._applied_waits)[2]
            if not read.done():
                read.set_result(None)

    def _on_read_message(self, node, message: dict) -> None:
        kind, term = message["type"], self.raftCurrentTerm
        transport = self._SyncObj__transport
        if kind == "read_index":  # a leader asks: still mine? Yes, if it is of our term
            if message["term"] == term and not self._isLeader():
                transport.send(node, {"type": "read_index_ack", "round": message["round"], "term": term})
        elif kind == "read_index_ack":
            if message["term"] == term and self._isLeader():
                self._release(self._leader_reads.on_ack(node.id, message["round"], others=self._voters()))
        elif kind == "read_index_request":  # a follower's reads join our next round
            if self._isLeader():
                self._leader_reads.add((node, message["round"]))
                self.wake()
        else:  # read_index_response: the leader's index for our round
            r = self._follower_reads.answered(message["round"])
            if r is not None:
                r.index = message["index"]
                self._release(r)

    def _release(self, r: read_index.Round | None) -> None:
        """A confirmed round: a follower's request gets the index, a local read waits until it is applied."""
        if r is None:
            return
        for read in r.waiters:
            if not isinstance(read, asyncio.Future):
                node, number = read
                self._SyncObj__transport.send(node, {"type": "read_index_response", "round": number,
                                                     "index": r.index})
            elif read.done():
                continue
            elif r.index <= self.raftLastApplied:
                read.set_result(None)
            else:  # _serve_reads releases it after the tick that applies the index
                heapq.heappush(self._applied_waits, (r.index, next(self._applied_waits_n), read))

    def _voters(self) -> list[str]:
        return [node.id for node in self._SyncObj__otherNodes]

    def _read_index(self) -> int:
        """The commit index, or the last index if the log is shorter: never in Raft, but after the skip-fsync lab
        lost a journal whose commit index survived (pysyncobj saves it apart), and nothing beyond the log applies."""
        return min(self.raftCommitIndex, self._last_index())

    def _committed_in_term(self) -> bool:
        """Has this leader committed an entry of its own term (its election no-op)? Only then does its commit
        index cover everything a previous leader may have acknowledged."""
        entry = self._entry_at(self._read_index())
        return entry is not None and entry[2] == self.raftCurrentTerm

    # -- snapshots ------------------------------------------------------------------------

    def _SyncObj__loadDumpFile(self, clearJournal: bool) -> None:  # noqa: N802 - replaces pysyncobj's
        """Load the snapshot, keeping the journal's entries that follow it (Raft §7: "if an existing log
        entry has the same index and term as the snapshot's last included entry, retain log entries
        following it"). pysyncobj clears the journal unless it starts exactly at the snapshot, which
        it does not when a master died between writing a snapshot and trimming its journal: that
        would erase entries this replica acknowledged. `_snapshot_read` completes the trim."""
        self._loading_index = None
        super()._SyncObj__loadDumpFile(clearJournal=False)
        if self._loading_index is None or self.raftLastApplied != self._loading_index:
            self._snapshot_unreadable(self.conf.fullDumpFile)
        if self.raftCommitIndex < self.raftLastApplied:  # a snapshot is committed state (log_matching.unvouched)
            self._SyncObj__raftCommitIndex = self.raftLastApplied
            self._SyncObj__raftLog.setRaftCommitIndex(self.raftLastApplied)

    def adopt_logged_changes(self) -> None:
        """After a restart, the membership changes in the log past what was applied take effect, as they did when
        they were appended: a member uses the latest configuration in its log, committed or not (Raft thesis
        §4.1). pysyncobj applies a change when it is appended and again when it is applied, but a restart applies
        the journal only up to the saved commit index, saved lazily, over the snapshot's configuration: a master
        killed soon after a member was added came back without it, and could count a majority of the old
        configuration in an election while the new one went on without it. (A change is idempotent, and one
        later cut by a conflict is rolled back as any appended one.)"""
        for command, _, _ in self._SyncObj__getEntries(self.raftLastApplied + 1):
            change = self._SyncObj__parseChangeClusterRequest(command)
            if change is not None:
                self._SyncObj__doChangeCluster(change)

    def _receive_snapshot_piece(self, receive: Callable[[Any], bool], piece) -> bool:
        """pysyncobj writes the pieces of the leader's snapshot to a temporary file and, at the last, renames it
        over ours; True tells it to load the snapshot. The last piece is ours to finish:

        - A snapshot at or below our commit index is dropped (etcd ignores one too), and the leader told where
          our log ends (`_SyncObj__onMessageReceived`). Installed, it took this follower back to an older state
          and cleared its journal, entries it had acknowledged included. A stale answer (one that says our log
          is shorter than it is) is what makes a leader send one. The exception: our entry at its index is of
          another term, which never happens in Raft, only in a lab that breaks it; the leader's history wins.
        - Our own snapshot, if one is being written (pysyncobj writes it in a forked child), is stopped first:
          finishing later, the child wrote our older state over the leader's, and pysyncobj counted its success
          and trimmed to it. A restart then loaded the older snapshot, found the journal starting past it and
          cleared the journal, acknowledged entries included.

        The snapshot is read once, here; pysyncobj's load takes it from `_received`."""
        serializer = self._SyncObj__serializer
        incoming = serializer._Serializer__incomingTransmissionFile
        if piece is None or not piece[2] or incoming is None:  # (data, is first, is last)
            return receive(piece)
        serializer._Serializer__incomingTransmissionFile = None
        incoming.write(piece[0])
        incoming.close()
        try:
            data = _without_gc(lambda: raft_encoding.read_snapshot(incoming.name))
        except Exception:  # noqa: BLE001 - whatever it is, the snapshot is not usable
            log.exception("raft %s: the leader's snapshot did not load", self.self_addr)
            self._snapshot_unreadable(incoming.name)
        _, index, term = data[1]
        mine = self._entry_at(index)
        if index <= self.raftCommitIndex and (mine is None or mine[2] == term):
            os.unlink(incoming.name)
            self._stale_snapshot = True
            log.warning("raft %s: a snapshot at index %d from the leader is dropped: this master has committed up "
                        "to %d", self.self_addr, index, self.raftCommitIndex)
            return False
        if index <= self.raftCommitIndex:  # never in Raft; in a lab that breaks it, the leader's history wins
            log.error("raft %s: the leader's snapshot at index %d (term %d) contradicts the entry this master "
                      "committed there (term %d): a committed entry was lost", self.self_addr, index, term, mine[2])
        child = serializer._Serializer__pid
        if child > 0:
            with contextlib.suppress(ProcessLookupError, ChildProcessError):  # it ended and was reaped
                os.kill(child, signal.SIGKILL)
                os.waitpid(child, 0)
            serializer._Serializer__pid = 0
            log.info("raft %s: a snapshot from the leader replaces the one this master was writing", self.self_addr)
        durable_replace(incoming.name, self.conf.fullDumpFile)
        self._received = data
        return True

    def _SyncObj__deleteEntriesTo(self, first_kept: int) -> None:  # noqa: N802 - replaces pysyncobj's
        """A snapshot is on disk and covers the log before `first_kept`: trim the log, but keep up to a quarter
        of `snapshot_entries` and of `snapshot_bytes` of the entries before that point. pysyncobj drops them
        all, and a follower only a few entries behind the leader's snapshot (one restarting, one whose
        acknowledgements were still on their way) then needs the whole snapshot sent and loaded (100,000 keys
        of 1 KB: 100 MB and about a second and a half) where its own journal lacked a few entries. etcd keeps
        entries after a compaction for the same reason (SnapshotCatchUpEntries). A restart drops them
        (`_snapshot_read`): the snapshot it loads covers them."""
        journal: DurableJournal = self._SyncObj__raftLog
        pos = first_kept - journal[0][1]
        start = journal.catch_up_start(pos, self.snapshot_bytes // 4, self.conf.logCompactionMinEntries // 4)
        if start > 0:
            journal.deleteEntriesTo(start)

    def _configuration_at_snapshot(self, data):
        """Wrapped around pysyncobj's snapshot serializer: `data` is (state, last entry, entry before it, members),
        the members as they are now, with any change appended after the snapshot's last entry. Such a change
        may still be cut by a conflict, and a restart would take it back from the snapshot. Return `data` with
        the members at the snapshot's index: the changes logged after it undone, newest first."""
        members = set(data[3])
        for command, _, _ in reversed(self._SyncObj__getEntries(data[1][1] + 1)):
            change = self._SyncObj__parseChangeClusterRequest(command)
            if change is None:
                continue
            node = change[2] if len(change) >= 3 else change[1]  # as pysyncobj's __doChangeCluster reads it
            node = node if isinstance(node, Node) else self._SyncObj__nodeClass(node)
            if node == self._SyncObj__selfNode:
                continue
            if change[0] == "add":
                members.discard(node)
            elif change[0] == "rem":
                members.add(node)
        return (*data[:3], members)

    def _snapshot_unreadable(self, path: str) -> NoReturn:
        """pysyncobj logs a snapshot that fails to load and carries on: at a restart with an empty state that the
        journal, which starts past the snapshot, cannot fill, serving reads of nothing; as a follower sent the
        leader's, answering success, and sent it again and again. Stop instead, before anything is answered
        (etcd stops too)."""
        why = (f"the snapshot {path} did not load (the error is logged above); this master stops rather than serve "
               f"or acknowledge without it. Move its data dir aside, remove the master from the cluster and add it "
               f"back (etcd's member remove, then member add; `raftkube member` does both), then start it again")
        self._pace.stop()  # no more ticks
        self._on_fatal(why)
        raise SnapshotUnreadable(why)  # out of the message handler too, before its acknowledgement

    def _take_received(self) -> tuple | None:
        data, self._received = self._received, None
        return data

    def _snapshot_read(self, data):
        """Wrapped around pysyncobj's snapshot deserializer: note the snapshot's index, and when the journal
        holds the snapshot's last two entries (pysyncobj's own check), drop what comes before them; return
        `data` unchanged."""
        before_last, last = data[2], data[1]
        self._loading_index = last[1]
        journal: DurableJournal = self._SyncObj__raftLog
        pos = before_last[1] - journal[0][1]
        if 0 < pos < len(journal) - 1 and journal[pos] == tuple(before_last) and journal[pos + 1] == tuple(last):
            log.info("journal: %d entries before the snapshot's (index %d) set aside", pos, before_last[1])
            journal.forget_before(pos)
        return data

    def _entry_at(self, index: int):
        log_ = self._SyncObj__raftLog
        first = log_[0][1]
        if index < first or index - first >= len(log_):
            return None
        return log_[index - first]

    def _last_index(self) -> int:
        return self._SyncObj__raftLog[-1][1]

    def membership_change_pending(self) -> bool:
        """Is a membership change in the log but not committed? Raft allows one at a time (thesis §4.1),
        including one a previous leader began; pysyncobj 0.3.17 means to check it but never does."""
        log_ = self._SyncObj__raftLog
        first = log_[0][1]
        change = _COMMAND_TYPE.MEMBERSHIP
        return any(log_[i][0][0] == change for i in range(max(self.raftCommitIndex + 1 - first, 0), len(log_)))

    def wake(self) -> None:
        """Take new commands on the next turn of the loop rather than at the next timer tick."""
        self._pace.soon()

    def close(self) -> None:
        self._pace.stop()
        self.destroy()

    def set_partitioned(self, peers: set[str]) -> None:
        """Failpoint: behave as if the network to these peers (raft addresses) were cut."""
        self._SyncObj__transport.partitioned = frozenset(peers)

    def partitioned_peers(self) -> frozenset[str]:
        return self._SyncObj__transport.partitioned


@contextlib.contextmanager
def _collector_paused() -> Iterator[None]:
    """The cyclic garbage collector paused while a state is loaded: it would otherwise walk the growing state
    again and again as hundreds of thousands of objects are made (a snapshot of 100,000 keys of 1 KB: 0.42 ->
    0.25 s). The state holds no reference cycles; reference counting frees it as before."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _without_gc(load: Callable[[], Any]) -> Any:
    with _collector_paused():
        return load()


_READ_MESSAGES = frozenset({"read_index", "read_index_ack", "read_index_request", "read_index_response"})


def _lessor(mechanisms: Mechanisms) -> Lessor:
    """The follower-clock lab: lease deadlines on the wall clock (read at each call, so a stepped clock counts),
    and a new leader keeps the deadlines it noted as a follower instead of giving every lease a full TTL."""
    if mechanisms.monotonic_leases:
        return Lessor()
    return Lessor(lambda: time.time(), full_ttl_on_promotion=False)


def _lab_timing(mechanisms: Mechanisms) -> dict[str, float]:
    """The deposed-leader lab: a leader that hears from no majority never steps down (no CheckQuorum)."""
    return {} if mechanisms.leader_confirms else {"leaderFallbackTimeout": math.inf}


DEFAULT_TIMING = {
    "raftMinTimeout": 0.3,
    "raftMaxTimeout": 0.6,
    "appendEntriesPeriod": 0.05,
    "connectionTimeout": 1.5,
    "connectionRetryTime": 0.3,
    "leaderFallbackTimeout": 1.0,
}
