"""What a replica's Raft log keeps when messages arrive late, repeated or out of turn (Raft §5.3)."""
import asyncio
import gc
import logging
import os
import shutil
import threading
import time
import types

import pysyncobj.serializer as serializer_module
import pytest

from kvstore.errors import KVFailure
from kvstore.replica import PRE_VOTE_MARGIN, _SyncingTransport, raft_clock
from raftkube.up import free_port
from tests.integration.replicas import LocalCluster

VALUE = b"v" * 30_000  # big entries, as in bench/resends.py


@pytest.fixture
async def local(tmp_path):
    c = LocalCluster(tmp_path, 3)
    await c.wait_for_leader()
    yield c
    c.close()


async def test_a_follower_keeps_the_entries_a_leader_resends(local, caplog):
    """A leader moves a follower's next index back (a late acknowledgement, a reconnection) and resends
    entries the follower holds, a few per message: the follower must not drop the rest of its tail (it
    acknowledged those; if the leader died then, a committed entry could be lost)."""
    for i in range(10):
        await local.put(b"k%d" % i, VALUE)
    await local.all_applied()
    leader, follower = local.leader(), local.followers()[0]
    held = follower.log()
    node = leader.peer(follower.addr)
    leader.replica._SyncObj__raftNextIndex[node] = held[-10][1]  # resend the last ten entries
    with caplog.at_level(logging.CRITICAL, logger="pysyncobj"):
        await local.put(b"after", b"x")
        await local.all_applied()
    assert follower.journal.conflicts == 0, "the follower dropped entries it held"
    assert follower.log()[:len(held)] == held
    assert not [r for r in caplog.records if "truncating already-applied" in r.getMessage()]


async def test_a_resend_that_ends_where_the_followers_log_ends_truncates_nothing(local, monkeypatch):
    """Two answers in flight each move the leader's next index back, and the second resend holds exactly the
    follower's last entries: pysyncobj deleted and rewrote them (an ftruncate, acknowledged entries off the disk
    until the next sync)."""
    for i in range(5):
        await local.put(b"k%d" % i, b"v")
    await local.all_applied()
    leader, follower = local.leader(), local.followers()[0]
    held = follower.log()
    cuts: list[int] = []
    ftruncate = os.ftruncate
    monkeypatch.setattr(os, "ftruncate", lambda fd, size: (cuts.append(size), ftruncate(fd, size))[1])
    follower.replica._SyncObj__onMessageReceived(follower.peer(leader.addr), {
        "type": "append_entries", "term": follower.replica.raftCurrentTerm, "mid": leader.replica.identity.id,
        "commit_index": leader.replica.raftCommitIndex, "prevLogIdx": held[-3][1], "prevLogTerm": held[-3][2],
        "entries": held[-2:]})
    assert (follower.journal.conflicts, cuts, follower.log()) == (0, [], held)


async def test_a_late_acknowledgement_does_not_move_a_followers_next_index_back(local):
    """Entries sent since the acknowledged ones are on their way: sending them again only costs (and, before
    the follower kept resent entries, cost it its tail)."""
    leader, follower = await local.wait_for_leader(), local.followers()[0]
    for i in range(3):
        await local.put(b"k%d" % i, b"v")
    await local.all_applied()
    node = leader.peer(follower.addr)
    next_index = leader.replica._SyncObj__raftNextIndex[node]
    leader.replica._SyncObj__raftMatchIndex[node] = next_index - 4  # as if the last acks were still on their way
    leader.replica._SyncObj__onMessageReceived(node, {"type": "next_node_idx", "next_node_idx": next_index - 2,
                                                      "reset": False, "success": True,
                                                      "mid": follower.replica.identity.id})
    assert leader.replica._SyncObj__raftMatchIndex[node] == next_index - 3
    assert leader.replica._SyncObj__raftNextIndex[node] == next_index


