"""How a gRPC handler answers an error, as etcd does: a `KVFailure` becomes the gRPC status etcd uses for it,
with etcd's message (etcd clients match on both); a request that does not decode is InvalidArgument; any other
exception is logged and answered Internal, and never stops the server."""
from __future__ import annotations

import functools
import logging
from typing import Any, Awaitable, Callable

import grpc

from kvstore.errors import BadRequest, KVFailure

log = logging.getLogger("raftkube.grpc")

STATUS = {code.value[0]: code for code in grpc.StatusCode}


async def abort_with(context: grpc.aio.ServicerContext, exc: BaseException) -> None:
    """Answer an exception; re-raise what is not ours to answer (a cancellation, an abort already under way)."""
    if isinstance(exc, KVFailure):
        await context.abort(STATUS.get(exc.error.code, grpc.StatusCode.UNKNOWN), exc.error.message)
    if isinstance(exc, BadRequest):
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"etcdserver: {exc}")
    if isinstance(exc, Exception) and not isinstance(exc, grpc.aio.AbortError):
        log.exception("gRPC handler failed")
        await context.abort(grpc.StatusCode.INTERNAL, f"etcdserver: internal error ({type(exc).__name__}); "
                                                       "the master's log has the details")
    raise exc


def answering_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a handler (unary or streaming) so that its errors reach the client as etcd's."""
    @functools.wraps(fn)
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(request, context)
        except BaseException as exc:  # noqa: BLE001 - abort_with answers ours and re-raises the rest
            await abort_with(context, exc)
    return handler
