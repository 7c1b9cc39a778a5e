"""The KV API: a subset of etcd v3's JSON gateway over the Store, on aiohttp.

Every handler decodes with `gateway_codec`, calls the Store, and encodes the answer with the
header etcd puts on every response. Errors leave as etcd's `{"error","message","code"}` with the
HTTP status grpc-gateway gives that gRPC code.
"""
from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable

import aiohttp
import orjson
from aiohttp import web

from kvstore import errors
from kvstore import gateway_codec as codec
from kvstore.errors import KVError, KVFailure
from kvstore.gateway_watch import WatchStream, line
from kvstore.membership import Membership
from kvstore.store import Store
from kvstore.watch import WatchHub

log = logging.getLogger("raftkube.gateway")

MAX_REQUEST_BYTES = 3 * (1 << 19)  # 1.5 MiB, etcd's --max-request-bytes default
ENCODE_CHUNK = 2000  # key-values encoded between two turns of the event loop
VERSION = "3.4.0-raftkube"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(err: KVError, status: int | None = None) -> web.Response:
    body = {"error": err.message, "code": err.code, "message": err.message}
    return reply(body, status=status or err.http_status)


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KVFailure as exc:
        return error_response(exc.error)
    except codec.BadRequest as exc:
        return error_response(errors.invalid(str(exc)))
    except web.HTTPException as exc:
        if exc.status == 413:  # etcd answers an over-sized request with InvalidArgument
            return error_response(errors.REQUEST_TOO_LARGE)
        if exc.status >= 400:
            reason = exc.reason or "request failed"
            code = errors.UNIMPLEMENTED if exc.status in (404, 405) else errors.INVALID_ARGUMENT
            return error_response(KVError(code, f"{reason}: {request.method} {request.path}"), exc.status)
        raise


