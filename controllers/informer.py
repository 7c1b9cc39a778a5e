"""Informers: a list, then a watch from the list's resourceVersion, into an in-memory cache with indexes.

One Informer per kind is shared by every controller that needs it (`Informers`). Handlers get
(event, old, new) with event "add", "update" or "delete", after the cache has changed, so a handler can
read the cache and only enqueues keys: the work happens in the controllers' sync(key).
A broken stream is resumed by api.client from the last resourceVersion, on the next server; after a 410 (that
version is compacted) it lists again (a RELIST), and the informer turns the difference between its cache and the
new list into the adds, updates and deletes that were missed.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Callable, Iterable

from api.client import ApiClient

Obj = dict[str, Any]
Handler = Callable[[str, "Obj | None", "Obj | None"], None]
IndexFunc = Callable[[Obj], Iterable[str]]

log = logging.getLogger("raftkube.informer")


def key_of(obj: Obj) -> str:
    """"namespace/name", or "name" for a cluster-scoped object: the key workqueues carry."""
    meta = obj["metadata"]
    return f"{meta['namespace']}/{meta['name']}" if meta.get("namespace") else meta["name"]


def split_key(key: str) -> tuple[str | None, str]:
    namespace, _, name = key.rpartition("/")
    return namespace or None, name


def _namespace(obj: Obj) -> Iterable[str]:
    return [obj["metadata"].get("namespace") or ""]


def _owner_uid(obj: Obj) -> Iterable[str]:
    return [ref["uid"] for ref in obj["metadata"].get("ownerReferences") or [] if ref.get("uid")]


def _node_name(obj: Obj) -> Iterable[str]:
    node = (obj.get("spec") or {}).get("nodeName")
    return [node] if node else []


def _labels(obj: Obj) -> Iterable[str]:
    return [f"{k}={v}" for k, v in (obj["metadata"].get("labels") or {}).items()]


DEFAULT_INDEXES: dict[str, IndexFunc] = {"namespace": _namespace, "owner": _owner_uid, "node": _node_name,
                                         "label": _labels}


class Informer:
    def __init__(self, client: ApiClient, kind: str, *, namespace: str | None = None,
                 field_selector: str | None = None, label_selector: str | None = None) -> None:
        self.client = client
        self.kind = kind
        self.namespace = namespace
        self.field_selector = field_selector
        self.label_selector = label_selector
        self.cache: dict[str, Obj] = {}
        self._index_funcs = dict(DEFAULT_INDEXES)
        self._indexes: dict[str, dict[str, set[str]]] = {name: {} for name in self._index_funcs}
        self._handlers: list[Handler] = []
        self.synced = asyncio.Event()

    def add_handler(self, handler: Handler) -> None:
        self._handlers.append(handler)
        for obj in list(self.cache.values()):  # a late handler still hears of everything cached
            handler("add", None, obj)

    # -- reads ------------------------------------------------------------------------------

    def get(self, key: str) -> Obj | None:
        return self.cache.get(key)

    def list(self, namespace: str | None = None) -> list[Obj]:
        if namespace is None:
            return list(self.cache.values())
        return self.by_index("namespace", namespace)

    def by_index(self, index: str, value: str) -> list[Obj]:
        return [self.cache[k] for k in self._indexes[index].get(value, ()) if k in self.cache]

    # -- the loop ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Forever: when even the relist fails (every server down), start over with a fresh list."""
        while True:
            try:
                await self._watch()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("%s informer: %s; listing again in 1s", self.kind, exc)
                await asyncio.sleep(1.0)

    async def _watch(self) -> None:
        async for event, obj in self.client.watch(self.kind, self.namespace, field_selector=self.field_selector,
                                                  label_selector=self.label_selector):
            try:
                if event == "RELIST":
                    self._replace(obj)
                    self.synced.set()
                elif event == "DELETED":
                    self._delete(key_of(obj), obj)
                elif event in ("ADDED", "MODIFIED"):
                    self._upsert(obj)
            except Exception:  # a handler's bug must not stop the informer of every controller
                log.exception("%s informer: handling %s failed", self.kind, event)

    def _replace(self, items: list[Obj]) -> None:
        fresh = {key_of(o): o for o in items}
        for key in [k for k in self.cache if k not in fresh]:
            self._delete(key, self.cache[key])
        for obj in fresh.values():
            self._upsert(obj)

    def _upsert(self, obj: Obj) -> None:
        key = key_of(obj)
        old = self.cache.get(key)
        if old is not None and old["metadata"].get("resourceVersion") == obj["metadata"].get("resourceVersion"):
            return
        if old is not None:
            self._unindex(key, old)
        self.cache[key] = obj
        self._index(key, obj)
        self._notify("update" if old is not None else "add", old, obj)

    def _delete(self, key: str, obj: Obj) -> None:
        old = self.cache.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        self._notify("delete", old or obj, None)

    def _index(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            for value in func(obj):
                self._indexes[name].setdefault(value, set()).add(key)

    def _unindex(self, key: str, obj: Obj) -> None:
        for name, func in self._index_funcs.items():
            for value in func(obj):
                keys = self._indexes[name].get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del self._indexes[name][value]

    def _notify(self, event: str, old: Obj | None, new: Obj | None) -> None:
        for handler in self._handlers:
            handler(event, old, new)


class Informers:
    """One shared informer per kind, started together."""

    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._informers: dict[str, Informer] = {}
        self._tasks: list[asyncio.Task] = []

    def __getitem__(self, kind: str) -> Informer:
        if kind not in self._informers:
            self._informers[kind] = Informer(self.client, kind)
            if self._tasks:  # asked for after start(): start it now
                self._tasks.append(asyncio.create_task(self._informers[kind].run()))
        return self._informers[kind]

    def start(self) -> None:
        self._tasks = [asyncio.create_task(inf.run()) for inf in self._informers.values()]

    async def wait_synced(self) -> None:
        await asyncio.gather(*(inf.synced.wait() for inf in self._informers.values()))

    def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
