"""How a gRPC handler answers an error, as etcd does: a `KVFailure` becomes the gRPC status etcd uses for it,
with etcd's message (etcd clients match on both), and a request that does not decode is InvalidArgument. Any
other exception is grpc_wire's to answer (Internal, logged), and never stops the server."""
from __future__ import annotations

import functools
from typing import Any, Awaitable, Callable

from kvstore import errors
from kvstore.errors import BadRequest, KVFailure
from kvstore.grpc_wire import Abort, Call


def answering_errors(fn: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Wrap a handler (unary or streaming) so that its errors reach the client as etcd's."""
    @functools.wraps(fn)
    async def handler(request: Any, call: Call) -> Any:
        try:
            return await fn(request, call)
        except KVFailure as exc:
            raise Abort(exc.error.code, exc.error.message) from None
        except BadRequest as exc:
            raise Abort(errors.INVALID_ARGUMENT, f"etcdserver: {exc}") from None
    return handler
