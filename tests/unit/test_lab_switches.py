"""Each lab's switch (kvstore/mechanisms.py) turns exactly its mechanism off, and only a lab does: the parts default
to every mechanism on. The labs' catalog (raftkube/labs.py) has a lab for every switch, with faults the nemesis
knows and anomalies the findings name."""
import asyncio
import dataclasses
import os

import pytest

from kvstore import mechanisms
from kvstore.disk_sync import DiskSync
from kvstore.journal import DurableJournal
from kvstore.lessor import Lessor
from kvstore.member_identity import MemberIdentity
from kvstore.store import Store
from kvstore.watch import DROP_EVERY, WatchHub
from raftkube import lab, labs
from raftkube.findings import GUARANTEES
from raftkube.nemesis import FAULTS, TARGETED_FAULTS
from tests.unit.test_lessor import Clock
from tests.unit.test_store import ScriptedReplica, settle
from tests.unit.test_watch_hub import LocalStore, drain


def test_each_lab_switches_one_mechanism_off_and_nothing_else_does():
    assert mechanisms.without(None) == mechanisms.ALL and all(dataclasses.astuple(mechanisms.ALL))
    for name, field in mechanisms.LABS.items():
        off = mechanisms.without(name)
        assert [f.name for f in dataclasses.fields(off) if not getattr(off, f.name)] == [field]
    with pytest.raises(ValueError, match="no lab"):
        mechanisms.without("typo")


def test_the_catalog_has_a_lab_for_every_switch_with_known_faults_and_findings():
    assert [x.name for x in labs.LABS] == list(mechanisms.LABS)
    for x in labs.LABS:
        assert set(x.expect) <= set(GUARANTEES)
        assert set(x.plan.faults + x.plan.held) <= set(FAULTS + TARGETED_FAULTS)
        assert os.path.exists(x.where.split(":")[0]), x.where
        assert lab.plan(x).master_flags == ("--lab", x.name)
        assert lab.plan(x, control=True, seconds=3).master_flags == () and lab.plan(x, seconds=3).seconds == 3


async def test_stale_reads_answer_without_read_index():
    replica = ScriptedReplica()
    store = Store(replica, name="m1", mechanisms=mechanisms.without("stale-reads"))
    replica.machine.apply({"req": {"op": "put", "key": b"k", "value": b"1"}})
    assert (await store.range({"key": b"k"}))["kvs"][0].value == b"1" and replica.reads == []


async def test_a_deposed_leader_reads_locally_a_follower_still_waits_for_read_index():
    replica = ScriptedReplica()
    store = Store(replica, name="m1", mechanisms=mechanisms.without("deposed-leader"))
    replica._isLeader = lambda: True
    await store.range({"key": b"k"})
    assert replica.reads == []
    replica._isLeader = lambda: False
    read = asyncio.create_task(store.range({"key": b"k"}))
    await settle()
    assert not read.done() and len(replica.reads) == 1
    replica.reads[0].set_result(None)
    await read


async def test_early_ack_answers_a_write_before_its_batch_commits():
    replica = ScriptedReplica()
    store = Store(replica, name="m1", mechanisms=mechanisms.without("early-ack"))
    put = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}))
    txn = asyncio.create_task(store.propose({"op": "txn", "compare": [{"key": b"a", "target": "VERSION",
                                                                       "result": "EQUAL", "version": 0}],
                                             "success": [], "failure": []}))
    await settle()
    assert put.done() and (await put)["revision"] == 2 and (await txn)["succeeded"]
    assert replica.proposals and replica.machine.revision == 1  # proposed, not applied anywhere
    for i in range(len(replica.proposals)):
        replica.commit(i)  # the real answers come later, and nobody waits for them
    await settle()


async def test_skip_fsync_answers_at_once_and_keeps_the_bytes_in_the_process_until_writeback(tmp_path):
    path = str(tmp_path / "raft.journal")
    journal = DurableJournal(path)
    disk = DiskSync(journal, asyncio.get_running_loop(), fsync=False)
    journal.add(b"c1", 1, 1)
    answered = []
    disk.when_durable(lambda: answered.append(True))
    assert answered and not disk.needs_sync() and os.path.getsize(path) == 0  # a power cut would lose it
    disk._write_back()  # the kernel's flusher, in this lab: into the file, still without fdatasync
    assert os.path.getsize(path) > 0
    disk.close()


async def test_an_honest_disk_sync_needs_a_sync_for_unwritten_entries(tmp_path):
    journal = DurableJournal(str(tmp_path / "raft.journal"))
    disk = DiskSync(journal, asyncio.get_running_loop())
    journal.add(b"c1", 1, 1)
    assert disk.needs_sync()
    done = asyncio.Event()
    disk.when_durable(done.set)
    await asyncio.wait_for(done.wait(), 5)
    assert not disk.needs_sync()
    disk.close()


async def test_the_lossy_hub_leaves_out_one_event_in_drop_every():
    store, hub = LocalStore(), WatchHub(every_event=False)
    sink = asyncio.Queue()
    hub.open(store, watch_id=0, key=b"k", range_end=b"l", start_revision=0, sink=sink)
    for i in range(2 * DROP_EVERY):
        _, events = store.put(b"k", b"%d" % i)
        hub.publish(events, store.machine.revision)
    delivered = [e.revision for _, evs in drain(sink) for e in evs]
    assert len(delivered) == 2 * DROP_EVERY - 2 and delivered == sorted(delivered)


def test_without_the_grace_a_new_leader_keeps_the_deadlines_it_noted_as_a_follower():
    clock = Clock()
    lessor = Lessor(clock, full_ttl_on_promotion=False)
    lessor.refreshed(1, 10)
    clock.now += 9.5
    lessor.promote({1: 10})
    clock.now += 1
    assert lessor.expired({1: 10}) == [1]


def test_without_identity_checks_a_wiped_member_is_taken_for_the_one_it_was(tmp_path):
    strict, lax = MemberIdentity(str(tmp_path)), MemberIdentity(str(tmp_path), enforced=False)
    for identity in (strict, lax):
        assert identity.check("m2:7001", "old-id") is None  # learnt at first contact
    assert "member old-id" in strict.check("m2:7001", "new-id") and lax.check("m2:7001", "new-id") is None
