"""One watch stream's replies, as both transports send them: ids, refusals, backlog batches that never split a
revision, fragments, cancellation and progress in order with the events."""
import asyncio
import types

from kvstore.mvcc import StateMachine
from kvstore.watch import WatchHub
from kvstore.watch_session import MAX_REVISIONS, NO_ID, WatchSession


def _create(key=b"k", range_end=b"", start=0, watch_id=0, fragment=False):
    return {"key": key, "range_end": range_end, "start_revision": start, "progress_notify": False,
            "filters": frozenset(), "prev_kv": False, "watch_id": watch_id, "fragment": fragment}


def _setup():
    store = types.SimpleNamespace(machine=StateMachine())
    hub = WatchHub()
    return store, hub, WatchSession(store, hub, progress_interval=10.0)


def _apply(store, hub, *reqs):
    events = []
    for i, req in enumerate(reqs):
        events += store.machine.apply({"id": (id(req), i), "req": req})[1]
    hub.publish(events, store.machine.revision)


def _queued(session):
    out = []
    while not session.queue.empty():
        out.append(session.queue.get_nowait())
    return out


def test_ids_count_from_zero_and_a_duplicate_or_an_empty_range_is_refused():
    store, hub, session = _setup()
    session.create(_create())
    session.create(_create(watch_id=7))
    session.create(_create(watch_id=7))
    session.create(_create(key=b"b", range_end=b"a"))
    replies = _queued(session)
    assert [(r.watch_id, r.created, r.canceled) for r in replies] == [
        (0, True, False), (7, True, False), (NO_ID, True, True), (NO_ID, True, True)]
    assert "duplicate" in replies[2].cancel_reason and "empty" in replies[3].cancel_reason


def test_a_backlog_comes_in_batches_of_whole_revisions():
    store, hub, session = _setup()
    puts = [{"op": "put", "key": b"k", "value": b"%d" % i} for i in range(MAX_REVISIONS + 5)]
    _apply(store, hub, *puts)
    session.create(_create(start=2))
    created, *batches = _queued(session)
    assert created.created and [len(b.events) for b in batches] == [MAX_REVISIONS, 5]
    assert batches[0].events[-1].revision + 1 == batches[1].events[0].revision


def test_with_fragments_a_large_batch_is_cut_and_all_but_the_last_piece_say_so():
    store, hub, session = _setup()
    big = b"x" * (1 << 20)
    _apply(store, hub, {"op": "put", "key": b"k", "value": big}, {"op": "put", "key": b"k", "value": big})
    session.create(_create(start=2, fragment=True))
    created, *pieces = _queued(session)
    assert [len(p.events) for p in pieces] == [1, 1] and [p.fragment for p in pieces] == [True, False]


async def test_progress_and_cancel_replies_keep_their_place_among_the_events():
    store, hub, session = _setup()
    replies = session.replies()
    session.create(_create())
    _apply(store, hub, {"op": "put", "key": b"k", "value": b"1"})
    session.request_progress()
    first = [await asyncio.wait_for(anext(replies), 5) for _ in range(3)]
    assert [(r.created, len(r.events)) for r in first] == [(True, 0), (False, 1), (False, 0)]
    assert first[2].watch_id == NO_ID and first[2].revision == store.machine.revision
    session.cancel(0)
    _apply(store, hub, {"op": "put", "key": b"k", "value": b"2"})
    cancelled = await asyncio.wait_for(anext(replies), 5)
    assert cancelled.canceled and cancelled.watch_id == 0 and session.queue.empty()  # nothing after it


async def test_idle_progress_notifications_never_vouch_for_events_still_queued():
    """Two watchers asked for progress; while the first one's notification is being sent, an event arrives for
    the second: its notification must carry the revision from before that event, which follows it."""
    store, hub = types.SimpleNamespace(machine=StateMachine()), WatchHub()
    session = WatchSession(store, hub, progress_interval=0.01)
    for key in (b"a", b"b"):
        session.create({**_create(key=key), "progress_notify": True})
    before = store.machine.revision
    replies = session.replies()
    assert [(await replies.__anext__()).created for _ in range(2)] == [True, True]
    first = await replies.__anext__()  # idle: the first progress notification
    assert first.revision == before and not first.events
    _apply(store, hub, {"op": "put", "key": b"b", "value": b"1"})  # while it is being sent
    second = await replies.__anext__()
    assert (second.watch_id, second.revision, second.events) == (1, before, [])
    event = await replies.__anext__()
    assert event.watch_id == 1 and event.events[0].kv.key == b"b"
