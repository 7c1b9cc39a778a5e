"""Leases: a TTL and the keys attached to it, as every replica holds them.

No time here: when a lease runs out is each master's own business (kvstore/lessor.py), and the
leader proposes `lease_expire` naming the leases and the refresh count it saw. A keepalive applied
in between raises the count, so that lease stays: every replica reaches the same verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_LEASE_ID = (1 << 63) - 1


@dataclass
class Lease:
    id: int
    ttl: int
    keys: set[bytes] = field(default_factory=set)
    refreshes: int = 0  # keepalives applied: an expiry decided before the latest one is void


class LeaseTable:
    def __init__(self) -> None:
        self.leases: dict[int, Lease] = {}

    def grant(self, lease_id: int, ttl: int) -> Lease:
        lease = Lease(lease_id, ttl)
        self.leases[lease_id] = lease
        return lease

    def pick_id(self, seed: int) -> int:
        """A free lease id derived from `seed` (the request id), so every replica picks the same."""
        lease_id = (seed & MAX_LEASE_ID) or 1
        while lease_id in self.leases:
            lease_id = lease_id % MAX_LEASE_ID + 1
        return lease_id

    def get(self, lease_id: int) -> Lease | None:
        return self.leases.get(lease_id)

    def attach(self, lease_id: int, key: bytes) -> None:
        if lease_id:
            self.leases[lease_id].keys.add(key)

    def detach(self, lease_id: int, key: bytes) -> None:
        lease = self.leases.get(lease_id) if lease_id else None
        if lease is not None:
            lease.keys.discard(key)

    def remove(self, lease_id: int) -> Lease | None:
        return self.leases.pop(lease_id, None)

    def ttls(self) -> dict[int, int]:
        return {lease_id: lease.ttl for lease_id, lease in self.leases.items()}
