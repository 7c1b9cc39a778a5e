"""The snapshot file: a round trip keeps every key, lease and the revision; a damaged file is refused; its size
has the shape etcdctl 3.4 checks before it keeps a file (512-byte blocks, then a 32-byte SHA-256)."""
import pytest

from kvstore import backup
from kvstore.mvcc import StateMachine


def _machine() -> StateMachine:
    m = StateMachine()
    m.apply({"id": 1, "req": {"op": "lease_grant", "ttl": 30, "id": 7}})
    m.apply({"id": 2, "req": {"op": "put", "key": b"a", "value": b"1"}})
    m.apply({"id": 3, "req": {"op": "put", "key": b"a", "value": b"2", "lease": 7}})
    m.apply({"id": 4, "req": {"op": "put", "key": b"b\xff\x00", "value": bytes(range(256))}})
    m.apply({"id": 5, "req": {"op": "delete_range", "key": b"b\xff\x00"}})
    m.apply({"id": 6, "req": {"op": "put", "key": b"c", "value": b""}})
    return m


def test_a_restored_store_has_the_same_keys_leases_and_revision_and_starts_compacted_there():
    original = _machine()
    data = backup.dump(original)
    assert len(data) % 512 == 32
    restored = backup.load(data)
    everything = {"op": "range", "key": b"\0", "range_end": b"\0"}
    assert restored.range(everything)["kvs"] == original.range(everything)["kvs"]
    assert restored.revision == original.revision == 6 and restored.compact_revision == 6
    assert restored.lease_time_to_live(7, lambda lease_id, ttl: ttl, True)["keys"] == [b"a"]
    assert backup.hash_kv(restored) == backup.hash_kv(original)
    result, _ = restored.apply({"id": 9, "req": {"op": "put", "key": b"d", "value": b"x"}})
    assert result["revision"] == 7


@pytest.mark.parametrize("damage", [
    lambda d: d[:-1],                            # truncated
    lambda d: d[:40] + b"X" + d[41:],            # a flipped byte
    lambda d: b"SQLite format 3\0" + d[16:],     # another file
    lambda d: b"",
])
def test_a_damaged_snapshot_is_refused_with_a_reason(damage):
    with pytest.raises(backup.BadSnapshot):
        backup.load(damage(backup.dump(_machine())))


def test_the_hash_follows_the_keys_at_a_revision():
    m = _machine()
    at_three = backup.hash_kv(m, 3)
    assert at_three != backup.hash_kv(m)
    m.apply({"id": 10, "req": {"op": "put", "key": b"e", "value": b"x"}})
    assert backup.hash_kv(m, 3) == at_three
