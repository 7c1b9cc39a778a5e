"""The store's etcd v3 JSON gateway as a test's client sees it: every master's endpoint, moving on from one that
refuses the connection (a killed master: the request never left, so trying the next is safe). A timeout is not
retried: the write may have happened, and the caller's history should say "unknown".

`AsyncKV` is the async client (`AsyncCluster.kv`); `KV` the same calls, blocking (`Cluster.kv`)."""
from __future__ import annotations

import ssl
from typing import Any, AsyncIterator, Iterator

import aiohttp

from kvstore.client import KVClient
from raftkube.testing.loop import BackgroundLoop

Obj = dict[str, Any]


class AsyncKV:
    def __init__(self, endpoints: list[str], *, timeout: float = 5.0, tls: ssl.SSLContext | None = None) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self.tls = tls
        self._session: aiohttp.ClientSession | None = None
        self._current = 0

    def _client(self, endpoint: str) -> KVClient:
        if self._session is None:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0, ssl=self.tls or True))
        return KVClient(endpoint, timeout=self.timeout, session=self._session)

    async def _call(self, method: str, *args: Any, **kw: Any) -> Any:
        last: Exception | None = None
        for i in range(len(self.endpoints)):
            index = (self._current + i) % len(self.endpoints)
            try:
                result = await getattr(self._client(self.endpoints[index]), method)(*args, **kw)
            except aiohttp.ClientConnectorError as exc:  # refused or unreachable: it never left
                last = exc
                continue
            self._current = index
            return result
        raise ConnectionError(f"no master answered ({', '.join(self.endpoints)}): {last}")

    async def put(self, key: bytes, value: bytes, **kw: Any) -> Obj:
        return await self._call("put", key, value, **kw)

    async def get(self, key: bytes, **kw: Any) -> bytes | None:
        return await self._call("get", key, **kw)

    async def range(self, key: bytes, range_end: bytes = b"", **kw: Any) -> Obj:
        return await self._call("range", key, range_end, **kw)

    async def delete(self, key: bytes, range_end: bytes = b"", **kw: Any) -> Obj:
        return await self._call("delete", key, range_end, **kw)

    async def txn(self, compare: list[Obj], success: list[Obj], failure: list[Obj] | None = None) -> Obj:
        return await self._call("txn", compare, success, failure)

    async def watch(self, key: bytes, range_end: bytes = b"", **kw: Any) -> AsyncIterator[Obj]:
        """Each watch response (`created` first), from the first master that takes the watch."""
        async for message in self._client(self.endpoints[self._current]).watch(key, range_end, **kw):
            yield message

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class KV:
    """AsyncKV's calls, each run on the cluster's background loop and waited for."""

    def __init__(self, kv: AsyncKV, loop: BackgroundLoop) -> None:
        self._kv = kv
        self._loop = loop

    def put(self, key: bytes, value: bytes, **kw: Any) -> Obj:
        return self._loop.run(self._kv.put(key, value, **kw))

    def get(self, key: bytes, **kw: Any) -> bytes | None:
        return self._loop.run(self._kv.get(key, **kw))

    def range(self, key: bytes, range_end: bytes = b"", **kw: Any) -> Obj:
        return self._loop.run(self._kv.range(key, range_end, **kw))

    def delete(self, key: bytes, range_end: bytes = b"", **kw: Any) -> Obj:
        return self._loop.run(self._kv.delete(key, range_end, **kw))

    def txn(self, compare: list[Obj], success: list[Obj], failure: list[Obj] | None = None) -> Obj:
        return self._loop.run(self._kv.txn(compare, success, failure))

    def close(self) -> None:
        self._loop.run(self._kv.close())

    def watch(self, key: bytes, range_end: bytes = b"", **kw: Any) -> Iterator[Obj]:
        """Each watch response, blocking for the next; close the generator to end the watch."""
        stream = self._kv.watch(key, range_end, **kw)
        try:
            while True:
                try:
                    yield self._loop.run(stream.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            self._loop.run(stream.aclose())