async def test_an_acknowledgement_of_an_earlier_term_moves_no_match_index(local):
    """A follower's acknowledgement waits for its fsync; by the time it arrives its leader may have lost the lead
    and won it back, with another log past its commit index: counting it would count the follower for entries it
    does not hold. The followers' answers carry the term they answer, and a leader takes only its own."""
    leader, follower = await local.wait_for_leader(), local.followers()[0]
    sent: list[dict] = []
    transport = follower.replica._SyncObj__transport
    send_now = transport.send_now
    transport.send_now = lambda node, message: (sent.append(dict(message)), send_now(node, message))[1]
    await local.put(b"k", b"v")
    await local.all_applied()
    term = leader.replica.raftCurrentTerm
    answers = [m for m in sent if m["type"] == "next_node_idx"]
    assert answers and all(m["term"] == term for m in answers), answers
    node = leader.peer(follower.addr)
    match = leader.replica._SyncObj__raftMatchIndex[node]
    leader.replica._SyncObj__onMessageReceived(node, {"type": "next_node_idx", "next_node_idx": match + 10,
                                                      "reset": False, "success": True, "term": term - 1,
                                                      "mid": follower.replica.identity.id})
    assert leader.replica._SyncObj__raftMatchIndex[node] == match


async def test_a_crash_between_snapshot_and_journal_trim_keeps_the_newer_entries(tmp_path):
    """The snapshot is on disk but the journal was not trimmed yet when the master died: on restart the
    journal starts before the snapshot. Its entries past the snapshot were acknowledged: they must stay.
    (Few snapshot entries: a trim keeps a quarter of them before the snapshot, and must keep fewer than 20.)"""
    local = LocalCluster(tmp_path, 3, snapshot_entries=8)
    try:
        for i in range(20):
            await local.put(b"k%d" % i, b"v")
        await local.all_applied()
        follower = local.followers()[0]
        trims = []
        follower.journal.deleteEntriesTo = trims.append  # the master dies before it trims
        follower.replica.forceLogCompaction()
        await local.wait_for(lambda: trims, what="a snapshot")
        for i in range(5):
            await local.put(b"after%d" % i, b"v")
        await local.all_applied()
        held = follower.log()
        for m in local.members:
            m.stop()
        follower.start()  # alone: nobody can send it what it lost
        await local.wait_for(lambda: not follower.replica._SyncObj__needLoadDumpFile, what="the snapshot loaded")
        assert follower.log()[-1] == held[-1]
    finally:
        local.close()


async def test_a_follower_a_few_entries_behind_the_leaders_snapshot_gets_entries_not_the_snapshot(tmp_path):
    """After a snapshot the leader keeps some entries before it (as etcd's SnapshotCatchUpEntries): a follower
    that missed a few, here by a restart, gets those and not the whole state again."""
    local = LocalCluster(tmp_path, 3, snapshot_entries=40)  # a trim keeps up to 10 entries before the snapshot
    try:
        for i in range(20):
            await local.put(b"k%d" % i, b"v")
        await local.all_applied()
        leader, follower = local.leader(), local.followers()[0]
        follower.stop()
        for i in range(5):
            await local.put(b"after%d" % i, b"v")
        snapshots_sent = []
        transport = leader.replica._SyncObj__transport
        send = transport.send

        def spying_send(node, message):
            if message.get("serialized") is not None:
                snapshots_sent.append(node.id)
            return send(node, message)

        transport.send = spying_send
        first = leader.journal[0][1]
        leader.replica.forceLogCompaction()
        await local.wait_for(lambda: leader.journal[0][1] > first, what="the leader's log trimmed after a snapshot")
        follower.start()
        await local.all_applied()
        assert follower.get(b"after4") == b"v"
        assert not snapshots_sent, "the leader sent its whole snapshot to a follower a few entries behind"
    finally:
        local.close()


