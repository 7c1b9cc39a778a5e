"""The MVCC state machine alone: etcd v3 semantics with no thread, socket or clock."""
import copy
import pickle
import random

import msgpack

from kvstore import errors
from kvstore.kv import DELETE, PUT
from kvstore.mvcc import StateMachine


def run(m: StateMachine, req, rid=None):
    result, _ = m.apply({"id": rid, "req": req})
    return result


def put(m, key, value, **kw):
    return run(m, {"op": "put", "key": key, "value": value, **kw})


def get(m, key, **kw):
    return m.range({"key": key, **kw})


def test_every_write_raises_the_revision_by_exactly_one():
    m = StateMachine()
    assert m.revision == 1
    assert put(m, b"a", b"1")["revision"] == 2
    assert put(m, b"b", b"1")["revision"] == 3
    res = run(m, {"op": "txn", "success": [{"op": "put", "key": b"c", "value": b""},
                                            {"op": "put", "key": b"d", "value": b""}]})
    assert res["revision"] == 4 and m.revision == 4
    assert run(m, {"op": "delete_range", "key": b"a", "range_end": b"z"})["deleted"] == 4
    assert m.revision == 5


def test_reads_and_noop_deletes_leave_the_revision_alone():
    m = StateMachine()
    put(m, b"a", b"1")
    assert run(m, {"op": "delete_range", "key": b"zz"})["deleted"] == 0
    assert run(m, {"op": "txn", "success": [{"op": "range", "key": b"a"}]})["revision"] == 2
    assert run(m, {"op": "lease_grant", "ttl": 10})["revision"] == 2
    assert m.revision == 2


