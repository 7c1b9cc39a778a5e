"""The streaming calls of the etcd gRPC API: Watch, LeaseKeepAlive and Snapshot.

Watch reads requests and writes replies at the same time: one task sends whatever the `WatchSession` yields
while the handler reads create, cancel and progress requests; both end when the client goes away. As etcd does,
a watch that asks for a leader (clientv3's WithRequireLeader, which etcdctl uses) is refused when this master
knows of no leader, and ended with Unavailable when it has had none for `LEADERLESS_GRACE` seconds, so the
client moves to another master and resumes there from its last revision.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator

from kvstore import errors
from kvstore import grpc_codec as codec
from kvstore.etcd_service import EtcdService
from kvstore.etcdpb import message
from kvstore.grpc_wire import Abort, Call

SNAPSHOT_CHUNK = 32 * 1024
LEADERLESS_GRACE = 3.0  # seconds without a leader before a watch that requires one ends


class LeaderWatch:
    """Whether a stream that requires a leader may go on."""

    def __init__(self, service: EtcdService, call: Call) -> None:
        self.service = service
        self.call = call
        self.required = call.metadata.get("hasleader") == "true"
        self.lost_since: float | None = None

    def lost(self) -> bool:
        if not self.required or self.service.healthy():
            self.lost_since = None
            return False
        now = time.monotonic()
        self.lost_since = self.lost_since or now
        return now - self.lost_since >= LEADERLESS_GRACE

    def alive(self) -> bool:
        return not self.call.done() and not self.lost()


class Streams:
    def __init__(self, service: EtcdService) -> None:
        self.service = service

    async def watch(self, requests: AsyncIterator[Any], call: Call) -> None:
        leader = LeaderWatch(self.service, call)
        if leader.required and not self.service.healthy():
            raise Abort(errors.UNAVAILABLE, errors.NO_LEADER.message)
        session = self.service.watch_session()
        sender = asyncio.create_task(self._send(session, call, leader))
        try:
            async for request in requests:
                kind = request.WhichOneof("request_union")
                if kind == "create_request":
                    session.create(codec.watch_create_request(request.create_request))
                elif kind == "cancel_request":
                    session.cancel(request.cancel_request.watch_id)
                elif kind == "progress_request":
                    session.request_progress()
            await sender  # the client closed its side: etcd keeps sending until the call ends
        finally:
            sender.cancel()
            session.close()
        if leader.lost():
            raise Abort(errors.UNAVAILABLE, errors.NO_LEADER.message)

    async def _send(self, session, call: Call, leader: LeaderWatch) -> None:
        async for reply in session.replies(alive=leader.alive):
            await call.write(codec.watch_response(reply, codec.header(self.service.header(reply.revision))))

    async def lease_keep_alive(self, requests: AsyncIterator[Any], call: Call) -> None:
        """One answer per request, in order; TTL 0 for a lease that is gone (not an error, as in etcd)."""
        response = message("etcdserverpb.LeaseKeepAliveResponse")
        async for request in requests:
            res = await self.service.lease_keepalive(request.ID)
            await call.write(response(header=codec.header(self.service.header(res["revision"])),
                                      ID=res["id"], TTL=res["ttl"]))

    async def snapshot(self, request: Any, call: Call) -> None:
        """The whole store (kvstore/backup.py's format) in chunks; `remaining_bytes` counts down to 0."""
        response = message("etcdserverpb.SnapshotResponse")
        revision, data = await self.service.snapshot()
        head = codec.header(self.service.header(revision))
        for start in range(0, len(data), SNAPSHOT_CHUNK):
            blob = data[start:start + SNAPSHOT_CHUNK]
            await call.write(response(header=head, remaining_bytes=len(data) - start - len(blob), blob=blob))