async def test_a_cut_off_leader_caught_up_by_a_snapshot_never_applies_the_writes_it_took_alone(tmp_path):
    """A leader cut off from the others still appends what its clients write; the others elect a leader and
    snapshot past that point, and once the network heals the old leader is sent the snapshot in pieces of
    64 KiB. At the first piece pysyncobj moved its commit index to the new leader's over its own log, and the
    next tick applied the writes nobody committed, before the last piece replaced them: a campaign's watch saw
    one at a revision the cluster gave another write, and the writer was told it was done."""
    local = LocalCluster(tmp_path, 3, snapshot_entries=20)  # a trim keeps 5 entries before the snapshot
    try:
        old = await local.wait_for_leader()
        for i in range(4):
            await local.put(b"big%d" % i, VALUE)  # a snapshot of several pieces
        await local.all_applied()
        applied: list[bytes] = []
        consumer = old.replica.consumer
        on_applied = consumer._on_applied
        consumer._on_applied = lambda events, rev: (applied.extend(e.kv.key for e in events), on_applied(events, rev))
        cut_off(local, old)
        lost = asyncio.create_task(old.store.propose({"op": "put", "key": b"lost", "value": b"v"}, timeout=30))
        await local.wait_for(lambda: old.replica._last_index() > old.replica.raftCommitIndex,
                             what="the cut-off leader appended the write")
        tail = old.replica._last_index()
        new = await local.wait_for(lambda: next((m for m in local.members if m is not old and m.replica._isLeader()),
                                                None), what="a new leader among the others")
        for i in range(40):
            await local.put(b"after%d" % i, b"v", via=new)
        await local.wait_for(lambda: new.journal[0][1] > tail, what="the new leader's log trimmed past the old one's")
        pieces = _PiecesApart(new, old)
        heal(local)
        await local.wait_for(lambda: pieces.ticks_between >= 2, what="the old leader ticked between two pieces")
        pieces.release()
        await local.wait_for(lambda: old.get(b"after39") == b"v", what="the old leader caught up")
        assert b"lost" not in applied, "the old leader applied a write the cluster never committed"
        assert old.get(b"lost") is None
        await local.put(b"then", b"v")  # its log and commit index work on as a follower's
        await local.all_applied()
        assert not lost.done() or isinstance(lost.exception(), KVFailure), \
            f"the old leader answered {lost.result()!r} for a write the cluster does not hold"
        lost.cancel()
    finally:
        local.close()


async def _follower_cut_off_past_the_leaders_trim(local: LocalCluster):
    """(leader, follower): the follower cut off, and the leader's journal trimmed past the follower's log end
    (`snapshot_entries=20`): healed, the follower is sent the leader's snapshot."""
    await local.wait_for_leader()
    for i in range(10):
        await local.put(b"k%d" % i, b"v")
    await local.all_applied()
    leader, follower = local.leader(), local.followers()[0]
    cut_off(local, follower)
    behind = follower.replica._last_index()
    for i in range(60):
        await local.put(b"a%d" % i, b"v", via=leader)
    await local.wait_for(lambda: leader.journal[0][1] > behind + 2, what="the leader's log trimmed past the follower")
    return leader, follower


async def test_a_follower_sent_the_leaders_snapshot_while_writing_its_own_keeps_the_leaders(tmp_path, monkeypatch):
    """A follower writes its own snapshot in a forked child, and the leader's, newer, arrives and is loaded
    meanwhile. The child, finishing later, wrote the older state over it and pysyncobj trimmed to it: after a
    restart the older snapshot no longer met the journal, which was cleared, entries the follower had acknowledged
    since included. Now the leader's last piece stops the child first."""
    local = LocalCluster(tmp_path, 3, snapshot_entries=20)
    parent, replace = os.getpid(), serializer_module.atomicReplace

    def slow_in_the_child(tmp: str, path: str) -> None:
        if os.getpid() != parent:
            time.sleep(2.0)  # a big state: the child takes its time
        replace(tmp, path)

    try:
        leader, follower = await _follower_cut_off_past_the_leaders_trim(local)
        monkeypatch.setattr(serializer_module, "atomicReplace", slow_in_the_child)
        serializer = follower.replica._SyncObj__serializer
        follower.replica.forceLogCompaction()
        await local.wait_for(lambda: serializer._Serializer__pid > 0, what="the follower writing its own snapshot")
        own = follower.replica.raftLastApplied
        heal(local)
        await local.wait_for(lambda: follower.replica.raftLastApplied > own + 5, what="the leader's snapshot loaded")
        await local.wait_for(lambda: serializer._Serializer__pid == 0, what="the follower's own snapshot over")
        for i in range(5):
            await local.put(b"after%d" % i, b"v")
        await local.all_applied()
        held = follower.log()[-1]
        for m in local.members:
            m.stop()
        follower.start()  # alone: nobody can send it what it lost
        await local.wait_for(lambda: not follower.replica._SyncObj__needLoadDumpFile, what="the snapshot loaded")
        assert follower.log()[-1] == held
        assert follower.get(b"after4") == b"v"
    finally:
        local.close()


