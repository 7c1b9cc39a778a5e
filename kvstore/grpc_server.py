"""The etcd v3 gRPC API on grpc.aio, on the master's own event loop: what etcdctl and etcd client libraries dial.

Every method of the six services in etcdpb/rpc.proto is served. A handler decodes with `grpc_codec`, calls the
`EtcdService` (shared with the JSON gateway, so the two cannot drift apart) and encodes the answer; the streams
(Watch, LeaseKeepAlive, Snapshot) are in grpc_streams.py, errors are answered as etcd's by grpc_errors.py.

    server = await start_grpc(service, "127.0.0.1:2378")   # on the running loop
    ...
    await server.stop(grace=1.0)
"""
from __future__ import annotations

import re
from typing import Any, Awaitable, Callable

import grpc

from kvstore import errors
from kvstore import grpc_codec as codec
from kvstore.errors import KVError, KVFailure
from kvstore.etcd_service import EtcdService, encode_chunked
from kvstore.etcdpb import message, service as service_descriptor
from kvstore.grpc_errors import answering_errors
from kvstore.grpc_streams import Streams
from kvstore.watch_session import MAX_REQUEST_BYTES

SERVICES = ("KV", "Watch", "Lease", "Cluster", "Maintenance", "Auth")
GRPC_OVERHEAD = 512 * 1024  # etcd accepts a message this much larger than a request may be
OPTIONS = [
    ("grpc.max_receive_message_length", MAX_REQUEST_BYTES + GRPC_OVERHEAD),
    ("grpc.max_send_message_length", (1 << 31) - 1),
    ("grpc.so_reuseport", 0),  # a second master on the same port must fail, not share it
    # etcdctl pings every 2 s (--keepalive-time): answer, never GOAWAY for "too many pings".
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_ping_interval_without_data_ms", 1000),
    ("grpc.http2.max_ping_strikes", 0),
]
AUTH_DISABLED = KVError(errors.FAILED_PRECONDITION,
                        "etcdserver: authentication is not enabled: raftkube's KV API has no etcd users or roles")

Handler = Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]]


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)([A-Z])", r"_\1", name).lower().replace("k_v", "kv")


