"""What the etcd v3 API does, written once for both of its transports.

The JSON gateway (gateway.py, with gateway_codec.py) and gRPC (grpc_server.py, with grpc_codec.py) only decode
requests into the store's plain dicts and encode what comes back; every decision is taken here, on top of the
`Store`: when a read needs ReadIndex, what a keepalive of a lost lease answers, how a follower hands a
membership change to the leader, what Status reports. Errors are raised as `KVFailure` with etcd's message
and gRPC code, which each transport turns into its own kind of error.

    service = EtcdService(store, hub, cluster_id=..., member_id=..., members=master.members, data_dir=...)
    result = await service.write({"op": "put", "key": b"a", "value": b"1", ...})
    header = service.header(result["revision"])
"""
from __future__ import annotations

import asyncio
import os
import ssl
import time
from typing import Any, Callable, NamedTuple, TypeVar

import aiohttp
import orjson

from kvstore import backup, errors
from kvstore.errors import BadRequest, KVError, KVFailure
from kvstore.membership import Membership
from kvstore.mvcc import Result
from kvstore.store import Store
from kvstore.watch import WatchHub
from kvstore.watch_session import WatchSession

# What etcd clients read as the server's version: MAJOR.MINOR.PATCH only (etcd3gw and others parse integers).
# The API raftkube serves is etcd 3.4's; raftkube's own version goes in a field of its own.
SERVER_VERSION = "3.4.0"
CLUSTER_VERSION = "3.4.0"
RAFTKUBE_VERSION = "0.1.0"
ENCODE_CHUNK = 2000  # items encoded between two turns of the event loop
FORWARD_TIMEOUT = 15.0
APPLY_WAIT = 5.0  # seconds a follower waits to see a membership change the leader made

T = TypeVar("T")


class Header(NamedTuple):
    """etcd's ResponseHeader: who answered, at which revision and Raft term."""

    cluster_id: int
    member_id: int
    revision: int
    raft_term: int


class Member(NamedTuple):
    id: int
    name: str  # empty until the master has started and announced itself
    peer_urls: list[str]
    client_urls: list[str]  # its gRPC endpoint (what etcd clients dial), else its JSON gateway


async def encode_chunked(items: list, encode: Callable[[Any], T]) -> list[T]:
    """Encode a long list without holding the loop: Raft shares it."""
    out: list[T] = []
    for i in range(0, len(items), ENCODE_CHUNK):
        if i:
            await asyncio.sleep(0)
        out.extend(encode(item) for item in items[i:i + ENCODE_CHUNK])
    return out


def peer_address(url: str) -> str:
    """"http://127.0.0.1:7004" or "127.0.0.1:7004" -> "127.0.0.1:7004" (a Raft address), or BadRequest."""
    rest = url.split("://", 1)[1] if "://" in url else url
    host, _, port = rest.rstrip("/").rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        raise BadRequest(f"peer URL {url!r} is not HOST:PORT (e.g. http://127.0.0.1:7004)")
    return f"{host}:{int(port)}"


