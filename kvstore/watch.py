"""Watches: every open watch on this replica, fed by the events its apply emits.

The state machine knows nothing of watchers. After each applied batch the replica hands the
events to `WatchHub.publish` (in apply order), and the hub puts the matching ones on each
watcher's stream queue.

A new watch first reads the history from its start revision, then joins the hub with `next_rev`
set just past the revision it read at; `publish` only passes on revisions at or after a
watcher's `next_rev`, so a watcher sees each revision once, in order, with no gap.
A stream whose queue grows past `QUEUE_LIMIT` batches is too slow: its watcher is cancelled with an
error (etcd clients then re-watch from their last revision), rather than slowing apply down or
silently dropping events. (The drop-watch-event lab, kvstore/mechanisms.py, drops one event in DROP_EVERY on
purpose, for the watch checker to catch.)
"""
from __future__ import annotations

import asyncio
import itertools
import logging
from dataclasses import dataclass, field

from kvstore.errors import KVError
from kvstore.kv import DELETE, PUT, Event

log = logging.getLogger("raftkube.watch")

QUEUE_LIMIT = 10_000  # batches waiting on one stream before its watchers count as too slow
DROP_EVERY = 50  # the drop-watch-event lab: every 50th event this hub would deliver is left out
FILTER_TYPES = {"NOPUT": PUT, "NODELETE": DELETE}
SLOW = ("etcdserver: watcher could not keep up with the event rate (slow consumer); "
        "re-watch from the revision after the last event received")


@dataclass(eq=False)
class Watcher:
    watch_id: int  # the client's id, unique within its stream
    key: bytes
    range_end: bytes
    next_rev: int
    sink: asyncio.Queue  # the stream's queue: (watcher, events), or (watcher, None) once cancelled
    filters: frozenset[int] = frozenset()  # event types not wanted
    prev_kv: bool = False
    cancel_reason: str | None = None
    hub_id: int = field(default=0)

    @property
    def progress(self) -> int:
        """Every matching event up to this revision has been queued for this watcher."""
        return self.next_rev - 1

    def matches(self, key: bytes) -> bool:
        if not self.range_end:
            return key == self.key
        if self.range_end == b"\0":
            return key >= self.key
        return self.key <= key < self.range_end

    def select(self, events: list[Event]) -> list[Event]:
        return [e for e in events if e.revision >= self.next_rev and e.type not in self.filters
                and self.matches(e.kv.key)]


class WatchHub:
    def __init__(self, *, every_event: bool = True) -> None:
        self.watchers: dict[int, Watcher] = {}
        self.revision = 0  # the newest revision published
        self.slow_cancelled = 0  # watchers cancelled as too slow (a metric: kvstore/metrics.py)
        self._ids = itertools.count(1)
        self.every_event = every_event  # off only in the drop-watch-event lab
        self._delivered = 0

    def open(self, store, *, watch_id: int, key: bytes, range_end: bytes, start_revision: int,
             sink: asyncio.Queue, filters: frozenset[int] = frozenset(),
             prev_kv: bool = False) -> tuple[Watcher, list[Event]] | KVError:
        """Register a watcher; return it with the history it must see first."""
        head = store.machine.revision
        start = start_revision or head + 1
        history = store.machine.events_since(start) if start <= head else []
        if isinstance(history, KVError):
            return history
        w = Watcher(watch_id, key, range_end, start, sink, filters, prev_kv, hub_id=next(self._ids))
        backlog = w.select(history)
        w.next_rev = max(start, head + 1)
        self.watchers[w.hub_id] = w
        return w, backlog

    def close(self, w: Watcher) -> None:
        self.watchers.pop(w.hub_id, None)

    def publish(self, events: list[Event], revision: int) -> None:
        """Called on the loop, in apply order, for every applied batch."""
        if events:
            for w in list(self.watchers.values()):
                mine = w.select(events)
                if not mine:
                    continue
                if w.sink.qsize() >= QUEUE_LIMIT:
                    self.slow_cancelled += 1
                    self.cancel(w, SLOW)
                    continue
                w.next_rev = mine[-1].revision + 1
                if not self.every_event:
                    mine = self._lose_some(mine)
                if mine:
                    w.sink.put_nowait((w, mine))
        for w in self.watchers.values():
            w.next_rev = max(w.next_rev, revision + 1)
        self.revision = max(self.revision, revision)

    def _lose_some(self, events: list[Event]) -> list[Event]:
        """The drop-watch-event lab: leave out every DROP_EVERY-th event, counted over all watchers."""
        kept = []
        for e in events:
            self._delivered += 1
            if self._delivered % DROP_EVERY:
                kept.append(e)
            else:
                log.warning("lab drop-watch-event: revision %d (%r) not delivered", e.revision, e.kv.key)
        return kept

    def reset(self, reason: str) -> None:
        """The state was replaced by a snapshot: every watcher must start again."""
        for w in list(self.watchers.values()):
            self.cancel(w, reason)

    def cancel(self, w: Watcher, reason: str | None) -> None:
        if self.watchers.pop(w.hub_id, None) is None:
            return
        w.cancel_reason = reason
        w.sink.put_nowait((w, None))
        if reason:
            log.info("cancelled watch %d: %s", w.watch_id, reason)
