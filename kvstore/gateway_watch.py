"""`/v3/watch` over HTTP: the create, cancel and progress requests of the body, then replies as JSON lines.

The stream itself (ids, backlog, progress, fragments) is `kvstore/watch_session.py`, shared with gRPC; this
module only parses the requests of the body up front (all checked before anything is sent) and writes each
reply as one `{"result": ...}` line, as etcd's gateway does.
"""
from __future__ import annotations

import asyncio
from typing import Any

import orjson
from aiohttp import web

from kvstore import gateway_codec as codec
from kvstore.errors import BadRequest


def line(obj: Any) -> bytes:
    return orjson.dumps(obj) + b"\n"


async def start_stream(request: web.Request, status: int = 200) -> web.StreamResponse:
    """A stream of JSON lines, its status line and headers sent."""
    resp = web.StreamResponse(status=status, headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    return resp


def parse(message: Any) -> tuple[str, Any]:
    if not isinstance(message, dict):
        raise BadRequest("each watch request must be a JSON object")
    if "create_request" in message:
        return "create", codec.watch_create_request(message["create_request"])
    if "cancel_request" in message:
        cancel = message["cancel_request"]
        return "cancel", codec.int64(cancel if isinstance(cancel, dict) else {}, "watch_id")
    if "progress_request" in message:
        return "progress", None
    raise BadRequest("a watch request needs create_request, cancel_request or progress_request")


async def stream_watch(gateway, request: web.Request, messages: list[Any]) -> web.StreamResponse:
    requests = [parse(m) for m in messages]
    session = gateway.service.watch_session()
    for kind, arg in requests:
        if kind == "create":
            session.create(arg)
        elif kind == "cancel":
            session.cancel(arg)
        else:
            session.request_progress()
    resp = await start_stream(request)
    try:
        async for reply in session.replies(alive=lambda: _connected(request)):
            await resp.write(line({"result": codec.watch_response(reply, gateway.header(reply.revision))}))
    except (ConnectionError, asyncio.CancelledError):
        pass
    finally:
        session.close()
    return resp


def _connected(request: web.Request) -> bool:
    return request.transport is not None and not request.transport.is_closing()