def test_versions_and_create_revision_follow_a_keys_generations():
    m = StateMachine()
    put(m, b"k", b"1")
    put(m, b"k", b"2")
    kv = get(m, b"k")["kvs"][0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (2, 3, 2)
    run(m, {"op": "delete_range", "key": b"k"})
    assert get(m, b"k")["kvs"] == []
    put(m, b"k", b"3")
    kv = get(m, b"k")["kvs"][0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (5, 5, 1)


def test_range_prefix_limit_count_keys_only_and_all_keys():
    m = StateMachine()
    for k in [b"a/1", b"a/2", b"a/3", b"b/1"]:
        put(m, k, b"v" + k)
    res = get(m, b"a/", range_end=b"a0", limit=2)
    assert [kv.key for kv in res["kvs"]] == [b"a/1", b"a/2"] and res["more"] and res["count"] == 3
    assert get(m, b"a/", range_end=b"a0", count_only=True)["kvs"] == []
    assert get(m, b"a/", range_end=b"a0", count_only=True)["count"] == 3
    assert {kv.value for kv in get(m, b"a/", range_end=b"a0", keys_only=True)["kvs"]} == {b""}
    assert get(m, b"\0", range_end=b"\0")["count"] == 4
    desc = get(m, b"a", range_end=b"c", sort_order="DESCEND", sort_target="KEY")["kvs"]
    assert [kv.key for kv in desc] == [b"b/1", b"a/3", b"a/2", b"a/1"]


def test_read_at_an_older_revision_sees_that_revision():
    m = StateMachine()
    put(m, b"k", b"old")  # rev 2
    put(m, b"k", b"new")  # rev 3
    run(m, {"op": "delete_range", "key": b"k"})  # rev 4
    assert get(m, b"k", revision=2)["kvs"][0].value == b"old"
    assert get(m, b"k", revision=3)["kvs"][0].value == b"new"
    assert get(m, b"k", revision=4)["kvs"] == []
    assert get(m, b"k", revision=9) == errors.FUTURE_REV



def test_every_range_at_every_revision_matches_a_replay_of_the_writes():
    """Ranges slice the sorted index by position: bounds, tombstones, new generations, old revisions and
    compaction against a dict rebuilt from the writes up to each revision."""
    rnd = random.Random(7)
    m = StateMachine()
    keys = [b"k%d" % i for i in range(12)]
    writes = []  # (revision, key, value or None for a delete)
    for _ in range(150):
        key = rnd.choice(keys)
        if rnd.random() < 0.3:
            if run(m, {"op": "delete_range", "key": key})["deleted"]:
                writes.append((m.revision, key, None))
        else:
            put(m, key, b"%d" % m.revision)
            writes.append((m.revision, key, b"%d" % (m.revision - 1)))
    compacted = m.revision // 2
    run(m, {"op": "compact", "revision": compacted})
    bounds = [b"", b"\0", b"k", b"k1", b"k10", b"k5", b"k9", b"l"]
    for revision in range(compacted, m.revision + 1):
        state = {}
        for rev, key, value in writes:
            if rev <= revision:
                state.pop(key) if value is None else state.__setitem__(key, value)
        for start in bounds[1:]:
            for end in bounds:
                res = get(m, start, range_end=end, revision=revision if revision < m.revision else 0)
                if end == b"\0":
                    want = sorted(k for k in state if k >= start)
                elif end:
                    want = sorted(k for k in state if start <= k < end)
                else:
                    want = [start] if start in state else []
                assert [kv.key for kv in res["kvs"]] == want, (start, end, revision)
                assert [kv.value for kv in res["kvs"]] == [state[k] for k in want]
                assert res["count"] == len(want)

def test_compaction_forgets_old_revisions_and_reports_etcds_error():
    m = StateMachine()
    for i in range(5):
        put(m, b"k", str(i).encode())  # revs 2..6
    put(m, b"gone", b"x")  # rev 7
    run(m, {"op": "delete_range", "key": b"gone"})  # rev 8
    assert run(m, {"op": "compact", "revision": 5}) == {"revision": 8}
    assert get(m, b"k", revision=4) == errors.COMPACTED
    assert get(m, b"k", revision=5)["kvs"][0].value == b"3"
    assert get(m, b"k")["kvs"][0].value == b"4"
    assert run(m, {"op": "compact", "revision": 5}) == errors.COMPACTED
    assert run(m, {"op": "compact", "revision": 99}) == errors.FUTURE_REV
    assert m.events_since(3) == errors.COMPACTED
    assert [e.revision for e in m.events_since(5)] == [5, 6, 7, 8]
    run(m, {"op": "compact", "revision": 8})
    assert b"gone" not in [states[0].key for states in m.index.state_lists()]


def test_txn_compares_on_every_target_and_runs_one_branch():
    m = StateMachine()
    put(m, b"k", b"v", )  # create 2, mod 2, version 1
    cases = [
        ({"target": "VALUE", "result": "EQUAL", "value": b"v"}, True),
        ({"target": "VALUE", "result": "NOT_EQUAL", "value": b"v"}, False),
        ({"target": "VERSION", "result": "GREATER", "version": 0}, True),
        ({"target": "CREATE", "result": "EQUAL", "create_revision": 2}, True),
        ({"target": "MOD", "result": "LESS", "mod_revision": 2}, False),
        ({"target": "LEASE", "result": "EQUAL", "lease": 0}, True),
    ]
    for compare, expected in cases:
        res = run(m, {"op": "txn", "compare": [{"key": b"k", **compare}],
                      "success": [{"op": "range", "key": b"k"}],
                      "failure": [{"op": "range", "key": b"missing"}]})
        assert res["succeeded"] is expected, compare
    # A missing key compares as version 0 (create-if-absent), and its value never matches.
    res = run(m, {"op": "txn", "compare": [{"key": b"new", "target": "VERSION", "version": 0}],
                  "success": [{"op": "put", "key": b"new", "value": b"1"}]})
    assert res["succeeded"] and get(m, b"new")["count"] == 1
    res = run(m, {"op": "txn", "compare": [{"key": b"nope", "target": "VALUE", "result": "NOT_EQUAL", "value": b"x"}]})
    assert res["succeeded"] is False


def test_nested_txn_and_duplicate_keys():
    m = StateMachine()
    res = run(m, {"op": "txn", "success": [
        {"op": "put", "key": b"a", "value": b"1"},
        {"op": "txn", "compare": [{"key": b"a", "target": "VERSION", "version": 0}],
         "success": [{"op": "put", "key": b"b", "value": b"chosen before the txn ran"}]},
    ]})
    assert res["succeeded"] and res["responses"][1]["succeeded"] is True
    assert get(m, b"b")["count"] == 1 and m.revision == 2
    dup = run(m, {"op": "txn", "success": [{"op": "put", "key": b"x", "value": b""},
                                          {"op": "put", "key": b"x", "value": b""}]})
    assert dup == errors.DUPLICATE_KEY
    overlap = run(m, {"op": "txn", "success": [{"op": "put", "key": b"x", "value": b""},
                                              {"op": "delete_range", "key": b"a", "range_end": b"z"}]})
    assert overlap == errors.DUPLICATE_KEY and m.revision == 2


def test_a_failing_txn_changes_nothing():
    m = StateMachine()
    res = run(m, {"op": "txn", "success": [{"op": "put", "key": b"a", "value": b"1"},
                                          {"op": "put", "key": b"b", "value": b"1", "lease": 42}]})
    assert res == errors.LEASE_NOT_FOUND
    assert get(m, b"a")["count"] == 0 and m.revision == 1


def test_leases_attach_keys_and_revoke_deletes_them_as_events():
    m = StateMachine()
    lease = run(m, {"op": "lease_grant", "ttl": 5, "id": 77})
    assert lease["id"] == 77
    assert run(m, {"op": "lease_grant", "ttl": 5, "id": 77}) == errors.LEASE_EXISTS
    put(m, b"a", b"1", lease=77)
    put(m, b"b", b"1", lease=77)
    ttl = m.lease_time_to_live(77, lambda lease_id, ttl: ttl - 1, True)
    assert (ttl["ttl"], ttl["granted_ttl"], ttl["keys"]) == (4, 5, [b"a", b"b"])
    result, events = m.apply({"id": None, "req": {"op": "lease_revoke", "id": 77}})
    assert result == {"revision": 4}  # puts at 2 and 3, one revision for the whole revoke
    assert [(e.type, e.kv.key, e.revision) for e in events] == [(DELETE, b"a", 4), (DELETE, b"b", 4)]
    assert run(m, {"op": "lease_revoke", "id": 77}) == errors.LEASE_NOT_FOUND


def test_a_lease_expires_as_the_leader_saw_it_unless_a_keepalive_came_since():
    """The leader names each expired lease with the refresh count it saw (kvstore/lessor.py decides when)."""
    m = StateMachine()
    a = run(m, {"op": "lease_grant", "ttl": 10}, rid=1)["id"]
    b = run(m, {"op": "lease_grant", "ttl": 10}, rid=2)["id"]
    put(m, b"k", b"v", lease=a)
    seen = m.lease_refreshes([a, b])
    run(m, {"op": "lease_keepalive", "id": b})  # committed between the leader's decision and its proposal
    assert run(m, {"op": "lease_expire", "leases": seen})["expired"] == [a]
    assert get(m, b"k")["count"] == 0 and m.leases.get(b) is not None


def test_a_retried_request_id_is_applied_once():
    m = StateMachine()
    first = run(m, {"op": "put", "key": b"k", "value": b"1"}, rid=(9, 1))
    again = run(m, {"op": "put", "key": b"k", "value": b"1"}, rid=(9, 1))
    assert first == again and m.revision == 2
    assert get(m, b"k")["kvs"][0].version == 1


def test_apply_never_raises_on_garbage():
    m = StateMachine()
    for junk in [{}, {"req": None}, {"req": {"op": "nope"}}, {"req": {"op": "put"}},
                 {"req": {"op": "txn", "success": [{"op": "put"}]}}, {"req": {"op": "compact", "revision": "x"}},
                 {"req": {"op": "txn", "compare": [{"key": b"k", "target": "VERSION", "version": "abc"}]}}]:
        result, events = m.apply(junk)
        assert isinstance(result, errors.KVError) and events == []
    assert m.revision == 1


def test_watch_history_has_every_event_with_prev_kv():
    m = StateMachine()
    put(m, b"k", b"1")
    put(m, b"k", b"2")
    run(m, {"op": "delete_range", "key": b"k"})
    evs = m.events_since(0)
    assert [(e.type, e.revision) for e in evs] == [(PUT, 2), (PUT, 3), (DELETE, 4)]
    assert evs[1].prev_kv.value == b"1" and evs[2].prev_kv.value == b"2"
    assert [e.revision for e in m.events_since(3)] == [3, 4]


def _random_commands(rng: random.Random, n: int):
    keys = [b"k%d" % i for i in range(8)]
    for i in range(n):
        kind = rng.random()
        if kind < 0.5:
            req = {"op": "put", "key": rng.choice(keys), "value": b"%d" % i}
        elif kind < 0.7:
            req = {"op": "delete_range", "key": rng.choice(keys), "range_end": rng.choice([b"", b"k5"])}
        elif kind < 0.9:
            k = rng.choice(keys)
            req = {"op": "txn", "compare": [{"key": k, "target": "VERSION", "result": "GREATER", "version": 1}],
                   "success": [{"op": "delete_range", "key": k}],
                   "failure": [{"op": "put", "key": k, "value": b"t"}]}
        else:
            req = {"op": "compact", "revision": max(1, i - 5)}
        yield {"id": (1, i), "req": req}


def test_the_same_commands_give_the_same_state_even_through_a_snapshot():
    commands = list(_random_commands(random.Random(7), 400))
    a, b = StateMachine(), StateMachine()
    for cmd in commands[:200]:
        a.apply(copy.deepcopy(cmd))
        b.apply(copy.deepcopy(cmd))
    b = pickle.loads(pickle.dumps(b))  # a snapshot taken half way
    for cmd in commands[200:]:
        ra, _ = a.apply(copy.deepcopy(cmd))
        rb, _ = b.apply(copy.deepcopy(cmd))
        assert ra == rb
    full = {"key": b"\0", "range_end": b"\0"}
    assert a.range(full) == b.range(full)
    assert a.revision == b.revision and a.history == b.history


def test_every_command_the_leader_proposes_survives_msgpack():
    """A command that msgpack cannot read back (a map with integer keys) would raise inside the replicated
    method on every replica, over and over: the duty's command is packed and unpacked as a batch is."""
    m = StateMachine()
    a = run(m, {"op": "lease_grant", "ttl": 10}, rid=1)["id"]
    command = msgpack.unpackb(msgpack.packb({"id": None, "req": {"op": "lease_expire",
                                                                 "leases": m.lease_refreshes([a])}}), raw=False)
    assert m.apply(command)[0]["expired"] == [a]


def test_a_snapshot_keeps_the_ids_of_recent_requests_but_not_their_answers():
    """The dedup window's answers can hold whole objects (a failed txn's range); 20,000 of them went into every
    snapshot. A retry after a restore is still applied once, and says its answer is gone."""
    m = StateMachine()
    put(m, b"big", b"x" * 100_000)
    answer = run(m, {"op": "txn", "compare": [{"key": b"big", "target": "VERSION", "result": "EQUAL", "version": 9}],
                     "success": [], "failure": [{"op": "range", "key": b"big"}]}, rid=(1, 1))
    assert answer["responses"][0]["kvs"][0].value == b"x" * 100_000
    restored = pickle.loads(pickle.dumps(m))  # as pysyncobj writes and reads a snapshot
    retried, events = restored.apply({"id": (1, 1), "req": {"op": "put", "key": b"big", "value": b"y"}})
    assert retried == errors.APPLIED_RESULT_LOST and events == [] and restored.revision == m.revision
    assert run(m, {"op": "put", "key": b"big", "value": b"y"}, rid=(1, 1)) == answer  # in memory: the answer


def test_a_dry_run_txn_answers_as_the_txn_would_and_changes_nothing():
    m = StateMachine()
    put(m, b"a", b"1")
    before = (m.revision, len(m.history), get(m, b"a")["kvs"])
    txn = {"op": "txn", "compare": [{"key": b"a", "target": "VERSION", "result": "EQUAL", "version": 1}],
           "success": [{"op": "put", "key": b"b", "value": b"2"}, {"op": "delete_range", "key": b"a", "prev_kv": True}],
           "failure": [{"op": "range", "key": b"a"}]}
    dry = m.dry_txn(txn)
    assert dry["succeeded"] and dry["responses"][1]["deleted"] == 1 and dry["responses"][1]["prev_kvs"][0].value == b"1"
    assert (m.revision, len(m.history), get(m, b"a")["kvs"]) == before
    assert not m.dry_txn({**txn, "compare": [{**txn["compare"][0], "version": 5}]})["succeeded"]