async def test_a_follower_that_cannot_load_the_leaders_snapshot_stops_without_acknowledging_it(tmp_path):
    """pysyncobj logged a snapshot that failed to load, answered the leader with success and went on, with the
    leader sending the same snapshot again and again. The follower stops now, and tells the leader nothing."""
    local = LocalCluster(tmp_path, 3, snapshot_entries=20)
    try:
        leader, follower = await _follower_cut_off_past_the_leaders_trim(local)
        applied = follower.replica.raftLastApplied  # cut off: it applies nothing more
        serializer = follower.replica._SyncObj__serializer
        receive = serializer.setTransmissionData

        def garbled(piece):  # the pieces reach a disk that gives back zeros
            return receive(None if piece is None else (b"\0" * len(piece[0]), *piece[1:]))

        serializer.setTransmissionData = garbled
        answers = []
        transport = follower.replica._SyncObj__transport
        send = transport.send
        transport.send = lambda node, message: (answers.append(message), send(node, message))[1]
        heal(local)
        await local.wait_for(lambda: follower.fatal, what="the follower giving up")
        assert "raft.snapshot.1.tmp did not load" in follower.fatal[0]
        assert not any(m.get("type") == "next_node_idx" and m.get("success") for m in answers)
        assert follower.replica.raftLastApplied == applied
        await local.put(b"after", b"v", via=leader)  # the other two go on
    finally:
        local.close()


async def test_a_follower_sent_a_snapshot_older_than_its_commit_index_keeps_its_state_and_log(tmp_path):
    """A leader sends its snapshot when it believes a follower's log ends before its own journal starts; a stale
    answer (one that says the follower's log is shorter than it is) makes it believe so. pysyncobj installed
    such a snapshot, older than what the follower had committed: the follower went back to that state and its
    journal was cleared, entries it had acknowledged included. It drops the snapshot now, as etcd does, and
    tells the leader where its log ends."""
    local = LocalCluster(tmp_path, 3, snapshot_entries=20)
    try:
        leader = await local.wait_for_leader()
        for i in range(30):
            await local.put(b"k%d" % i, b"v", via=leader)
        await local.wait_for(lambda: leader.journal[0][1] > 1, what="the leader's journal trimmed after a snapshot")
        for i in range(3):
            await local.put(b"more%d" % i, b"v", via=leader)
        await local.all_applied()
        follower = local.followers()[0]
        restored = []
        consumer = follower.replica.consumer
        on_restored = consumer._on_restored
        consumer._on_restored = lambda: (restored.append(follower.replica.raftLastApplied), on_restored())
        log_before, committed = follower.log(), follower.replica.raftCommitIndex
        node = leader.peer(follower.addr)
        leader.replica._SyncObj__raftNextIndex[node] = 1  # as a stale answer would: its snapshot goes next
        await local.wait_for(lambda: leader.replica._SyncObj__raftNextIndex[node] > committed,
                             what="the leader learning where the follower's log ends")
        await local.put(b"after", b"v", via=leader)
        await local.all_applied()
        assert restored == [], "the follower went back to the leader's older snapshot"
        now = {entry[1]: entry for entry in follower.log()}  # its own snapshot may have trimmed the oldest
        assert all(now.get(entry[1], entry) == entry for entry in log_before) and max(now) >= log_before[-1][1]
        assert follower.get(b"more2") == b"v" and follower.get(b"after") == b"v"
    finally:
        local.close()


class _PiecesApart:
    """Holds what `leader` sends `follower` after the first piece of a snapshot until the follower has ticked:
    pysyncobj sends all pieces at once, and a snapshot of a few pieces arrives in one read, but one of megabytes
    (the campaign's: 72 MB) arrives over many, with the follower's ticks in between."""

    def __init__(self, leader, follower) -> None:
        self.transport = leader.replica._SyncObj__transport
        self.follower = follower.addr
        self.held: list[tuple[object, dict]] | None = None  # None until the first piece has gone
        self.ticks_between = 0
        self.transport.send = self.send
        pacer = follower.replica._pace
        tick = pacer.tick

        def counted_tick() -> None:
            if self.held is not None:
                self.ticks_between += 1
            tick()

        pacer.tick = counted_tick

    def send(self, node, message) -> bool:
        if node.id != self.follower:
            return _SyncingTransport.send(self.transport, node, message)
        if self.held is not None:
            self.held.append((node, message))
            return True
        if message.get("serialized") is not None:
            self.held = []
        return _SyncingTransport.send(self.transport, node, message)

    def release(self) -> None:
        del self.transport.send
        for node, message in self.held:
            self.transport.send(node, message)


