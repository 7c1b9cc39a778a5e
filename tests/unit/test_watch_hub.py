"""The watch hub: each revision once, in order, from history then live; slow watchers cancelled."""
import asyncio

from kvstore import watch
from kvstore.mvcc import StateMachine
from kvstore.watch import WatchHub


class LocalStore:
    def __init__(self):
        self.machine = StateMachine()

    def put(self, key, value):
        return self.machine.apply({"req": {"op": "put", "key": key, "value": value}})


def drain(sink):
    out = []
    while not sink.empty():
        out.append(sink.get_nowait())
    return out


async def test_history_then_live_events_without_gaps_or_duplicates():
    store, hub = LocalStore(), WatchHub()
    _, ev1 = store.put(b"a", b"1")  # rev 2
    _, ev2 = store.put(b"a", b"2")  # rev 3, applied but not yet published when the watch opens
    sink = asyncio.Queue()
    w, backlog = hub.open(store, watch_id=0, key=b"a", range_end=b"", start_revision=2, sink=sink)
    assert [e.revision for e in backlog] == [2, 3]
    hub.publish(ev1, 2)  # late publications of what the backlog already had are skipped
    hub.publish(ev2, 3)
    _, ev3 = store.put(b"a", b"3")
    hub.publish(ev3, 4)
    assert [[e.revision for e in evs] for _, evs in drain(sink)] == [[4]]
    assert w.progress == 4


async def test_a_watch_only_sees_its_range_and_wanted_types():
    store, hub = LocalStore(), WatchHub()
    sink = asyncio.Queue()
    w, _ = hub.open(store, watch_id=0, key=b"p/", range_end=b"p0", start_revision=0, sink=sink,
                    filters=frozenset({watch.PUT}))
    for key in (b"p/1", b"q"):
        _, evs = store.put(key, b"v")
        hub.publish(evs, store.machine.revision)
    _, evs = store.machine.apply({"req": {"op": "delete_range", "key": b"p/", "range_end": b"p0"}})
    hub.publish(evs, store.machine.revision)
    got = drain(sink)
    assert [(e.type, e.kv.key) for _, batch in got for e in batch] == [(watch.DELETE, b"p/1")]


async def test_a_watcher_that_cannot_keep_up_is_cancelled_not_skipped(monkeypatch):
    monkeypatch.setattr(watch, "QUEUE_LIMIT", 3)
    store, hub = LocalStore(), WatchHub()
    sink = asyncio.Queue()
    w, _ = hub.open(store, watch_id=5, key=b"k", range_end=b"", start_revision=0, sink=sink)
    for i in range(5):
        _, evs = store.put(b"k", b"%d" % i)
        hub.publish(evs, store.machine.revision)
    got = drain(sink)
    assert [len(b) for _, b in got[:3]] == [1, 1, 1]
    assert got[3] == (w, None) and "slow consumer" in w.cancel_reason
    assert w.hub_id not in hub.watchers


async def test_a_compacted_start_revision_is_refused():
    store, hub = LocalStore(), WatchHub()
    for i in range(4):
        store.put(b"k", b"%d" % i)
    store.machine.apply({"req": {"op": "compact", "revision": 4}})
    result = hub.open(store, watch_id=0, key=b"k", range_end=b"", start_revision=2, sink=asyncio.Queue())
    assert "compacted" in result.message
