"""The Store's pipeline against a scripted replica: group commit, linearizable reads, retries, deadlines."""
import asyncio

import msgpack
import pytest
from pysyncobj.config import FAIL_REASON

from kvstore import errors
from kvstore.errors import KVFailure
from kvstore.mvcc import StateMachine
from kvstore.read_index import ReadIndexLost
from kvstore.store import Store


class ScriptedReplica:
    """Records each proposed batch; the test decides when and how each one completes."""

    def __init__(self):
        self.consumer = self
        self.machine = StateMachine()
        self.proposals: list[tuple[list[dict], object]] = []
        self.always_fail: int | None = None  # a FAIL_REASON every proposal meets at once
        self.reads: list[asyncio.Future] = []  # what read_index() handed out, for the test to settle
        self.state_loaded = asyncio.Event()
        self.state_loaded.set()  # the state on disk is loaded

    def read_index(self):
        self.reads.append(asyncio.get_running_loop().create_future())
        return self.reads[-1]

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


async def test_a_linearizable_read_waits_for_its_read_index_and_takes_no_log_entry():
    replica = ScriptedReplica()
    store = Store(replica, name="m1")
    replica.machine.apply({"req": {"op": "put", "key": b"k", "value": b"1"}})
    read = asyncio.create_task(store.range({"key": b"k"}))
    await settle()
    assert not read.done() and len(replica.reads) == 1 and replica.proposals == []
    replica.reads[0].set_result(None)
    assert (await read)["kvs"][0].value == b"1"


async def test_a_master_still_loading_its_state_answers_no_read_not_even_a_serializable_one():
    replica = ScriptedReplica()
    replica.state_loaded.clear()
    store = Store(replica, name="m1")
    for serializable in (True, False):
        with pytest.raises(KVFailure) as err:
            await store.range({"key": b"k"}, serializable=serializable)
        assert err.value.error.code == errors.UNAVAILABLE and "m1 is still loading" in err.value.error.message
    assert replica.reads == []


async def test_a_read_whose_leader_changed_asks_again_and_times_out_as_no_quorum():
    replica = ScriptedReplica()
    store = Store(replica, name="m1", deadline=0.3)
    read = asyncio.create_task(store.read_index())
    await settle()
    replica.reads[0].set_exception(ReadIndexLost("the raft leader changed"))
    while len(replica.reads) < 2:
        await asyncio.sleep(0.01)
    replica.reads[1].set_result(None)
    await read
    with pytest.raises(KVFailure) as err:
        await store.read_index()  # nobody answers this one
    assert err.value.error.code == 14 and "linearizable read" in err.value.error.message


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