async def test_a_restarted_replica_loads_its_state_and_the_collector_leaves_it_alone(tmp_path):
    """The tick that loads the snapshot and applies the journal after it freezes what it loaded (gc.freeze):
    full collections would otherwise walk the whole state again and again, during the load and after it."""
    local = LocalCluster(tmp_path, 3)
    try:
        for i in range(20):
            await local.put(b"k%d" % i, b"v")
        await local.all_applied()
        follower = local.followers()[0]
        follower.replica.forceLogCompaction()
        await local.wait_for(lambda: os.path.exists(os.path.join(follower.data_dir, "raft.snapshot")),
                             what="a snapshot")
        follower.stop()
        gc.unfreeze()
        follower.start()
        await local.wait_for(lambda: not follower.replica._SyncObj__needLoadDumpFile, what="the state loaded")
        states = follower.replica.consumer.machine.index._keys[b"k0"]
        assert not any(o is states for o in gc.get_objects()), "the loaded state is still in the collector's view"
    finally:
        gc.unfreeze()
        local.close()


async def test_a_follower_cut_off_and_healed_does_not_depose_the_leader(local):
    """PreVote (Ongaro's thesis §9.6): a follower whose election timer keeps running out while it is cut off
    asks before it raises its term, and nobody says yes; when the link comes back the leader keeps its office
    and its term."""
    leader = await local.wait_for_leader()
    term = leader.replica.raftCurrentTerm
    follower = local.followers()[0]
    others = {m.addr for m in local.members if m is not follower}
    follower.replica.set_partitioned(others)
    for m in local.members:
        if m is not follower:
            m.replica.set_partitioned({follower.addr})
    rounds = follower.replica.pre_votes
    await local.wait_for(lambda: follower.replica.pre_votes >= rounds + 5, what="five election timeouts")
    await local.put(b"while-cut", b"v")
    for m in local.members:
        m.replica.set_partitioned(set())
    await local.all_applied()
    assert local.leader() is leader and leader.replica.raftCurrentTerm == term
    assert follower.replica.raftCurrentTerm == term


async def test_a_membership_change_waits_until_the_previous_one_is_committed(local, monkeypatch):
    """One change at a time (Raft thesis §4.1): after the first change timed out uncommitted (no quorum), a
    second is refused, not appended next to it."""
    from kvstore import membership
    from kvstore.errors import KVFailure

    monkeypatch.setattr(membership, "CHANGE_TIMEOUT", 0.3)  # before the leader notices it lost its quorum
    leader = await local.wait_for_leader()
    await local.put(b"k", b"v", via=leader)  # the leader has committed in its term: it may change membership
    for m in local.followers():
        m.stop()
    members = membership.Membership(leader.replica, leader.data_dir)
    with pytest.raises(KVFailure, match="not committed in time"):
        await members.add("127.0.0.1:1")
    assert leader.replica.membership_change_pending()
    with pytest.raises(KVFailure, match="another membership change is not committed yet"):
        await members.add("127.0.0.1:2")


async def test_a_restarted_member_keeps_a_membership_change_its_log_holds_past_the_saved_commit(local, monkeypatch):
    """A member uses the latest configuration in its log. A restart applied the journal only up to the commit
    index saved on disk (saved lazily): a member killed soon after another was added came back with the old
    configuration, whose majority it could count in an election while the others went on with the new one."""
    from kvstore import membership

    leader = await local.wait_for_leader()
    await local.put(b"k", b"v", via=leader)  # the leader has committed in its term: it may change membership
    follower = local.followers()[0]
    monkeypatch.setattr(follower.journal, "setRaftCommitIndex", lambda index: None)  # killed before it saves one
    added = f"127.0.0.1:{free_port()}"  # a member that never starts: 3 of the 4 still commit
    await membership.Membership(leader.replica, leader.data_dir).add(added)
    await local.wait_for(lambda: added in {n.id for n in follower.replica._SyncObj__otherNodes},
                         what="the follower appended the change")
    for m in local.members:
        m.stop()
    follower.start()  # alone: only its own log can tell it about the new member
    await local.wait_for(lambda: not follower.replica._SyncObj__needLoadDumpFile, what="the journal loaded")
    assert added in {n.id for n in follower.replica._SyncObj__otherNodes}