class KVGateway:
    def __init__(self, store: Store, hub: WatchHub, *, cluster_id: int, member_id: int,
                 member_ids: Callable[[], list[dict]], data_dir: str, progress_interval: float = 10.0,
                 membership: Membership | None = None) -> None:
        self.store = store
        self.progress_interval = progress_interval  # seconds between watch progress notifications
        self.hub = hub
        self.cluster_id = cluster_id
        self.member_id = member_id
        self.member_ids = member_ids
        self.data_dir = data_dir
        self.membership = membership

    def app(self) -> web.Application:
        app = web.Application(middlewares=[_errors], client_max_size=MAX_REQUEST_BYTES)
        routes = {
            "/v3/kv/range": self.range, "/v3/kv/put": self.put, "/v3/kv/deleterange": self.delete_range,
            "/v3/kv/txn": self.txn, "/v3/kv/compaction": self.compaction, "/v3/watch": self.watch,
            "/v3/lease/grant": self.lease_grant, "/v3/lease/revoke": self.lease_revoke,
            "/v3/kv/lease/revoke": self.lease_revoke, "/v3/lease/keepalive": self.lease_keepalive,
            "/v3/lease/timetolive": self.lease_timetolive, "/v3/kv/lease/timetolive": self.lease_timetolive,
            "/v3/lease/leases": self.lease_leases, "/v3/kv/lease/leases": self.lease_leases,
            "/v3/maintenance/status": self.status, "/v3/cluster/member/list": self.member_list,
            "/v3/cluster/member/add": self.member_add, "/v3/cluster/member/remove": self.member_remove,
        }
        for path, handler in routes.items():
            app.router.add_post(path, handler)
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        return app

    # -- helpers --------------------------------------------------------------------------

    def header(self, revision: int | None = None) -> dict:
        if revision is None:
            revision = self.store.machine.revision
        return codec.header(cluster_id=self.cluster_id, member_id=self.member_id, revision=revision,
                            raft_term=self.store.replica.raftCurrentTerm)

    @staticmethod
    async def body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise codec.BadRequest(f"request body is not valid JSON: {exc}") from None

    # -- kv -------------------------------------------------------------------------------

    async def range(self, request: web.Request) -> web.Response:
        req, serializable = codec.range_request(await self.body(request))
        res = await self.store.range(req, serializable=serializable)
        encoded = []
        for i in range(0, len(res["kvs"]), ENCODE_CHUNK):
            if i:
                await asyncio.sleep(0)  # Raft shares this loop: let it run between chunks
            encoded.extend(codec.enc_kv(kv) for kv in res["kvs"][i:i + ENCODE_CHUNK])
        return reply(codec.range_response(res, self.header(res["revision"]), encoded))

    async def put(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.put_request, codec.put_response)

    async def delete_range(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.delete_request, codec.delete_response)

    async def txn(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.txn_request, codec.txn_response)

    async def _write(self, request: web.Request, decode: Callable[[Any], dict],
                     encode: Callable[[dict, dict], dict]) -> web.Response:
        req = decode(await self.body(request))
        if req["op"] != "txn" and not req["key"]:  # refused here: no Raft round for it
            raise KVFailure(errors.KEY_NOT_PROVIDED)
        res = await self.store.propose(req)
        return reply(encode(res, self.header(res["revision"])))

    async def compaction(self, request: web.Request) -> web.Response:
        res = await self.store.propose(codec.compaction_request(await self.body(request)))
        return reply({"header": self.header(res["revision"])})

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, request: web.Request) -> web.Response:
        req = codec.lease_grant_request(await self.body(request))
        res = await self.store.propose(req)
        return reply(codec.lease_response(res, self.header(res["revision"])))

    async def lease_revoke(self, request: web.Request) -> web.Response:
        lease = codec.lease_id(await self.body(request), "lease revoke request")
        res = await self.store.propose({"op": "lease_revoke", "id": lease})
        return reply({"header": self.header(res["revision"])})

    async def lease_keepalive(self, request: web.Request) -> web.StreamResponse:
        """A stream in etcd: one `{"result": ...}` line per request object in the body."""
        ids = [codec.lease_id(obj, "lease keepalive request") for obj in codec.json_stream(await request.read())]
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        for lease in ids:
            try:
                res = await self.store.propose({"op": "lease_keepalive", "id": lease})
            except KVFailure as exc:
                if exc.error != errors.LEASE_NOT_FOUND:
                    raise
                res = {"revision": self.store.machine.revision, "id": lease, "ttl": 0}  # etcd: TTL left out
            await resp.write(line({"result": codec.lease_response(res, self.header(res["revision"]))}))
        return resp

    async def lease_timetolive(self, request: web.Request) -> web.Response:
        lease, with_keys = codec.timetolive_request(await self.body(request))
        await self.store.read_index()
        res = self.store.machine.lease_time_to_live(lease, self.store.replica.consumer.lessor.remaining, with_keys)
        out = {"header": self.header(res["revision"]), "ID": str(res["id"]), "TTL": str(res["ttl"])}
        if res["granted_ttl"]:
            out["grantedTTL"] = str(res["granted_ttl"])
        if res["keys"]:
            out["keys"] = [codec.enc_bytes(k) for k in res["keys"]]
        return reply(out)

    async def lease_leases(self, request: web.Request) -> web.Response:
        await self.body(request)
        await self.store.read_index()
        ids = self.store.machine.lease_ids()
        out: dict[str, Any] = {"header": self.header()}
        if ids:
            out["leases"] = [{"ID": str(i)} for i in ids]
        return reply(out)

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """etcd's watch stream over HTTP: every request object in the body, then events until the
        client goes away. The stream stays open after its watchers are cancelled, as etcd's does."""
        stream = WatchStream(self, codec.json_stream(await request.read()))
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        try:
            await stream.run(resp, request)
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            stream.close()
        return resp

    # -- maintenance and cluster ------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        await self.body(request)
        st = self.store.raft_status()
        leader = st.get("leader")
        leader_id = next((m["id"] for m in self.member_ids() if m["raft"] == leader), 0) if leader else 0
        size = sum(os.path.getsize(os.path.join(self.data_dir, f)) for f in os.listdir(self.data_dir)
                   if os.path.isfile(os.path.join(self.data_dir, f)))
        out = {"header": self.header(), "version": VERSION, "dbSize": str(size), "dbSizeInUse": str(size),
               "leader": str(leader_id), "raftIndex": str(st.get("commit_idx", 0)),
               "raftTerm": str(st.get("raft_term", 0)), "raftAppliedIndex": str(st.get("last_applied", 0))}
        return reply({k: v for k, v in out.items() if v != "0"})

    def _members(self) -> list[dict]:
        members = []
        for m in self.member_ids():
            member = {"ID": str(m["id"]), "name": m.get("name", ""), "peerURLs": [f"http://{m['raft']}"]}
            if m.get("kv"):
                member["clientURLs"] = [m["kv"]]
            members.append({k: v for k, v in member.items() if v})
        return members

    async def member_list(self, request: web.Request) -> web.Response:
        await self.body(request)
        return reply({"header": self.header(), "members": self._members()})

    async def member_add(self, request: web.Request) -> web.Response:
        """{"peerURLs": ["http://HOST:PORT"]}: the new master's Raft address. Add first, then start it."""
        body = await self.body(request)
        urls = body.get("peerURLs") if isinstance(body, dict) else None
        if not (isinstance(urls, list) and len(urls) == 1 and isinstance(urls[0], str)):
            raise codec.BadRequest('member add needs {"peerURLs": ["http://HOST:PORT"]}: the new master\'s Raft '
                                   'address, exactly one')
        address = codec.peer_address(urls[0])
        membership = self._membership()
        if not membership.is_leader():
            return await self._on_leader(request.path, body)
        await membership.add(address)
        added = next(m for m in self._members() if m["peerURLs"] == [f"http://{address}"])
        return reply({"header": self.header(), "member": added, "members": self._members()})

    async def member_remove(self, request: web.Request) -> web.Response:
        """{"ID": "..."}: a member's id from member list. The leader hands leadership over first."""
        body = await self.body(request)
        wanted = str(body.get("ID", "")) if isinstance(body, dict) else ""
        member = next((m for m in self.member_ids() if str(m["id"]) == wanted), None)
        if member is None:
            raise KVFailure(KVError(errors.NOT_FOUND, f"etcdserver: member not found (ID {wanted!r}); "
                                                      "see /v3/cluster/member/list"))
        membership = self._membership()
        if membership.is_leader() and member["raft"] == membership.replica.self_addr:
            await membership.step_down()
        if not membership.is_leader():
            return await self._on_leader(request.path, body)
        await membership.remove(member["raft"])
        return reply({"header": self.header(), "members": self._members()})

    async def _on_leader(self, path: str, body: Any) -> web.Response:
        """Send a membership change to the leader's KV API and relay its answer."""
        leader = self._membership().leader()
        url = next((m.get("kv") for m in self.member_ids() if m["raft"] == leader), None)
        if not url:
            raise KVFailure(errors.unavailable("etcdserver: no leader to make the membership change; retry"))
        try:
            async with aiohttp.ClientSession() as session:
                async with session.post(url + path, data=orjson.dumps(body),
                                        timeout=aiohttp.ClientTimeout(total=15)) as r:
                    return web.Response(body=await r.read(), status=r.status, content_type="application/json")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            raise KVFailure(errors.unavailable(f"etcdserver: the leader {leader} did not answer ({exc}); retry")) \
                from None

    def _membership(self) -> Membership:
        if self.membership is None:
            raise KVFailure(KVError(errors.UNIMPLEMENTED, "this master does not change membership"))
        return self.membership

    async def health(self, request: web.Request) -> web.Response:
        healthy = bool(self.store.raft_status().get("leader"))
        return reply({"health": "true" if healthy else "false"}, status=200 if healthy else 503)

    async def version(self, request: web.Request) -> web.Response:
        return reply({"etcdserver": VERSION, "etcdcluster": "3.4.0"})