class EtcdGrpc:
    """One handler per method, named after it in snake case (Range -> range, HashKV -> hash_kv)."""

    def __init__(self, service: EtcdService) -> None:
        self.service = service
        self.streams = Streams(service)

    def head(self, revision: int | None = None) -> Any:
        return codec.header(self.service.header(revision))

    def handlers(self) -> list[grpc.GenericRpcHandler]:
        out = []
        for name in SERVICES:
            descriptor = service_descriptor(f"etcdserverpb.{name}")
            methods = {}
            for method in descriptor.methods:
                fn = answering_errors(self._handler(name, method.name))
                decode = message(method.input_type.full_name).FromString
                encode = message(method.output_type.full_name).SerializeToString
                if method.client_streaming and method.server_streaming:
                    methods[method.name] = grpc.stream_stream_rpc_method_handler(
                        fn, request_deserializer=decode, response_serializer=encode)
                elif method.server_streaming:
                    methods[method.name] = grpc.unary_stream_rpc_method_handler(
                        fn, request_deserializer=decode, response_serializer=encode)
                else:
                    methods[method.name] = grpc.unary_unary_rpc_method_handler(
                        fn, request_deserializer=decode, response_serializer=encode)
            out.append(grpc.method_handlers_generic_handler(descriptor.full_name, methods))
        return out

    def _handler(self, service: str, method: str) -> Handler:
        if service == "Auth":
            return self.auth_disable if method == "AuthDisable" else self.auth_refused
        return getattr(self.streams, _snake(method), None) or getattr(self, _snake(method))

    # -- KV -------------------------------------------------------------------------------

    async def range(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        req, serializable = codec.range_request(request)
        res = await self.service.range(req, serializable=serializable)
        kvs = await encode_chunked(res["kvs"], codec.kv)
        return codec.range_response(res, self.head(res["revision"]), kvs)

    async def put(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        _check_size(request)
        res = await self.service.write(codec.put_request(request))
        return codec.put_response(res, self.head(res["revision"]))

    async def delete_range(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        res = await self.service.write(codec.delete_request(request))
        return codec.delete_response(res, self.head(res["revision"]))

    async def txn(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        _check_size(request)
        res = await self.service.write(codec.txn_request(request))
        return codec.txn_response(res, self.head(res["revision"]))

    async def compact(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        res = await self.service.compact(request.revision)
        return message("etcdserverpb.CompactionResponse")(header=self.head(res["revision"]))

    # -- Lease ----------------------------------------------------------------------------

    async def lease_grant(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        res = await self.service.lease_grant(request.TTL, request.ID)
        return message("etcdserverpb.LeaseGrantResponse")(header=self.head(res["revision"]), ID=res["id"],
                                                            TTL=res["ttl"])

    async def lease_revoke(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        res = await self.service.lease_revoke(request.ID)
        return message("etcdserverpb.LeaseRevokeResponse")(header=self.head(res["revision"]))

    async def lease_time_to_live(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        res = await self.service.lease_time_to_live(request.ID, request.keys)
        return message("etcdserverpb.LeaseTimeToLiveResponse")(
            header=self.head(res["revision"]), ID=res["id"], TTL=res["ttl"], grantedTTL=res["granted_ttl"],
            keys=res["keys"])

    async def lease_leases(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        ids = await self.service.lease_ids()
        return message("etcdserverpb.LeaseLeasesResponse")(header=self.head(), leases=[{"ID": i} for i in ids])

    # -- Cluster --------------------------------------------------------------------------

    def _members(self, response: str, **fields: Any) -> Any:
        return message(f"etcdserverpb.{response}")(
            header=self.head(), members=[codec.member(m) for m in self.service.members()], **fields)

    async def member_list(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return self._members("MemberListResponse")

    async def member_add(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        added, _ = await self.service.member_add(list(request.peerURLs), is_learner=request.isLearner)
        return self._members("MemberAddResponse", member=codec.member(added))

    async def member_remove(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.service.member_remove(request.ID)
        return self._members("MemberRemoveResponse")

    async def member_update(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.service.member_update(request.ID, list(request.peerURLs))
        return self._members("MemberUpdateResponse")

    async def member_promote(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise KVFailure(errors.invalid("etcdserver: raftkube has no learners: every member already votes"))

    # -- Maintenance ----------------------------------------------------------------------

    async def status(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return codec.status_response(self.service.status(), self.head())

    async def alarm(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """raftkube raises no alarms (no space quota, no corruption check): none to list or disarm."""
        if request.action == message("etcdserverpb.AlarmRequest").ACTIVATE:
            raise KVFailure(errors.invalid("etcdserver: raftkube raises no alarms; there is none to activate"))
        return message("etcdserverpb.AlarmResponse")(header=self.head())

    async def defragment(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        """Nothing to defragment: the store lives in memory, the journal is trimmed by snapshots."""
        return message("etcdserverpb.DefragmentResponse")(header=self.head())

    async def hash(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        digest, _, revision = self.service.hash_kv(0)
        return message("etcdserverpb.HashResponse")(header=self.head(revision), hash=digest)

    async def hash_kv(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        digest, compacted, revision = self.service.hash_kv(request.revision)
        return message("etcdserverpb.HashKVResponse")(header=self.head(revision), hash=digest,
                                                        compact_revision=compacted)

    async def move_leader(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        await self.service.move_leader(request.targetID)
        return message("etcdserverpb.MoveLeaderResponse")(header=self.head())

    # -- Auth -----------------------------------------------------------------------------

    async def auth_disable(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        return message("etcdserverpb.AuthDisableResponse")(header=self.head())  # it is off already

    async def auth_refused(self, request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise KVFailure(AUTH_DISABLED)


def _check_size(request: Any) -> None:
    if request.ByteSize() > MAX_REQUEST_BYTES:
        raise KVFailure(errors.REQUEST_TOO_LARGE)


async def start_grpc(service: EtcdService, listen: str) -> grpc.aio.Server:
    """Serve on `listen` (HOST:PORT) from the running loop."""
    server = grpc.aio.server(options=OPTIONS)
    server.add_generic_rpc_handlers(EtcdGrpc(service).handlers())
    try:
        server.add_insecure_port(listen)
    except RuntimeError as exc:
        raise SystemExit(f"raftkube master: cannot serve gRPC on {listen} ({exc}); is the port taken?") from None
    await server.start()
    return server
