"""Adding and removing masters at runtime, one at a time (Raft's single-server changes, done by pysyncobj).

A change is an entry in the Raft log; it takes effect on each replica when appended and is acknowledged once
committed. The cluster's topology is saved in the data directory (members.json) whenever it changes, and a master
restarts with that, not with its (possibly stale) --peers flags. Removing the leader first hands leadership to
the most caught-up follower (Raft's TimeoutNow), then the new leader removes it. Changes are made on the leader
(the KV gateway forwards a request that reaches a follower): a follower that forwarded through pysyncobj would
lose the answer when the leader drops the connection to a removed member.

etcd's order for a new member is kept: `member add` first, then start the new master with every current member
as its peers, so that it never campaigns as an outsider.
"""
from __future__ import annotations

import asyncio
import json
import os
import time

from pysyncobj import FAIL_REASON

from kvstore import errors
from kvstore.errors import KVError, KVFailure

MEMBERS_FILE = "members.json"
CHANGE_TIMEOUT = 5.0


def saved_members(data_dir: str) -> list[str] | None:
    """The raft addresses of the cluster as this master last knew it, or None on first start."""
    path = os.path.join(data_dir, MEMBERS_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return list(json.load(f)["members"])


def save_members(data_dir: str, members: list[str]) -> None:
    path = os.path.join(data_dir, MEMBERS_FILE)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"members": sorted(members)}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def fail(code: int, message: str) -> KVFailure:
    return KVFailure(KVError(code, message))


class Membership:
    def __init__(self, replica, data_dir: str) -> None:
        self.replica = replica
        self.data_dir = data_dir
        self._lock = asyncio.Lock()  # one change at a time from this master (and in the log: _change)
        self._saved: list[str] | None = saved_members(data_dir)

    def members(self) -> list[str]:
        """The raft addresses in the configuration this replica runs with now."""
        others = self.replica._SyncObj__otherNodes  # pysyncobj 0.3.17 keeps it private
        return sorted({self.replica.self_addr, *(n.id for n in others)})

    def leader(self) -> str | None:
        leader = self.replica.getStatus().get("leader")
        return leader.id if leader is not None else None

    def persist(self) -> None:
        """Save the topology when it changed (the master calls this often: cheap when it did not)."""
        now = self.members()
        if now != self._saved:
            save_members(self.data_dir, now)
            self._saved = now

    def is_leader(self) -> bool:
        return self.leader() == self.replica.self_addr

    async def add(self, address: str) -> list[str]:
        """On the leader: add a master, answer when the change is committed."""
        if address in self.members():
            raise fail(errors.FAILED_PRECONDITION, f"etcdserver: Peer URLs already exists ({address} is a member)")
        async with self._lock:
            await self._change(self.replica.addNodeToCluster, address)
        return self.members()

    async def remove(self, address: str) -> list[str]:
        """On the leader: remove another master (move leadership first to remove this one)."""
        if address not in self.members():
            raise fail(errors.NOT_FOUND, f"etcdserver: member not found ({address})")
        if len(self.members()) == 1:
            raise fail(errors.FAILED_PRECONDITION, "etcdserver: cannot remove the last member")
        async with self._lock:
            await self._change(self.replica.removeNodeFromCluster, address)
        return self.members()

    async def _change(self, method, address: str) -> None:
        if self.replica.membership_change_pending():
            raise fail(errors.UNAVAILABLE, f"etcdserver: another membership change is not committed yet; retry "
                                           f"the change for {address} once it is (list the members to see it)")
        future: asyncio.Future = asyncio.get_running_loop().create_future()

        def done(result, error) -> None:
            if not future.done():
                future.set_result(error)

        method(address, callback=done)
        self.replica.wake()
        try:
            error = await asyncio.wait_for(future, CHANGE_TIMEOUT)
        except asyncio.TimeoutError:
            raise fail(errors.UNAVAILABLE, f"etcdserver: request timed out: the membership change for {address} "
                                           "was not committed in time (no quorum?); list the members to see "
                                           "whether it happened") from None
        if error != FAIL_REASON.SUCCESS:
            raise fail(errors.UNAVAILABLE, f"etcdserver: the membership change for {address} failed "
                                           f"(pysyncobj reason {error}); retry")

    async def step_down(self, target: str | None = None) -> None:
        """Hand leadership to `target` (a Raft address; the most caught-up follower when None) and wait for the new
        leader: before this leader is removed, or when asked to move it (etcd's MoveLeader)."""
        address = self.replica.self_addr
        deadline = time.monotonic() + CHANGE_TIMEOUT
        while time.monotonic() < deadline:
            self.replica.transferLeadership(target)
            self.replica.wake()
            for _ in range(20):
                await asyncio.sleep(0.05)
                if self.leader() not in (None, address):
                    return
        raise fail(errors.UNAVAILABLE, f"etcdserver: could not move leadership away from {address} "
                                       "(no caught-up follower?); retry")
