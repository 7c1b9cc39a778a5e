"""One etcd watch stream, whatever carries it (a `/v3/watch` HTTP body or a gRPC Watch call).

A stream holds many watchers, each with an id unique within it. Everything the stream has to send goes
through one queue, in order: the replies to create, cancel and progress requests, and the events the
`WatchHub` puts there for each watcher. So a progress reply never overtakes an event it vouches for, and a
watcher's backlog (read when it is created) comes before its live events. The transport decodes requests,
calls `create`, `cancel` and `request_progress`, and sends each `Reply` that `replies()` yields:

    session = WatchSession(store, hub, progress_interval=10.0)
    session.create({"key": b"a", "range_end": b"b", "start_revision": 0, ...})
    async for reply in session.replies():   # until the client goes away
        send(encode(reply))

Replies follow etcd 3.4: ids from 0 when the client gives none; a duplicate id or an empty range is refused with
watch id -1 (created and canceled at once); a start revision already compacted gets `created`, then a
cancellation carrying the compacted revision; a progress request is answered with watch id -1 at the revision
everything queued before it reached. Events are sent at most `MAX_REVISIONS` revisions to a reply and a revision
is never split, unless the watcher asked for fragments: then a reply over `MAX_REQUEST_BYTES` is cut into
fragments, all but the last marked `fragment`.
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import AsyncIterator, Callable

from kvstore.errors import KVError
from kvstore.kv import Event
from kvstore.watch import FILTER_TYPES, Watcher, WatchHub

DUPLICATE_ID = "mvcc: duplicate watch ID provided on the WatchStream"
EMPTY_RANGE = "mvcc: watcher range is empty"
MAX_REVISIONS = 1000  # etcd's watchBatchMaxRevs
MAX_REQUEST_BYTES = 3 * (1 << 19)  # etcd's --max-request-bytes default: the fragment size
NO_ID = -1


@dataclass
class Reply:
    """One watch response, before a transport encodes it. `revision` None: the store's revision when sent."""

    watch_id: int
    revision: int | None = None
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    fragment: bool = False
    events: list[Event] = field(default_factory=list)
    prev_kv: bool = False  # send each event's previous key-value


