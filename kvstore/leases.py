"""Leases: a TTL and the keys attached to it.

Time never comes from a clock here. Grant and keepalive carry the proposer's `now`, and the
leader decides that a lease has expired and proposes `lease_expire` with its own `now`;
apply only compares numbers, so every replica reaches the same verdict.
"""
from __future__ import annotations

from dataclasses import dataclass, field

MAX_LEASE_ID = (1 << 63) - 1


@dataclass
class Lease:
    id: int
    ttl: int
    expiry: float
    keys: set[bytes] = field(default_factory=set)

    def refresh(self, now: float) -> None:
        self.expiry = now + self.ttl


class LeaseTable:
    def __init__(self) -> None:
        self.leases: dict[int, Lease] = {}

    def grant(self, lease_id: int, ttl: int, now: float) -> Lease:
        lease = Lease(lease_id, ttl, now + ttl)
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

    def expired(self, now: float) -> list[int]:
        return sorted(lid for lid, lease in self.leases.items() if lease.expiry <= now)

    def extend_all(self, now: float) -> None:
        """A new leader gives every lease a full TTL again (etcd's lessor.Promote)."""
        for lease in self.leases.values():
            lease.expiry = max(lease.expiry, now + lease.ttl)
