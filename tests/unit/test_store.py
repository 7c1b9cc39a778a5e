"""The Store's pipeline against a scripted replica: group commit, shared barriers, retries, deadlines."""
import asyncio

import msgpack
import pytest
from pysyncobj.config import FAIL_REASON

from kvstore.errors import KVFailure
from kvstore.mvcc import StateMachine
from kvstore.store import Store


class ScriptedReplica:
    """Records each proposed batch; the test decides when and how each one completes."""

    def __init__(self):
        self.consumer = self
        self.machine = StateMachine()
        self.proposals: list[tuple[list[dict], object]] = []
        self.always_fail: int | None = None  # a FAIL_REASON every proposal meets at once

    def apply_batch(self, packed, callback):
        self.proposals.append((msgpack.unpackb(packed, raw=False), callback))
        if self.always_fail is not None:
            callback(None, self.always_fail)

    def wake(self):
        pass

    def commit(self, i):
        commands, callback = self.proposals[i]
        callback([self.machine.apply(c)[0] for c in commands], FAIL_REASON.SUCCESS)

    def fail(self, i, reason):
        self.proposals[i][1](None, reason)

    def getStatus(self):
        return {"state": 0, "leader": None, "raft_term": 3, "commit_idx": 0, "last_applied": 0,
                "has_quorum": False, "self": type("N", (), {"id": "127.0.0.1:1"})()}


async def settle():
    for _ in range(5):
        await asyncio.sleep(0)


async def test_writes_that_arrive_while_batches_are_in_flight_share_the_next_batch():
    replica = ScriptedReplica()
    store = Store(replica, name="m1", max_inflight=1)
    first = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}))
    await settle()
    rest = [asyncio.create_task(store.propose({"op": "put", "key": b"k%d" % i, "value": b""})) for i in range(10)]
    await settle()
    assert len(replica.proposals) == 1  # the others wait for the one in flight
    replica.commit(0)
    await settle()
    assert len(replica.proposals) == 2 and len(replica.proposals[1][0]) == 10
    replica.commit(1)
    assert (await first)["revision"] == 2
    assert sorted(r["revision"] for r in await asyncio.gather(*rest)) == list(range(3, 13))


async def test_reads_share_a_queued_barrier_but_never_one_already_proposed():
    """A barrier proposed before a read began cannot order that read after earlier writes."""
    replica = ScriptedReplica()
    store = Store(replica, name="m1", max_inflight=1)
    write = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}))
    await settle()
    reads = [asyncio.create_task(store.read_index()) for _ in range(5)]
    await settle()
    replica.commit(0)
    await settle()
    assert [c["req"]["op"] for c in replica.proposals[1][0]] == ["noop"]  # one barrier for five reads
    replica.commit(1)
    await asyncio.gather(write, *reads)
    late = asyncio.create_task(store.read_index())
    await settle()
    assert not late.done() and len(replica.proposals) == 3  # a fresh barrier, not the finished one
    later = asyncio.create_task(store.read_index())  # arrives while that barrier is on its way
    await settle()
    replica.commit(2)
    await late
    await settle()
    assert not later.done() and len(replica.proposals) == 4  # so it needs one of its own
    replica.commit(3)
    await later


async def test_a_failed_proposal_is_retried_with_the_same_request_id():
    replica = ScriptedReplica()
    store = Store(replica, name="m1")
    write = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}))
    await settle()
    replica.fail(0, FAIL_REASON.LEADER_CHANGED)
    await asyncio.sleep(0.05)
    assert len(replica.proposals) == 2
    assert replica.proposals[0][0][0]["id"] == replica.proposals[1][0][0]["id"]
    replica.commit(0)  # the first attempt did make it into the log after all
    replica.commit(1)  # ...and the retry is applied once
    assert (await write)["revision"] == 2 and replica.machine.revision == 2


@pytest.mark.parametrize("reason,outcome", [
    (FAIL_REASON.MISSING_LEADER, "the request was not applied"),
    (FAIL_REASON.LEADER_CHANGED, "may still be applied"),
])
async def test_the_deadline_error_says_no_quorum_and_whether_it_may_apply(reason, outcome):
    replica = ScriptedReplica()
    store = Store(replica, name="m1", deadline=0.2)
    replica.always_fail = reason
    write = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}))
    with pytest.raises(KVFailure) as err:
        await write
    assert err.value.error.code == 14 and "no quorum" in err.value.error.message
    assert outcome in err.value.error.message


async def test_a_batch_whose_answer_never_comes_frees_its_slot_at_the_deadline():
    """pysyncobj may never call back (a forwarded command dropped while the link to the leader is down, a
    snapshot install that jumps the applied index): with every slot taken by such batches the master would
    answer 503 to every later write. The slot comes back at the deadline and the requests go back in line."""
    replica = ScriptedReplica()
    store = Store(replica, name="m1", deadline=0.1, max_inflight=1)
    lost = asyncio.create_task(store.propose({"op": "put", "key": b"a", "value": b"1"}, timeout=5))
    await settle()
    assert len(replica.proposals) == 1  # its callback is never called
    later = asyncio.create_task(store.propose({"op": "put", "key": b"b", "value": b"2"}, timeout=5))
    for _ in range(200):  # the deadline is 0.1 s: 2 s is plenty
        if len(replica.proposals) >= 2:
            break
        await asyncio.sleep(0.01)
    assert len(replica.proposals) == 2, "the lost batch still holds the only slot"
    retried = replica.proposals[1][0]
    assert [c["req"]["key"] for c in retried] == [b"a", b"b"]  # the lost request first, with its id
    assert retried[0]["id"] == replica.proposals[0][0][0]["id"]
    replica.commit(1)
    assert (await lost)["revision"] == 2 and (await later)["revision"] == 3
    replica.commit(0)  # the lost answer arrives after all: nothing changes, no slot is given back twice
    await settle()
    assert store._inflight == 0


async def test_a_request_too_large_for_one_raft_entry_is_refused_before_it_is_proposed():
    replica = ScriptedReplica()
    store = Store(replica, name="m1")
    with pytest.raises(KVFailure, match="request is too large"):
        await store.propose({"op": "put", "key": b"a", "value": b"x" * (9 << 20)})
    assert replica.proposals == []