class EtcdService:
    def __init__(self, store: Store, hub: WatchHub, *, cluster_id: int, member_id: int,
                 members: Callable[[], list[dict]], data_dir: str, progress_interval: float = 10.0,
                 membership: Membership | None = None, client_tls: ssl.SSLContext | None = None) -> None:
        self.store = store
        self.hub = hub
        self.cluster_id = cluster_id
        self.member_id = member_id
        self.member_infos = members  # [{"id", "raft", "name", "kv", "grpc", ...}] of every master
        self.data_dir = data_dir
        self.progress_interval = progress_interval  # seconds between watch progress notifications
        self.membership = membership
        self.client_tls = client_tls  # this master's client certificate toward the leader's KV port

    def header(self, revision: int | None = None) -> Header:
        if revision is None:
            revision = self.store.machine.revision
        return Header(self.cluster_id, self.member_id, revision, self.store.replica.raftCurrentTerm)

    # -- KV -------------------------------------------------------------------------------

    async def range(self, req: dict, *, serializable: bool) -> Result:
        return await self.store.range(req, serializable=serializable)

    async def write(self, req: dict) -> Result:
        """A put, delete_range or txn, committed through Raft."""
        if req["op"] != "txn" and not req["key"]:  # refused here: no Raft round for it
            raise KVFailure(errors.KEY_NOT_PROVIDED)
        return await self.store.propose(req)

    async def compact(self, revision: int) -> Result:
        return await self.store.propose({"op": "compact", "revision": revision})

    def watch_session(self) -> WatchSession:
        return WatchSession(self.store, self.hub, progress_interval=self.progress_interval)

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, ttl: int, lease_id: int) -> Result:
        return await self.store.propose({"op": "lease_grant", "ttl": ttl, "id": lease_id})

    async def lease_revoke(self, lease_id: int) -> Result:
        return await self.store.propose({"op": "lease_revoke", "id": lease_id})

    async def lease_keepalive(self, lease_id: int) -> Result:
        """A lease that is gone answers TTL 0, as etcd's keepalive stream does (not an error)."""
        try:
            return await self.store.propose({"op": "lease_keepalive", "id": lease_id})
        except KVFailure as exc:
            if exc.error != errors.LEASE_NOT_FOUND:
                raise
            return {"revision": self.store.machine.revision, "id": lease_id, "ttl": 0}

    async def lease_time_to_live(self, lease_id: int, with_keys: bool) -> Result:
        """TTL -1 when there is no such lease."""
        await self.store.read_index()
        return self.store.machine.lease_time_to_live(lease_id, self.store.replica.consumer.lessor.remaining, with_keys)

    async def lease_ids(self) -> list[int]:
        await self.store.read_index()
        return self.store.machine.lease_ids()

    # -- maintenance ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        st = self.store.raft_status()
        leader = st.get("leader")
        leader_id = next((m["id"] for m in self.member_infos() if m["raft"] == leader), 0) if leader else 0
        size = sum(os.path.getsize(os.path.join(self.data_dir, f)) for f in os.listdir(self.data_dir)
                   if os.path.isfile(os.path.join(self.data_dir, f)))
        return {"version": SERVER_VERSION, "db_size": size, "leader": leader_id,
                "raft_index": st.get("commit_idx", 0), "raft_term": st.get("raft_term", 0),
                "raft_applied_index": st.get("last_applied", 0)}

    def healthy(self) -> bool:
        return bool(self.store.raft_status().get("leader"))

    @staticmethod
    def version() -> dict[str, str]:
        return {"etcdserver": SERVER_VERSION, "etcdcluster": CLUSTER_VERSION, "raftkube": RAFTKUBE_VERSION}

    def hash_kv(self, revision: int) -> tuple[int, int, int]:
        """(hash, compact revision, revision hashed) of this member's keys at `revision` (0: now)."""
        machine = self.store.machine
        if revision > machine.revision:
            raise KVFailure(errors.FUTURE_REV)
        if revision and revision < machine.compact_revision:
            raise KVFailure(errors.COMPACTED)
        return backup.hash_kv(machine, revision), machine.compact_revision, revision or machine.revision

    async def snapshot(self) -> tuple[int, bytes]:
        """(revision, bytes) of a snapshot at least as new as every write acknowledged before the call."""
        await self.store.read_index()
        return self.store.machine.revision, backup.dump(self.store.machine)

    async def move_leader(self, target_id: int) -> None:
        """Only the leader moves leadership, to a caught-up member (etcd's MoveLeader)."""
        membership = self._membership()
        if not membership.is_leader():
            raise KVFailure(errors.NOT_LEADER)
        target = next((m["raft"] for m in self.member_infos() if m["id"] == target_id), None)
        if target is None or target == membership.replica.self_addr:
            raise KVFailure(errors.BAD_LEADER_TRANSFEREE)
        await membership.step_down(target)

    # -- cluster --------------------------------------------------------------------------

    def members(self) -> list[Member]:
        out = []
        for m in self.member_infos():
            client = m.get("grpc") or m.get("kv")
            out.append(Member(m["id"], m.get("name", ""), [f"http://{m['raft']}"], [client] if client else []))
        return out

    async def member_add(self, peer_urls: list[str], *, is_learner: bool = False) -> tuple[Member, list[Member]]:
        """Add a master by its Raft address: add it first, then start it (etcd's order)."""
        if is_learner:
            raise KVFailure(errors.invalid("etcdserver: raftkube has no learners: add the member as a voter"))
        if len(peer_urls) != 1:
            raise BadRequest("member add needs exactly one peer URL: the new master's Raft address, "
                             "e.g. http://127.0.0.1:7004")
        address = peer_address(peer_urls[0])
        membership = self._membership()
        if membership.is_leader():
            await membership.add(address)
        else:
            await self._on_leader("/v3/cluster/member/add", {"peerURLs": [f"http://{address}"]},
                                  applied=lambda: address in membership.members())
        members = self.members()
        added = next(m for m in members if m.peer_urls == [f"http://{address}"])
        return added, members

    async def member_remove(self, member_id: int) -> list[Member]:
        """The leader hands leadership over first when it is the one removed."""
        member = next((m for m in self.member_infos() if m["id"] == member_id), None)
        if member is None:
            raise KVFailure(KVError(errors.NOT_FOUND, f"etcdserver: member not found (ID {member_id:x}); "
                                                      "list the members to see their IDs"))
        membership = self._membership()
        if membership.is_leader() and member["raft"] == membership.replica.self_addr:
            await membership.step_down()
        if membership.is_leader():
            await membership.remove(member["raft"])
        else:
            await self._on_leader("/v3/cluster/member/remove", {"ID": str(member_id)},
                                  applied=lambda: member["raft"] not in membership.members())
        return self.members()

    async def member_update(self, member_id: int, peer_urls: list[str]) -> list[Member]:
        """A master's Raft address is its identity: it cannot change (remove it and add the new address)."""
        member = next((m for m in self.members() if m.id == member_id), None)
        if member is None:
            raise KVFailure(KVError(errors.NOT_FOUND, f"etcdserver: member not found (ID {member_id:x})"))
        wanted = [f"http://{peer_address(u)}" for u in peer_urls]
        if wanted != member.peer_urls:
            raise KVFailure(errors.invalid(
                f"etcdserver: raftkube cannot change a member's peer URL ({member.peer_urls[0]} is its Raft "
                "identity): remove the member and add the new address instead"))
        return self.members()

    async def _on_leader(self, path: str, body: dict, *, applied: Callable[[], bool]) -> None:
        """Have the leader make a membership change (through its JSON gateway), then wait a little for this
        replica to have it too, so the answer can come from here. The change is made once the leader says so:
        a replica slow to learn of it (an election under way) must not turn that into an error."""
        leader = self._membership().leader()
        url = next((m.get("kv") for m in self.member_infos() if m["raft"] == leader), None)
        if not url:
            raise KVFailure(errors.unavailable("etcdserver: no leader to make the membership change; retry"))
        try:
            connector = aiohttp.TCPConnector(ssl=self.client_tls or True)
            async with aiohttp.ClientSession(connector=connector) as session:
                async with session.post(url + path, data=orjson.dumps(body),
                                        timeout=aiohttp.ClientTimeout(total=FORWARD_TIMEOUT)) as r:
                    answer = await r.read()
                    if r.status != 200:
                        reply = orjson.loads(answer) if answer.strip().startswith(b"{") else {}
                        raise KVFailure(KVError(int(reply.get("code", errors.UNAVAILABLE)),
                                                reply.get("message") or f"the leader answered HTTP {r.status}"))
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise KVFailure(errors.unavailable(f"etcdserver: the leader {leader} did not answer ({exc}); retry")) \
                from None
        deadline = time.monotonic() + APPLY_WAIT
        while not applied() and time.monotonic() < deadline:
            await asyncio.sleep(0.05)

    def _membership(self) -> Membership:
        if self.membership is None:
            raise KVFailure(KVError(errors.UNIMPLEMENTED, "this master does not change membership"))
        return self.membership

