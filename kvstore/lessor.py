"""When each lease runs out, on this master's monotonic clock: the part of leases that is not replicated.

The replicated lease (kvstore/leases.py) is only an id, a TTL, its keys and a count of refreshes. When it
expires is a matter of one clock, and wall clocks differ between masters and jump when they are set: a
master whose clock was stepped forward by an hour would expire every lease at once. As etcd's lessor does:

- every master notes, on its own monotonic clock, `now + TTL` when it applies a grant or a keepalive;
- only the leader acts on it: when a deadline passes it proposes `lease_expire` naming the lease and the
  refresh count it saw, so a keepalive committed meanwhile wins (kvstore/leader_duties.py);
- a master that becomes leader first gives every lease a full TTL from its own now (`promote`), since the
  keepalives sent to the old leader may not have reached it: a failover never expires a live lease.

The clock is passed in, so this is tested without waiting.
"""
from __future__ import annotations

import math
import time
from typing import Callable


class Lessor:
    def __init__(self, clock: Callable[[], float] = time.monotonic, *, full_ttl_on_promotion: bool = True) -> None:
        self.clock = clock
        self.full_ttl_on_promotion = full_ttl_on_promotion  # off only in the follower-clock lab
        self.deadlines: dict[int, float] = {}

    def refreshed(self, lease_id: int, ttl: int) -> None:
        """A grant or keepalive of the lease was applied here."""
        self.deadlines[lease_id] = self.clock() + ttl

    def promote(self, ttls: dict[int, int]) -> None:
        """This master leads now: every lease lives a full TTL from here (etcd's lessor.Promote)."""
        if not self.full_ttl_on_promotion:
            return
        now = self.clock()
        self.deadlines = {lease_id: now + ttl for lease_id, ttl in ttls.items()}

    def expired(self, ttls: dict[int, int]) -> list[int]:
        """The leases (of `ttls`, the live ones, with their TTLs) whose time is up."""
        now = self.clock()
        for gone in self.deadlines.keys() - ttls.keys():
            del self.deadlines[gone]
        for lease_id, ttl in ttls.items():
            self.deadlines.setdefault(lease_id, now + ttl)  # restored from a snapshot: a full TTL
        return sorted(lease_id for lease_id, deadline in self.deadlines.items() if deadline <= now)

    def remaining(self, lease_id: int, ttl: int) -> int:
        """Whole seconds left, as etcd's TimeToLive answers (rounded up)."""
        deadline = self.deadlines.get(lease_id)
        if deadline is None:
            return ttl
        return max(0, math.ceil(deadline - self.clock()))