async def test_a_snapshot_keeps_the_configuration_at_its_index_not_a_change_appended_after_it(local):
    """pysyncobj wrote the configuration of the moment into a snapshot, a change appended after the snapshot's
    index and not yet committed included. A conflict later cut the change, and a restart took it back from the
    snapshot: the cut-off leader below came back counting a member nobody had added."""
    old = await local.wait_for_leader()
    await local.put(b"k", b"v", via=old)
    await local.all_applied()
    cut_off(local, old)
    added = f"127.0.0.1:{free_port()}"
    old.replica.addNodeToCluster(added)  # appended on the cut-off leader alone: never committed
    await local.wait_for(lambda: added in {n.id for n in old.replica._SyncObj__otherNodes},
                         what="the cut-off leader appended the change")
    serializer = old.replica._SyncObj__serializer
    old.replica.forceLogCompaction()
    await local.wait_for(lambda: serializer.checkSerializing()[0] == 1, what="the cut-off leader's snapshot")  # SUCCESS
    new = await local.wait_for(lambda: next((m for m in local.members if m is not old and m.replica._isLeader()),
                                            None), what="a new leader among the others")
    await local.put(b"after", b"v", via=new)
    heal(local)
    await local.wait_for(lambda: old.get(b"after") == b"v", what="the old leader caught up: its change cut")
    assert added not in {n.id for n in old.replica._SyncObj__otherNodes}
    for m in local.members:
        m.stop()
    old.start()
    await local.wait_for(old.replica.state_loaded.is_set, what="the snapshot loaded")
    assert added not in {n.id for n in old.replica._SyncObj__otherNodes}


async def test_a_master_whose_data_was_wiped_cannot_vote_as_the_member_it_was(tmp_path):
    """The issue's sequence: r1 down; W acknowledged by r2 and r3; r3 down; r2 wiped and restarted; r1
    back. r1 and the empty r2 must not elect a leader without W; r2 is told why; W survives r3's return."""
    local = LocalCluster(tmp_path, 3)
    try:
        r1, r2, r3 = local.members
        await local.put(b"before", b"1")
        await local.all_applied()  # every replica has met every other
        r1.stop()
        await local.put(b"W", b"acknowledged")
        r3.stop()
        r2.stop()
        shutil.rmtree(r2.data_dir)
        r2.start()
        r1.start()
        await local.wait_for(lambda: r2.fatal, what="r1 refusing the wiped r2")
        assert "member remove" in r2.fatal[0]
        assert local.leader() is None  # r1 cannot win without a real second vote (it may be trying)
        r2.stop()
        r3.start()
        await local.wait_for_leader()
        await local.put(b"after", b"1")
        await local.wait_for(lambda: r1.get(b"after") and r3.get(b"after"), what="r1 and r3 agree")
        assert r1.get(b"W") == r3.get(b"W") == b"acknowledged"
    finally:
        local.close()


async def test_entries_larger_than_pysyncobj_message_pieces_replicate_whole(local):
    """Concurrent big writes make batches of several hundred KB. pysyncobj would send an entry of 64 KiB or more
    in pieces and mark the last piece wrongly (by the command's length, not the pickled entry's): every entry
    must go whole, and every replica end with the same log."""
    leader = await local.wait_for_leader()

    async def writer(w):
        for i in range(5):
            await local.put(b"w%d/%d" % (w, i), bytes([w]) * 30_000, via=leader)

    await asyncio.gather(*(writer(w) for w in range(16)))
    await local.all_applied()
    biggest = max(len(entry[0]) for entry in leader.log())
    assert biggest > 64 * 1024, biggest  # the case this test is about happened
    logs = [m.log() for m in local.members]
    assert logs[0] == logs[1] == logs[2]


