"""The state machine in a snapshot (kvstore/snapshot_state.py): what comes back is what went in."""
import msgpack
from pysyncobj import pickle as raft_pickle

from kvstore.key_index import KeyIndex
from kvstore.kv import Event, KeyValue
from kvstore.mvcc import StateMachine
from kvstore.snapshot_state import pack_history, pack_states, unpack_history, unpack_states


def _busy_machine() -> StateMachine:
    m = StateMachine()
    lease = ok(m, {"op": "lease_grant", "id": 7, "ttl": 60})["id"]
    for i in range(30):
        ok(m, {"op": "put", "key": b"k%d" % (i % 7), "value": b"v%d" % i, "lease": lease if i % 5 == 0 else 0})
    ok(m, {"op": "delete_range", "key": b"k3"})
    ok(m, {"op": "txn", "compare": [], "failure": [],
           "success": [{"op": "put", "key": b"t%d" % j, "value": b"x"} for j in (2, 1, 3)]})
    ok(m, {"op": "compact", "revision": 12})
    ok(m, {"op": "put", "key": b"k3", "value": b"again"})
    assert m.compact_revision == 12 and len(m.history) > 10
    return m


def ok(m: StateMachine, req: dict):
    result, _ = m.apply({"req": req})
    assert isinstance(result, dict), result
    return result


def test_a_snapshot_gives_back_the_same_keys_history_and_answers():
    m = _busy_machine()
    again = raft_pickle.loads(raft_pickle.dumps(m))  # pysyncobj's pickle, as its snapshots
    assert again.revision == m.revision and again.compact_revision == m.compact_revision
    assert again.history == m.history  # in the order applied, even inside one txn
    assert again.range({"key": b"\0", "range_end": b"\0"}) == m.range({"key": b"\0", "range_end": b"\0"})
    assert again.range({"key": b"k1", "revision": 14}) == m.range({"key": b"k1", "revision": 14})
    assert again.events_since(13) == m.events_since(13)
    assert again.index.live_count == m.index.live_count
    assert all(type(ev) is Event and type(ev.kv) is KeyValue for ev in again.history)
    packed = msgpack.unpackb(m.__getstate__()["history"], strict_map_key=False)
    assert "whole" not in packed and packed["gone"]  # by reference; a previous state compaction dropped, whole
    last_k1 = next(ev for ev in reversed(again.history) if ev.kv.key == b"k1")
    assert last_k1.kv is again.index._keys[b"k1"][-1]  # one object, shared as before the snapshot
    for m2 in (m, again):  # both go on alike
        m2.apply({"req": {"op": "put", "key": b"k1", "value": b"after"}})
    assert again.history[-1] == m.history[-1]


def test_an_event_the_index_does_not_hold_is_kept_whole():
    kept = KeyValue(b"kept", b"v", 2, 2, 1)
    events = [Event(0, kept, None), Event(0, KeyValue(b"gone", b"v", 3, 3, 1), None)]
    assert unpack_history(pack_history(events, [[kept]]), [[kept]]) == events
    assert unpack_history(pack_history(events[:1], [[kept]]), [[kept]])[0].kv is kept  # by reference


def test_a_snapshot_of_the_older_format_still_loads():
    """Before snapshot_state.py, a snapshot held the index's attributes and the history's events themselves."""
    m = _busy_machine()
    index = KeyIndex.__new__(KeyIndex)
    index.__setstate__(dict(m.index.__dict__))
    machine = StateMachine.__new__(StateMachine)
    machine.__setstate__({**m.__dict__, "index": index, "history": list(m.history)})
    assert machine.range({"key": b"\0", "range_end": b"\0"}) == m.range({"key": b"\0", "range_end": b"\0"})
    assert machine.history == m.history



def test_states_come_back_per_key_with_one_state_each_or_many():
    one = [[KeyValue(b"a", b"1", 2, 2, 1)], [KeyValue(b"b", b"2", 3, 3, 1)]]
    many = [one[0] + [KeyValue(b"a", b"", 2, 4, 0)], one[1]]  # "a" deleted at 4: a tombstone after its put
    for lists in (one, many, []):
        again = unpack_states(pack_states(lists))
        assert again == lists and all(type(kv) is KeyValue for states in again for kv in states)
    assert msgpack.unpackb(pack_states(one))[0] is None  # no counts when every key has one state
    assert msgpack.unpackb(pack_states(many))[0] == [2, 1]


def test_a_snapshot_with_the_states_nested_per_key_still_loads():
    """Before the flat array, the blob held one array of states per key."""
    m = _busy_machine()
    index = KeyIndex.__new__(KeyIndex)
    index.__setstate__({"states": msgpack.packb(m.index.state_lists()), "with_history": m.index._with_history,
                        "live_count": m.index.live_count})
    assert index.state_lists() == m.index.state_lists()
    assert index.range(b"\0", b"\0") == m.index.range(b"\0", b"\0")
