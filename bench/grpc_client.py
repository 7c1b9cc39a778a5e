"""The benchmark's etcd v3 gRPC client: `KVClient`'s methods, over grpc.aio, for raftkube and a real etcd alike.

It answers with the same dict shapes as the JSON client (only the fields the workloads read), so every workload
runs unchanged over either transport. One channel per member; the messages come from kvstore.etcdpb.
"""
from __future__ import annotations

from typing import Any, AsyncIterator

import grpc

from kvstore.etcdpb import message


def _call(channel: grpc.aio.Channel, method: str, request: str, response: str, kind: str = "unary_unary"):
    return getattr(channel, kind)(f"/etcdserverpb.{method}",
                                  request_serializer=message(f"etcdserverpb.{request}").SerializeToString,
                                  response_deserializer=message(f"etcdserverpb.{response}").FromString)


def credentials(tls: dict[str, str]) -> grpc.ChannelCredentials:
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    return grpc.ssl_channel_credentials(read(tls["ca"]), read(tls["key"]), read(tls["cert"]))


def _header(h: Any) -> dict[str, Any]:
    return {"revision": h.revision, "member_id": str(h.member_id), "raft_term": h.raft_term}


def _kv(kv: Any) -> dict[str, Any]:
    return {"key": kv.key, "value": kv.value, "mod_revision": kv.mod_revision, "create_revision": kv.create_revision}


class GrpcKVClient:
    def __init__(self, endpoint: str, *, timeout: float = 5.0, tls: dict[str, str] | None = None) -> None:
        """`tls`: {"ca", "cert", "key"} files for an https endpoint (a client certificate, the CA to check it with)."""
        self.endpoint = endpoint.split("://", 1)[-1]
        self.timeout = timeout
        self.channel = grpc.aio.secure_channel(self.endpoint, credentials(tls)) if tls else \
            grpc.aio.insecure_channel(self.endpoint)
        self._put = _call(self.channel, "KV/Put", "PutRequest", "PutResponse")
        self._range = _call(self.channel, "KV/Range", "RangeRequest", "RangeResponse")
        self._txn = _call(self.channel, "KV/Txn", "TxnRequest", "TxnResponse")
        self._status = _call(self.channel, "Maintenance/Status", "StatusRequest", "StatusResponse")
        self._watch = _call(self.channel, "Watch/Watch", "WatchRequest", "WatchResponse", "stream_stream")
        self.PutRequest = message("etcdserverpb.PutRequest")
        self.RangeRequest = message("etcdserverpb.RangeRequest")

    async def close(self) -> None:
        await self.channel.close()

    async def put(self, key: bytes, value: bytes) -> dict[str, Any]:
        res = await self._put(self.PutRequest(key=key, value=value), timeout=self.timeout)
        return {"header": _header(res.header)}

    async def range(self, key: bytes, *, serializable: bool = False) -> dict[str, Any]:
        res = await self._range(self.RangeRequest(key=key, serializable=serializable), timeout=self.timeout)
        return {"header": _header(res.header), "kvs": [_kv(kv) for kv in res.kvs]}

    async def cas(self, key: bytes, expected_mod_revision: int, value: bytes) -> bool:
        txn = message("etcdserverpb.TxnRequest")(
            compare=[{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": expected_mod_revision}],
            success=[{"request_put": {"key": key, "value": value}}])
        return (await self._txn(txn, timeout=self.timeout)).succeeded

    async def status(self) -> dict[str, Any]:
        res = await self._status(message("etcdserverpb.StatusRequest")(), timeout=self.timeout)
        return {"header": _header(res.header), "leader": str(res.leader)}

    async def watch(self, key: bytes, range_end: bytes = b"", *, start_revision: int = 0) -> AsyncIterator[dict]:
        create = message("etcdserverpb.WatchRequest")(
            create_request={"key": key, "range_end": range_end, "start_revision": start_revision})
        call = self._watch(iter([create]))
        async for res in call:
            yield {"created": res.created,
                   "events": [{"kv": {"mod_revision": ev.kv.mod_revision}} for ev in res.events]}