async def test_a_leader_whose_disk_is_slow_keeps_sending_heartbeats(local, monkeypatch):
    """While the leader's own fdatasync runs (here 1.5 s, three election timeouts), its followers must keep
    hearing from it: a slow disk is not a dead leader."""
    leader = await local.wait_for_leader()
    term = leader.replica.raftCurrentTerm
    real = os.fdatasync

    def fdatasync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").startswith(leader.data_dir):
            time.sleep(1.5)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    await local.put(b"slow", b"disk", via=leader)
    assert local.leader() is leader and leader.replica.raftCurrentTerm == term
    assert all(m.replica.raftCurrentTerm == term for m in local.members)


@pytest.fixture
def leader_disk_stuck(monkeypatch):
    """Holds every fdatasync of the data dir `hold(dir)` names until `release()`, as a slow disk would."""
    real, gate, held = os.fdatasync, threading.Event(), []

    def fdatasync(fd):
        if held and os.readlink(f"/proc/self/fd/{fd}").startswith(held[0]):
            gate.wait(10)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", fdatasync)
    yield types.SimpleNamespace(hold=held.append, release=gate.set)
    gate.set()


async def test_the_leader_commits_on_its_followers_disks_while_its_own_sync_runs(local, leader_disk_stuck):
    """Raft thesis §10.2.1: the leader sends before it writes, and an entry is committed once a majority has it
    on disk, whichever majority: two followers of three do, with the leader's fdatasync still running."""
    leader = await local.wait_for_leader()
    leader_disk_stuck.hold(leader.data_dir)
    await asyncio.wait_for(local.put(b"k", b"on the followers' disks", via=leader), 5)
    assert leader.replica._SyncObj__raftLog.durable_index < leader.replica.raftCommitIndex


async def test_the_leader_counts_itself_only_for_entries_on_its_own_disk(local, leader_disk_stuck):
    """With one follower cut off, the leader and the other follower are the only majority: an entry the
    follower holds on disk is not committed until the leader's own fdatasync has finished."""
    leader = await local.wait_for_leader()
    cut, other = local.followers()
    leader.replica.set_partitioned({cut.addr})
    leader_disk_stuck.hold(leader.data_dir)
    put = asyncio.create_task(local.put(b"k", b"v", via=leader))
    index = await local.wait_for(lambda: leader.replica._SyncObj__raftMatchIndex[leader.peer(other.addr)] >
                                 leader.replica._SyncObj__raftLog.durable_index, what="the follower's ack")
    assert index
    leader.replica._pace.tick()
    assert leader.replica.raftCommitIndex <= leader.replica._SyncObj__raftLog.durable_index and not put.done()
    leader_disk_stuck.release()
    await asyncio.wait_for(put, 5)


async def test_a_commit_index_update_draws_no_answer_and_every_other_append_does(local, monkeypatch):
    """After an entry commits, the leader tells its followers the new commit index in an append_entries with no
    entries, marked noack: an answer would tell the leader nothing (the follower's log did not change) and cost
    both sides a message per commit. Every other append_entries (with entries, or a heartbeat) is answered as
    before, and every follower still learns each commit."""
    leader = await local.wait_for_leader()
    term = leader.replica.raftCurrentTerm
    appends: dict[str, list[bool]] = {f.addr: [] for f in local.followers()}  # noack or not, per follower
    successes: dict[str, int] = {f.addr: 0 for f in local.followers()}
    by_transport = {id(m.replica._SyncObj__transport): m.addr for m in local.members}
    real_send_now = _SyncingTransport.send_now

    def send_now(transport, node, message):
        sent = real_send_now(transport, node, message)  # it marks the message
        sender = by_transport.get(id(transport))
        if sender == leader.addr and message.get("type") == "append_entries" and node.id in appends:
            appends[node.id].append(bool(message.get("noack")))
        elif sender in successes and message.get("type") == "next_node_idx" and message.get("success"):
            successes[sender] += 1
        return sent

    monkeypatch.setattr(_SyncingTransport, "send_now", send_now)
    for i in range(20):
        await local.put(b"k%d" % i, b"v")
    await local.all_applied()
    assert leader.replica.raftCurrentTerm == term and local.leader() is leader
    for follower, sent in appends.items():
        assert sent.count(True) >= 10, f"{follower}: the commit updates were not marked ({sent})"
        assert 0 < successes[follower] <= sent.count(False), (follower, successes[follower], sent)


