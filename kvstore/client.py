"""A small async client for the etcd v3 JSON gateway: ours, or a real etcd's.

Used by the benchmark (the same client against both), the tests and `raftkube` tools. Keys and
values are bytes; the client does the base64 and the string-encoded integers.
"""
from __future__ import annotations

import base64
import json
import ssl
from typing import Any, AsyncIterator

import aiohttp


class EtcdError(Exception):
    def __init__(self, status: int, body: dict[str, Any]):
        failed = body.get("error")
        if isinstance(failed, dict):  # how a failed stream ends (grpc-gateway's StreamError): in the same terms
            body = {"error": failed.get("message"), "code": failed.get("grpc_code"), "message": failed.get("message")}
        super().__init__(f"HTTP {status}: {body.get('message') or body}")
        self.status = status
        self.code = body.get("code")
        self.body = body


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """The range_end that makes [prefix, end) cover every key starting with prefix."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


class KVClient:
    """`tls`: for an https endpoint, the CA and client certificate (kvstore/tls.py `client_context`), in every
    request and in the connector of the session it makes (so `session` serves raw requests too); a shared
    `session` may hold it in its connector instead."""

    def __init__(self, endpoint: str, *, timeout: float = 5.0, session: aiohttp.ClientSession | None = None,
                 tls: ssl.SSLContext | None = None):
        self.endpoint = endpoint.rstrip("/")
        self._own_session = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._ssl: ssl.SSLContext | bool = tls or True  # True: the session's connector decides

    async def __aenter__(self) -> "KVClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=self._ssl))
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self.session.post(self.endpoint + path, data=json.dumps(body), timeout=self._timeout,
                                     ssl=self._ssl) as r:
            text = await r.text()
            try:
                data = json.loads(text) if text.strip() else {}
            except ValueError:
                data = {"message": text}
            if r.status != 200:
                raise EtcdError(r.status, data)
            return data

    async def put(self, key: bytes, value: bytes, *, lease: int = 0, prev_kv: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(key), "value": b64(value)}
        if lease:
            body["lease"] = str(lease)
        if prev_kv:
            body["prev_kv"] = True
        return await self.call("/v3/kv/put", body)

    async def range(self, key: bytes, range_end: bytes = b"", *, serializable: bool = False,
                    revision: int = 0, limit: int = 0, **extra: Any) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(key), **extra}
        if range_end:
            body["range_end"] = b64(range_end)
        if serializable:
            body["serializable"] = True
        if revision:
            body["revision"] = str(revision)
        if limit:
            body["limit"] = str(limit)
        return await self.call("/v3/kv/range", body)

    async def get(self, key: bytes, **kw: Any) -> bytes | None:
        kvs = (await self.range(key, **kw)).get("kvs") or []
        return unb64(kvs[0].get("value")) if kvs else None

    async def delete(self, key: bytes, range_end: bytes = b"", *, prev_kv: bool = False) -> dict[str, Any]:
        body: dict[str, Any] = {"key": b64(key)}
        if range_end:
            body["range_end"] = b64(range_end)
        if prev_kv:
            body["prev_kv"] = True
        return await self.call("/v3/kv/deleterange", body)

    async def txn(self, compare: list[dict], success: list[dict], failure: list[dict] | None = None) -> dict[str, Any]:
        return await self.call("/v3/kv/txn", {"compare": compare, "success": success, "failure": failure or []})

    async def cas(self, key: bytes, expected_mod_revision: int, value: bytes) -> bool:
        """Put `value` only if the key is still at `expected_mod_revision` (0: does not exist)."""
        res = await self.txn([{"key": b64(key), "target": "MOD", "result": "EQUAL",
                               "mod_revision": str(expected_mod_revision)}],
                             [{"request_put": {"key": b64(key), "value": b64(value)}}])
        return bool(res.get("succeeded"))

    async def compact(self, revision: int) -> dict[str, Any]:
        return await self.call("/v3/kv/compaction", {"revision": str(revision)})

    async def lease_grant(self, ttl: int, lease_id: int = 0) -> int:
        res = await self.call("/v3/lease/grant", {"TTL": str(ttl), "ID": str(lease_id)})
        return int(res["ID"])

    async def lease_keepalive(self, lease_id: int) -> int:
        """Refresh the lease once; its TTL, or 0 when it no longer exists (as etcd answers)."""
        res = await self.call("/v3/lease/keepalive", {"ID": str(lease_id)})
        if not isinstance(res.get("result"), dict):  # a stream that failed after its status line said 200
            failed = res.get("error")
            raise EtcdError(int(failed.get("http_code") or 500) if isinstance(failed, dict) else 502, res)
        return int(res["result"].get("TTL") or 0)

    async def status(self) -> dict[str, Any]:
        return await self.call("/v3/maintenance/status", {})

    async def watch(self, key: bytes, range_end: bytes = b"", *, start_revision: int = 0,
                    prev_kv: bool = False, progress_notify: bool = False) -> AsyncIterator[dict[str, Any]]:
        """Yield each `result` message of a watch stream, `created` first."""
        create: dict[str, Any] = {"key": b64(key)}
        if range_end:
            create["range_end"] = b64(range_end)
        if start_revision:
            create["start_revision"] = str(start_revision)
        if prev_kv:
            create["prev_kv"] = True
        if progress_notify:
            create["progress_notify"] = True
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=5)
        async with self.session.post(self.endpoint + "/v3/watch", data=json.dumps({"create_request": create}),
                                     timeout=timeout, ssl=self._ssl) as r:
            if r.status != 200:
                raise EtcdError(r.status, json.loads(await r.text() or "{}"))
            async for raw in _lines(r.content):
                if raw.strip():
                    yield json.loads(raw)["result"]


async def _lines(content: aiohttp.StreamReader) -> AsyncIterator[bytes]:
    """The stream's lines, however long (aiohttp's own line reader stops at 512 KiB; one watch message
    carrying big values can be larger)."""
    buf = bytearray()
    async for chunk in content.iter_any():
        buf += chunk
        start = 0
        while (end := buf.find(b"\n", start)) >= 0:
            yield bytes(buf[start:end])
            start = end + 1
        del buf[:start]
    if buf:
        yield bytes(buf)
