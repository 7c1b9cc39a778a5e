"""What only the Raft leader does, as proposals: lease expiry and automatic compaction.

The state machine never reads a clock, so someone has to bring time in: the leader looks at its
own monotonic clock (kvstore/lessor.py), gives every lease a full TTL when it takes office (so
keepalives lost in the failover expire nothing, as etcd's lessor does), proposes `lease_expire`
when a lease's time is up, and `compact` to keep memory bounded. Every replica then applies the
same decision. A stale leader's proposals simply fail to commit.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass

from kvstore.errors import KVFailure
from kvstore.store import Store

log = logging.getLogger("raftkube.leader")


@dataclass(frozen=True)
class Retention:
    """Keep the last `revisions` revisions, or the revisions of the last `seconds` seconds."""

    revisions: int = 0
    seconds: float = 0.0

    @classmethod
    def parse(cls, text: str) -> "Retention":
        """'10000' keeps 10000 revisions; '5m', '1h', '30s' keep that much time; '0' keeps all."""
        text = text.strip().lower()
        units = {"s": 1, "m": 60, "h": 3600}
        if text and text[-1] in units:
            return cls(seconds=float(text[:-1]) * units[text[-1]])
        return cls(revisions=int(text))


class LeaderDuties:
    def __init__(self, store: Store, retention: Retention, *, interval: float = 0.5,
                 compact_every: float = 5.0) -> None:
        self.store = store
        self.retention = retention
        self.interval = interval
        self.compact_every = compact_every  # a compaction walks every key: not on every tick
        self._was_leader = False
        self._samples: deque[tuple[float, int]] = deque()  # (monotonic time, revision)
        self._last_compact_check = 0.0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.tick()
            except KVFailure as exc:
                log.info("leader duty failed, will retry: %s", exc.error.message)

    async def tick(self) -> None:
        leader = self.store.replica._isLeader()
        if not leader:
            self._was_leader = False
            self._samples.clear()
            return
        machine, lessor = self.store.machine, self.store.replica.consumer.lessor
        if not self._was_leader:
            lessor.promote(machine.leases.ttls())
            self._was_leader = True
        expired = lessor.expired(machine.leases.ttls())
        if expired:
            await self.store.propose({"op": "lease_expire", "leases": machine.lease_refreshes(expired)})
        await self._maybe_compact()

    async def _maybe_compact(self) -> None:
        now = time.monotonic()
        if now - self._last_compact_check < self.compact_every:
            return
        self._last_compact_check = now
        revision = self.store.machine.revision
        compacted = self.store.machine.compact_revision
        target = self.compaction_target(revision, now)
        if target > compacted and target <= revision:
            await self.store.propose({"op": "compact", "revision": target})

    def compaction_target(self, revision: int, now: float) -> int:
        if self.retention.revisions:
            return revision - self.retention.revisions
        if self.retention.seconds:
            self._samples.append((now, revision))
            target = 0
            while self._samples and now - self._samples[0][0] >= self.retention.seconds:
                target = self._samples.popleft()[1]
            return target
        return 0
