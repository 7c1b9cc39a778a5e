"""JSON answers as kube-apiserver writes them: compact, one trailing newline (Go's json.Encoder), with the
Content-Type clients check."""
from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web


def reply(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body) + b"\n", status=status, content_type="application/json",
                        headers=headers)
