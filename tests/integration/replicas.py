"""Replicas in this test's own process and event loop, on loopback ports, with their journals on disk.

For tests that reach into Raft itself (which entries a follower keeps, what a restart reads back, who may
vote): real pysyncobj, real sockets, real fsyncs, and the test can look at and steer each replica's log
between two turns of the loop. Whole masters as processes are in cluster.py.
"""
from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Callable

from kvstore.replica import Replica
from kvstore.store import Store
from raftkube.up import free_port

SECRET = "test-secret"


class Member:
    """One replica with its Store, restartable on the same address and data dir."""

    def __init__(self, addr: str, peers: list[str], data_dir: str, **replica_args: Any) -> None:
        self.addr, self.peers, self.data_dir, self.replica_args = addr, peers, data_dir, replica_args
        self.replica: Replica | None = None
        self.store: Store | None = None
        self.fatal: list[str] = []  # why this replica had to stop (a peer refused it, a snapshot would not load)

    def start(self) -> None:
        self.replica = Replica(self_addr=self.addr, peers=self.peers, data_dir=self.data_dir, secret=SECRET,
                               on_applied=lambda events, revision: None, on_restored=lambda: None,
                               on_fatal=self.fatal.append, **self.replica_args)
        self.store = Store(self.replica, name=self.addr, deadline=5.0)

    def stop(self) -> None:
        """As a process exit would: the journal is closed (what it synced stays), nothing else is saved."""
        if self.replica is not None:
            self.store.close()
            self.replica.close()
            self.replica = self.store = None

    def get(self, key: bytes) -> bytes | None:
        """The key's value in this replica's own copy (a serializable read)."""
        kvs = self.replica.consumer.machine.range({"key": key})["kvs"]
        return kvs[0].value if kvs else None

    @property
    def up(self) -> bool:
        return self.replica is not None

    @property
    def journal(self):
        return self.replica._SyncObj__raftLog

    def log(self) -> list[tuple[bytes, int, int]]:
        return [self.journal[i] for i in range(len(self.journal))]

    def peer(self, addr: str):
        """The replica's Node object for a peer's address."""
        return next(n for n in self.replica._SyncObj__otherNodes if n.id == addr)


class LocalCluster:
    def __init__(self, tmp_path, n: int = 3, **replica_args: Any) -> None:
        addrs = [f"127.0.0.1:{free_port()}" for _ in range(n)]
        self.members = [Member(a, [p for p in addrs if p != a], os.path.join(str(tmp_path), f"r{i + 1}"),
                               **replica_args) for i, a in enumerate(addrs)]
        for m in self.members:
            m.start()

    def close(self) -> None:
        for m in self.members:
            m.stop()

    def leader(self) -> Member | None:
        leaders = [m for m in self.members if m.up and m.replica._isLeader()]
        return leaders[0] if len(leaders) == 1 else None

    def followers(self) -> list[Member]:
        return [m for m in self.members if m.up and m is not self.leader()]

    async def wait_for(self, check: Callable[[], Any], *, timeout: float = 10.0, what: str = "condition") -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            await asyncio.sleep(0.01)
        raise AssertionError(f"{what} not reached within {timeout}s")

    async def wait_for_leader(self, timeout: float = 10.0) -> Member:
        return await self.wait_for(self.leader, timeout=timeout, what="a single leader")

    async def put(self, key: bytes, value: bytes, via: Member | None = None) -> dict:
        member = via or await self.wait_for_leader()
        return await member.store.propose({"op": "put", "key": key, "value": value})

    async def all_applied(self, timeout: float = 10.0) -> None:
        """Every running replica has applied the leader's whole log."""
        leader = await self.wait_for_leader()

        def caught_up() -> bool:
            last = leader.replica._SyncObj__raftLog[-1][1]
            return leader.replica.raftCommitIndex == last and all(
                m.replica.raftLastApplied == last for m in self.members if m.up)

        await self.wait_for(caught_up, timeout=timeout, what="every replica applied the leader's log")