class WatchSession:
    def __init__(self, store, hub: WatchHub, *, progress_interval: float) -> None:
        self.store = store
        self.hub = hub
        self.progress_interval = progress_interval
        self.queue: asyncio.Queue = asyncio.Queue()  # Reply, or (Watcher, events | None) from the hub
        self.watchers: dict[int, Watcher] = {}
        self.progress_wanted: set[int] = set()
        self.fragmented: set[int] = set()
        self._auto_id = 0

    # -- requests -----------------------------------------------------------------------------

    def create(self, create: dict) -> None:
        watch_id = self._next_id(create["watch_id"])
        if watch_id is None:
            self.queue.put_nowait(Reply(NO_ID, created=True, canceled=True, cancel_reason=DUPLICATE_ID))
            return
        end = create["range_end"]
        if end and end != b"\0" and create["key"] >= end:
            self.queue.put_nowait(Reply(NO_ID, created=True, canceled=True, cancel_reason=EMPTY_RANGE))
            return
        opened = self.hub.open(self.store, watch_id=watch_id, key=create["key"], range_end=end,
                               start_revision=create["start_revision"], sink=self.queue,
                               filters=frozenset(FILTER_TYPES[f] for f in create["filters"]),
                               prev_kv=create["prev_kv"])
        self.queue.put_nowait(Reply(watch_id, created=True))
        if isinstance(opened, KVError):  # compacted: etcd says so and keeps the stream open
            self.queue.put_nowait(Reply(watch_id, revision=0, canceled=True,
                                        compact_revision=self.store.machine.compact_revision))
            return
        w, backlog = opened
        self.watchers[watch_id] = w
        if create["progress_notify"]:
            self.progress_wanted.add(watch_id)
        if create.get("fragment"):
            self.fragmented.add(watch_id)
        for reply in self._event_replies(w, backlog):
            self.queue.put_nowait(reply)

    def cancel(self, watch_id: int) -> None:
        w = self.watchers.pop(watch_id, None)
        if w is None:
            return  # etcd ignores a cancel for an id it does not know
        self.hub.close(w)
        self.progress_wanted.discard(watch_id)
        self.fragmented.discard(watch_id)
        self.queue.put_nowait(Reply(watch_id, canceled=True))

    def request_progress(self) -> None:
        """Everything published so far is already queued: the revision now is what the reply vouches for."""
        self.queue.put_nowait(Reply(NO_ID, revision=self.store.machine.revision))

    def close(self) -> None:
        for w in self.watchers.values():
            self.hub.close(w)
        self.watchers.clear()

    def _next_id(self, wanted: int) -> int | None:
        if wanted:
            return None if wanted in self.watchers else wanted
        while self._auto_id in self.watchers:
            self._auto_id += 1
        return self._auto_id

    # -- replies ------------------------------------------------------------------------------

    async def replies(self, alive: Callable[[], bool] = lambda: True) -> AsyncIterator[Reply]:
        """What to send, in order, until the caller stops or `alive()` (asked at least once a second) says the
        client has gone; progress notifications when idle."""
        last_progress = time.monotonic()
        while True:
            try:
                item = await asyncio.wait_for(self.queue.get(), timeout=min(1.0, self.progress_interval))
            except asyncio.TimeoutError:
                if not alive():
                    return
                if self.progress_wanted and time.monotonic() - last_progress >= self.progress_interval:
                    last_progress = time.monotonic()
                    # Read every revision now, while the queue is empty: events queued while one notification
                    # is being sent are past what the next one may vouch for.
                    wanted = sorted(self.progress_wanted & set(self.watchers))
                    due = [(wid, self.watchers[wid].progress) for wid in wanted]
                    for wid, revision in due:
                        yield Reply(wid, revision=revision)
                continue
            if isinstance(item, Reply):
                yield item
                continue
            w, events = item
            if self.watchers.get(w.watch_id) is not w:
                continue  # cancelled by the client, or an old watcher whose id was reused
            if events is None:  # cancelled by the hub (too slow, or the state was replaced)
                self.watchers.pop(w.watch_id, None)
                yield Reply(w.watch_id, canceled=True, cancel_reason=w.cancel_reason or "")
                continue
            for reply in self._event_replies(w, events):
                yield reply

    def _event_replies(self, w: Watcher, events: list[Event]) -> list[Reply]:
        if w.watch_id in self.fragmented:
            return _fragments(w, events)
        return [Reply(w.watch_id, revision=batch[-1].revision, events=batch, prev_kv=w.prev_kv)
                for batch in _by_revisions(events)]


def _by_revisions(events: list[Event]) -> list[list[Event]]:
    """Batches of at most MAX_REVISIONS revisions, never splitting one revision."""
    batches: list[list[Event]] = []
    current: list[Event] = []
    revisions = 0
    for ev in events:
        if not current or ev.revision != current[-1].revision:
            revisions += 1
            if revisions > MAX_REVISIONS:
                batches.append(current)
                current, revisions = [], 1
        current.append(ev)
    if current:
        batches.append(current)
    return batches


def _size(ev: Event, with_prev: bool) -> int:
    size = len(ev.kv.key) + len(ev.kv.value) + 48
    if with_prev and ev.prev_kv is not None:
        size += len(ev.prev_kv.key) + len(ev.prev_kv.value) + 48
    return size


def _fragments(w: Watcher, events: list[Event]) -> list[Reply]:
    """etcd's fragment option: pieces of at most MAX_REQUEST_BYTES (at least one event each)."""
    pieces: list[list[Event]] = [[]]
    size = 0
    for ev in events:
        ev_size = _size(ev, w.prev_kv)
        if pieces[-1] and size + ev_size > MAX_REQUEST_BYTES:
            pieces.append([])
            size = 0
        pieces[-1].append(ev)
        size += ev_size
    if not events:
        return []
    revision = events[-1].revision
    return [Reply(w.watch_id, revision=revision, events=piece, prev_kv=w.prev_kv, fragment=i < len(pieces) - 1)
            for i, piece in enumerate(pieces)]
