"""The KV API: etcd v3's JSON gateway, on aiohttp.

Every handler decodes with `gateway_codec`, calls the `EtcdService` (the same one gRPC calls, so both
behave alike), and encodes the answer with the header etcd puts on every response. Errors leave as etcd's
`{"error","message","code"}` with the HTTP status grpc-gateway gives that gRPC code.
"""
from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any, Awaitable, Callable

import orjson
from aiohttp import web

from kvstore import errors
from kvstore import gateway_codec as codec
from kvstore.errors import BadRequest, KVError, KVFailure
from kvstore.etcd_service import EtcdService, encode_chunked
from kvstore.gateway_watch import line, start_stream, stream_watch
from kvstore.watch_session import MAX_REQUEST_BYTES

log = logging.getLogger("raftkube.gateway")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def reply(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def error_response(err: KVError, status: int | None = None) -> web.Response:
    body = {"error": err.message, "code": err.code, "message": err.message}
    return reply(body, status=status or err.http_status)


def _stream_error(err: KVError) -> dict[str, Any]:
    """The last message of a stream that failed, as grpc-gateway writes it (its StreamError)."""
    status = err.http_status
    return {"grpc_code": err.code, "http_code": status, "message": err.message,
            "http_status": HTTPStatus(status).phrase}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except KVFailure as exc:
        return error_response(exc.error)
    except BadRequest as exc:
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
    def __init__(self, service: EtcdService) -> None:
        self.service = service

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
            "/v3/cluster/member/update": self.member_update,
        }
        for path, handler in routes.items():
            app.router.add_post(path, handler)
        app.router.add_get("/health", self.health)
        app.router.add_get("/version", self.version)
        return app

    # -- helpers --------------------------------------------------------------------------

    def header(self, revision: int | None = None) -> dict:
        return codec.header(self.service.header(revision))

    @staticmethod
    async def body(request: web.Request) -> Any:
        raw = await request.read()
        if not raw.strip():
            return {}
        try:
            return orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise BadRequest(f"request body is not valid JSON: {exc}") from None

    # -- kv -------------------------------------------------------------------------------

    async def range(self, request: web.Request) -> web.Response:
        req, serializable = codec.range_request(await self.body(request))
        res = await self.service.range(req, serializable=serializable)
        encoded = await encode_chunked(res["kvs"], codec.enc_kv)
        return reply(codec.range_response(res, self.header(res["revision"]), encoded))

    async def put(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.put_request, codec.put_response)

    async def delete_range(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.delete_request, codec.delete_response)

    async def txn(self, request: web.Request) -> web.Response:
        return await self._write(request, codec.txn_request, codec.txn_response)

    async def _write(self, request: web.Request, decode: Callable[[Any], dict],
                     encode: Callable[[dict, dict], dict]) -> web.Response:
        res = await self.service.write(decode(await self.body(request)))
        return reply(encode(res, self.header(res["revision"])))

    async def compaction(self, request: web.Request) -> web.Response:
        res = await self.service.compact(codec.compaction_request(await self.body(request))["revision"])
        return reply({"header": self.header(res["revision"])})

    # -- leases ---------------------------------------------------------------------------

    async def lease_grant(self, request: web.Request) -> web.Response:
        req = codec.lease_grant_request(await self.body(request))
        res = await self.service.lease_grant(req["ttl"], req["id"])
        return reply(codec.lease_response(res, self.header(res["revision"])))

    async def lease_revoke(self, request: web.Request) -> web.Response:
        res = await self.service.lease_revoke(codec.lease_id(await self.body(request), "lease revoke request"))
        return reply({"header": self.header(res["revision"])})

    async def lease_keepalive(self, request: web.Request) -> web.StreamResponse:
        """A stream in etcd: one `{"result": ...}` line per request object in the body. A keepalive that fails
        ends the stream as grpc-gateway ends one: with the error's status if nothing was sent yet, else 200 and
        a last `{"error": {...}}` line (a second status line written into the body, as the error middleware
        would, left the client a chunk it could not parse)."""
        ids = [codec.lease_id(obj, "lease keepalive request") for obj in codec.json_stream(await request.read())]
        resp: web.StreamResponse | None = None
        try:
            for lease in ids:
                try:
                    res = await self.service.lease_keepalive(lease)
                except KVFailure as exc:
                    resp = resp or await start_stream(request, exc.error.http_status)
                    await resp.write(line({"error": _stream_error(exc.error)}))
                    break
                resp = resp or await start_stream(request)
                await resp.write(line({"result": codec.lease_response(res, self.header(res["revision"]))}))
            return resp or await start_stream(request)
        except ConnectionError:  # the client went away
            return resp or web.Response()

    async def lease_timetolive(self, request: web.Request) -> web.Response:
        lease, with_keys = codec.timetolive_request(await self.body(request))
        res = await self.service.lease_time_to_live(lease, with_keys)
        out = {"header": self.header(res["revision"]), "ID": str(res["id"]), "TTL": str(res["ttl"])}
        if res["granted_ttl"]:
            out["grantedTTL"] = str(res["granted_ttl"])
        if res["keys"]:
            out["keys"] = [codec.enc_bytes(k) for k in res["keys"]]
        return reply(out)

    async def lease_leases(self, request: web.Request) -> web.Response:
        await self.body(request)
        ids = await self.service.lease_ids()
        out: dict[str, Any] = {"header": self.header()}
        if ids:
            out["leases"] = [{"ID": str(i)} for i in ids]
        return reply(out)

    # -- watch ----------------------------------------------------------------------------

    async def watch(self, request: web.Request) -> web.StreamResponse:
        """etcd's watch stream over HTTP: every request object in the body, then events until the
        client goes away. The stream stays open after its watchers are cancelled, as etcd's does."""
        return await stream_watch(self, request, codec.json_stream(await request.read()))

    # -- maintenance and cluster ------------------------------------------------------------

    async def status(self, request: web.Request) -> web.Response:
        await self.body(request)
        return reply(codec.status_response(self.service.status(), self.header()))

    async def member_list(self, request: web.Request) -> web.Response:
        await self.body(request)
        return reply({"header": self.header(), "members": [codec.member(m) for m in self.service.members()]})

    async def member_add(self, request: web.Request) -> web.Response:
        """{"peerURLs": ["http://HOST:PORT"]}: the new master's Raft address. Add first, then start it."""
        body = await self.body(request)
        urls = body.get("peerURLs") if isinstance(body, dict) else None
        if not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
            raise BadRequest('member add needs {"peerURLs": ["http://HOST:PORT"]}: the new master\'s Raft address')
        added, members = await self.service.member_add(urls, is_learner=codec.flag(body, "isLearner"))
        return reply({"header": self.header(), "member": codec.member(added),
                      "members": [codec.member(m) for m in members]})

    async def member_remove(self, request: web.Request) -> web.Response:
        """{"ID": "..."}: a member's id from member list. The leader hands leadership over first."""
        members = await self.service.member_remove(codec.member_id(await self.body(request), "member remove"))
        return reply({"header": self.header(), "members": [codec.member(m) for m in members]})

    async def member_update(self, request: web.Request) -> web.Response:
        body = await self.body(request)
        urls = body.get("peerURLs") if isinstance(body, dict) else None
        if not (isinstance(urls, list) and all(isinstance(u, str) for u in urls)):
            raise BadRequest('member update needs {"ID": "...", "peerURLs": ["http://HOST:PORT"]}')
        members = await self.service.member_update(codec.member_id(body, "member update"), urls)
        return reply({"header": self.header(), "members": [codec.member(m) for m in members]})

    async def health(self, request: web.Request) -> web.Response:
        healthy = self.service.healthy()
        return reply({"health": "true" if healthy else "false"}, status=200 if healthy else 503)

    async def version(self, request: web.Request) -> web.Response:
        return reply(self.service.version())
