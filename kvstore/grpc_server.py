"""The etcd v3 gRPC API, on the master's own event loop: what etcdctl and etcd client libraries dial.

Every method of the six services in etcdpb/rpc.proto is served, by grpc_wire.py on our own HTTP/2 (http2.py),
on the KV port beside the JSON gateway (kv_port.py). A handler decodes with `grpc_codec`, calls the
`EtcdService` (shared with the JSON gateway, so the two cannot drift apart) and encodes the answer; the streams
(Watch, LeaseKeepAlive, Snapshot) are in grpc_streams.py, errors are answered as etcd's by grpc_errors.py.

    server = GrpcServer(EtcdGrpc(service).methods())
    await loop.create_server(server.connection, "127.0.0.1", 2379)   # or kv_port.serve(...) for both APIs
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

from kvstore import errors
from kvstore import grpc_codec as codec
from kvstore.errors import KVError, KVFailure
from kvstore.etcd_service import EtcdService, encode_chunked
from kvstore.etcdpb import message, service as service_descriptor
from kvstore.grpc_errors import answering_errors
from kvstore.grpc_streams import Streams
from kvstore.grpc_wire import Call, Method
from kvstore.watch_session import MAX_REQUEST_BYTES

SERVICES = ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth")
AUTH_DISABLED = KVError(errors.FAILED_PRECONDITION,
                        "etcdserver: authentication is not enabled: raftkube's KV API has no etcd users or roles")

Handler = Callable[[Any, Call], Awaitable[Any]]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower().replace("k_v", "kv")


class EtcdGrpc:
    """One handler per method, named after it in snake case (Range -> range, HashKV -> hash_kv)."""

    def __init__(self, service: EtcdService) -> None:
        self.service = service
        self.streams = Streams(service)

    def head(self, revision: int | None = None) -> Any:
        return codec.header(self.service.header(revision))

    def methods(self) -> dict[str, Method]:
        """Every method of the six services, by its path ("/etcdserverpb.KV/Range")."""
        out = {}
        for name in SERVICES:
            descriptor = service_descriptor(f"etcdserverpb.{name}")
            for method in descriptor.methods:
                out[f"/{descriptor.full_name}/{method.name}"] = Method(
                    answering_errors(self._handler(name, method.name)), message(method.input_type.full_name),
                    client_streaming=method.client_streaming, server_streaming=method.server_streaming)
        return out

    def _handler(self, service: str, method: str) -> Handler:
        if service == "Auth":
            return self.auth_disable if method == "AuthDisable" else self.auth_refused
        return getattr(self.streams, _snake(method), None) or getattr(self, _snake(method))

    # -- KV -------------------------------------------------------------------------------

    async def range(self, request: Any, call: Call) -> Any:
        req, serializable = codec.range_request(request)
        res = await self.service.range(req, serializable=serializable)
        kvs = await encode_chunked(res["kvs"], codec.kv)
        return codec.range_response(res, self.head(res["revision"]), kvs)

    async def put(self, request: Any, call: Call) -> Any:
        _check_size(request)
        res = await self.service.write(codec.put_request(request))
        return codec.put_response(res, self.head(res["revision"]))

    async def delete_range(self, request: Any, call: Call) -> Any:
        res = await self.service.write(codec.delete_request(request))
        return codec.delete_response(res, self.head(res["revision"]))

    async def txn(self, request: Any, call: Call) -> Any:
        _check_size(request)
        res = await self.service.write(codec.txn_request(request))
        return codec.txn_response(res, self.head(res["revision"]))

    async def compact(self, request: Any, call: Call) -> Any:
        res = await self.service.compact(request.revision)
        return message("etcdserverpb.CompactionResponse")(header=self.head(res["revision"]))

    # -- Lease ----------------------------------------------------------------------------

    async def lease_grant(self, request: Any, call: Call) -> Any:
        res = await self.service.lease_grant(request.TTL, request.ID)
        return message("etcdserverpb.LeaseGrantResponse")(header=self.head(res["revision"]), ID=res["id"],
                                                            TTL=res["ttl"])

    async def lease_revoke(self, request: Any, call: Call) -> Any:
        res = await self.service.lease_revoke(request.ID)
        return message("etcdserverpb.LeaseRevokeResponse")(header=self.head(res["revision"]))

    async def lease_time_to_live(self, request: Any, call: Call) -> Any:
        res = await self.service.lease_time_to_live(request.ID, request.keys)
        return message("etcdserverpb.LeaseTimeToLiveResponse")(
            header=self.head(res["revision"]), ID=res["id"], TTL=res["ttl"], grantedTTL=res["granted_ttl"],
            keys=res["keys"])

    async def lease_leases(self, request: Any, call: Call) -> Any:
        ids = await self.service.lease_ids()
        return message("etcdserverpb.LeaseLeasesResponse")(header=self.head(), leases=[{"ID": i} for i in ids])

    # -- Cluster --------------------------------------------------------------------------

    def _members(self, response: str, **fields: Any) -> Any:
        return message(f"etcdserverpb.{response}")(
            header=self.head(), members=[codec.member(m) for m in self.service.members()], **fields)

    async def member_list(self, request: Any, call: Call) -> Any:
        return self._members("MemberListResponse")

    async def member_add(self, request: Any, call: Call) -> Any:
        added, _ = await self.service.member_add(list(request.peerURLs), is_learner=request.isLearner)
        return self._members("MemberAddResponse", member=codec.member(added))

    async def member_remove(self, request: Any, call: Call) -> Any:
        await self.service.member_remove(request.ID)
        return self._members("MemberRemoveResponse")

    async def member_update(self, request: Any, call: Call) -> Any:
        await self.service.member_update(request.ID, list(request.peerURLs))
        return self._members("MemberUpdateResponse")

    async def member_promote(self, request: Any, call: Call) -> Any:
        raise KVFailure(errors.invalid("etcdserver: raftkube has no learners: every member already votes"))

    # -- Maintenance ----------------------------------------------------------------------

    async def status(self, request: Any, call: Call) -> Any:
        return codec.status_response(self.service.status(), self.head())

    async def alarm(self, request: Any, call: Call) -> Any:
        """raftkube raises no alarms (no space quota, no corruption check): none to list or disarm."""
        if request.action == message("etcdserverpb.AlarmRequest").ACTIVATE:
            raise KVFailure(errors.invalid("etcdserver: raftkube raises no alarms; there is none to activate"))
        return message("etcdserverpb.AlarmResponse")(header=self.head())

    async def defragment(self, request: Any, call: Call) -> Any:
        """Nothing to defragment: the store lives in memory, the journal is trimmed by snapshots."""
        return message("etcdserverpb.DefragmentResponse")(header=self.head())

    async def hash(self, request: Any, call: Call) -> Any:
        digest, _, revision = self.service.hash_kv(0)
        return message("etcdserverpb.HashResponse")(header=self.head(revision), hash=digest)

    async def hash_kv(self, request: Any, call: Call) -> Any:
        digest, compacted, revision = self.service.hash_kv(request.revision)
        return message("etcdserverpb.HashKVResponse")(header=self.head(revision), hash=digest,
                                                        compact_revision=compacted)

    async def move_leader(self, request: Any, call: Call) -> Any:
        await self.service.move_leader(request.targetID)
        return message("etcdserverpb.MoveLeaderResponse")(header=self.head())

    # -- Auth -----------------------------------------------------------------------------

    async def auth_disable(self, request: Any, call: Call) -> Any:
        return message("etcdserverpb.AuthDisableResponse")(header=self.head())  # it is off already

    async def auth_refused(self, request: Any, call: Call) -> Any:
        raise KVFailure(AUTH_DISABLED)


def _check_size(request: Any) -> None:
    if request.ByteSize() > MAX_REQUEST_BYTES:
        raise KVFailure(errors.REQUEST_TOO_LARGE)