async def test_a_forwarded_command_leaves_for_the_disks_before_its_answer(local, monkeypatch):
    """A follower forwards its clients' commands; the leader appends them in a tick and answers with their index
    ("apply_command_response"). It holds those answers until the tick's append_entries are out, so the entries
    reach the followers' disks first. The answer still comes before anything that commits the entry (an answer for
    an index the follower already applied is an unknown outcome to pysyncobj), and every forwarded put succeeds."""
    leader = await local.wait_for_leader()
    via = local.followers()[0]
    leader_transport = leader.replica._SyncObj__transport
    to_via: list[tuple[str, int]] = []  # (type, entries) of each message the leader sends the forwarding follower
    real_send_now = _SyncingTransport.send_now

    def send_now(transport, node, message):
        if transport is leader_transport and node.id == via.addr:
            to_via.append((message.get("type"), len(message.get("entries") or ())))
        return real_send_now(transport, node, message)

    monkeypatch.setattr(_SyncingTransport, "send_now", send_now)
    for i in range(5):
        await local.put(b"f%d" % i, b"v", via=via)
    await local.all_applied()
    answers = [i for i, (kind, _) in enumerate(to_via) if kind == "apply_command_response"]
    assert len(answers) == 5, to_via
    for i in answers:
        kind, entries = to_via[i - 1]
        assert kind == "append_entries" and entries >= 1, to_via
    assert [via.get(b"f%d" % i) for i in range(5)] == [b"v"] * 5


def cut_off(local: LocalCluster, member) -> None:
    member.replica.set_partitioned({m.addr for m in local.members if m is not member})
    for m in local.members:
        if m is not member:
            m.replica.set_partitioned({member.addr})


def heal(local: LocalCluster) -> None:
    for m in local.members:
        m.replica.set_partitioned(set())


async def test_an_election_timer_running_out_during_a_tick_starts_a_pre_vote_not_an_election(local, monkeypatch):
    """pysyncobj reads the election timer again after maybe_pre_vote, in the same tick, after its once-a-second
    journal work: a timer that ran out in between started a real election, a new term, on a follower cut off from
    everyone (a full run caught one). A timer that close to running out counts as run out for the pre-vote."""
    leader = await local.wait_for_leader()
    term = leader.replica.raftCurrentTerm
    follower = local.followers()[0]
    replica = follower.replica
    cut_off(local, follower)
    pre_vote = replica.maybe_pre_vote

    def pre_vote_then_journal_work() -> None:
        pre_vote()
        time.sleep(PRE_VOTE_MARGIN)  # the time before pysyncobj reads the timer again, made long

    monkeypatch.setattr(replica, "maybe_pre_vote", pre_vote_then_journal_work)
    rounds = replica.pre_votes
    for _ in range(3):
        replica._SyncObj__raftElectionDeadline = raft_clock() + PRE_VOTE_MARGIN / 2
        replica._pace.tick()
        assert replica.raftCurrentTerm == term
    assert replica.pre_votes == rounds + 3
    heal(local)
    await local.put(b"after", b"v", via=leader)
    await local.all_applied()
    assert local.leader() is leader and leader.replica.raftCurrentTerm == term


async def test_a_follower_left_in_a_newer_term_rejoins_when_the_older_leader_reaches_it(local):
    """A follower that a partition left in a newer term with no leader ignores the leader's older term, and the
    others, who hear from that leader, deny it their pre-votes: it was lost for good. Reached by the older leader,
    it now campaigns when its timer runs out; the cluster moves to its term, elects a leader every member
    follows, and the follower has what was written meanwhile and after."""
    leader = await local.wait_for_leader()
    follower = local.followers()[0]
    replica = follower.replica
    cut_off(local, follower)
    replica._SyncObj__setCurrentTerm(replica.raftCurrentTerm + 1, None)  # an election it started while cut off
    replica._SyncObj__raftLeader = None
    await local.put(b"while-cut", b"v", via=leader)
    heal(local)
    await local.wait_for(lambda: local.leader() is not None and follower.get(b"while-cut") == b"v",
                         what="the follower back with the cluster")
    await local.put(b"after", b"v")
    await local.all_applied()
    assert follower.get(b"after") == b"v"
    terms = {m.replica.raftCurrentTerm for m in local.members}
    assert len(terms) == 1, terms
