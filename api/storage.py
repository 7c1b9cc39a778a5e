"""Kubernetes objects in the store: one key per object, msgpack values, resourceVersion = mod_revision.

Every write is a compare-and-swap txn on the object's key, so two masters can never both create
the same name, and an update that carries a resourceVersion only lands on that exact version.
Values of the resources the encryption configuration names are sealed on the way in (api/encryption.py).
"""
from __future__ import annotations

from contextvars import ContextVar
from typing import Any

import msgpack

from api import errors
from api.encryption import DecryptError, Transformer
from api.registry import Resource
from kvstore.client import prefix_end
from kvstore import errors as kv_errors
from kvstore.errors import KVError, KVFailure
from kvstore.kv import KeyValue
from kvstore.store import Store

Obj = dict[str, Any]
# Set for the task of a request with dryRun=All: every write is checked against the store as it is now and
# answered as it would be, and nothing is proposed (kube-apiserver's dry run).
DRY_RUN: ContextVar[bool] = ContextVar("dry_run", default=False)


class ObjectStore:
    def __init__(self, store: Store, transformer: Transformer | None = None) -> None:
        self.store = store
        self.transformer = transformer or Transformer()

    def decode(self, kv: KeyValue) -> Obj:
        try:
            obj = msgpack.unpackb(self.transformer.open(kv.key, kv.value), raw=False)
        except (DecryptError, msgpack.UnpackException, ValueError) as exc:  # a value written past the API
            raise errors.ApiError(500, f"cannot read {kv.key.decode(errors='replace')}: {exc}") from None
        if not isinstance(obj, dict):
            raise errors.ApiError(500, f"cannot read {kv.key.decode(errors='replace')}: not an object")
        obj.setdefault("metadata", {})["resourceVersion"] = str(kv.mod_revision)
        return obj

    def encode(self, res: Resource, key: bytes, obj: Obj) -> bytes:
        meta = {k: v for k, v in obj.get("metadata", {}).items() if k != "resourceVersion"}
        return self.transformer.seal(res.plural, res.group, key,
                                     msgpack.packb({**obj, "metadata": meta}, use_bin_type=True))

    async def write(self, txn: dict) -> dict:
        """Propose the txn; in a dry run, only evaluate it against a linearizable view of the store."""
        if not DRY_RUN.get():
            return await self.store.propose(txn)
        await self.store.read_index()
        result = self.store.machine.dry_txn(txn)
        if isinstance(result, KVError):
            raise KVFailure(result)
        return result

    @property
    def revision(self) -> int:
        return self.store.machine.revision

    async def get(self, res: Resource, namespace: str | None, name: str, *, local: bool = False) -> Obj:
        key = res.key(namespace, name).encode()
        found = await self.store.range({"op": "range", "key": key}, serializable=local)
        if not found["kvs"]:
            raise errors.not_found(res.plural, name, res.group)
        return self.decode(found["kvs"][0])

    async def list(self, res: Resource, namespace: str | None, *, local: bool = False) -> tuple[list[Obj], int]:
        items, revision, _ = await self.page(res, namespace, local=local)
        return items, revision

    async def page(self, res: Resource, namespace: str | None, *, local: bool = False, revision: int = 0,
                   start: bytes = b"", limit: int = 0) -> tuple[list[Obj], int, bytes | None]:
        """Up to `limit` objects from key `start` on, read at `revision` (the head when 0); the last
        value is the key the next page starts at, or None at the end."""
        prefix = res.prefix(namespace).encode()
        if start and not start.startswith(prefix):
            raise errors.bad_request("the continue token belongs to another list")
        try:
            found = await self.store.range({"op": "range", "key": start or prefix, "range_end": prefix_end(prefix),
                                            "revision": revision, "limit": limit}, serializable=local)
        except KVFailure as exc:
            if exc.error == kv_errors.COMPACTED:
                raise errors.gone("The provided continue parameter is too old to display a consistent list "
                                  "result. You can start a new list without the continue parameter.") from None
            raise
        kvs = found["kvs"]
        following = kvs[-1].key + b"\0" if found["more"] and kvs else None
        return [self.decode(kv) for kv in kvs], revision or found["revision"], following

    async def create(self, res: Resource, obj: Obj, claims: tuple[tuple[bytes, bytes], ...] = ()) -> Obj:
        """Create the object; with `claims`, also create those keys (a ClusterIP), all or nothing."""
        meta = obj["metadata"]
        key = res.key(meta.get("namespace"), meta["name"]).encode()
        keys = [key] + [k for k, _ in claims]
        done = await self.write({
            "op": "txn",
            "compare": [{"key": k, "target": "VERSION", "result": "EQUAL", "version": 0} for k in keys],
            "success": [{"op": "put", "key": key, "value": self.encode(res, key, obj)}]
                       + [{"op": "put", "key": k, "value": v} for k, v in claims],
            "failure": [{"op": "range", "key": k, "count_only": True} for k in keys]})
        if not done["succeeded"]:
            taken = [k for k, r in zip(keys, done["responses"]) if r["count"]]
            if key in taken:
                raise errors.already_exists(res.plural, meta["name"], res.group)
            raise ClaimTaken(taken[0])
        return {**obj, "metadata": {**meta, "resourceVersion": str(done["revision"])}}

    async def update(self, res: Resource, obj: Obj, expected_rv: int | None) -> Obj:
        """Replace the object: only if it is still at `expected_rv` (when given), and exists."""
        meta = obj["metadata"]
        key = res.key(meta.get("namespace"), meta["name"]).encode()
        compare = ({"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": expected_rv} if expected_rv
                   else {"key": key, "target": "VERSION", "result": "GREATER", "version": 0})
        done = await self.write({
            "op": "txn", "compare": [compare], "success": [{"op": "put", "key": key, "value": self.encode(res, key, obj)}],
            "failure": [{"op": "range", "key": key}]})
        if not done["succeeded"]:
            if not done["responses"][0]["kvs"]:
                raise errors.not_found(res.plural, meta["name"], res.group)
            raise errors.conflict(res.plural, meta["name"], res.group)
        return {**obj, "metadata": {**meta, "resourceVersion": str(done["revision"])}}

    async def delete(self, res: Resource, namespace: str | None, name: str,
                     expected_rv: int | None = None, release: tuple[bytes, ...] = ()) -> Obj:
        """Delete the object (only at `expected_rv`, when given) and the keys it claimed."""
        key = res.key(namespace, name).encode()
        compare = ([{"key": key, "target": "MOD", "result": "EQUAL", "mod_revision": expected_rv}]
                   if expected_rv else [])
        done = await self.write({
            "op": "txn", "compare": compare,
            "success": [{"op": "delete_range", "key": key, "prev_kv": True}]
                       + [{"op": "delete_range", "key": k} for k in release],
            "failure": [{"op": "range", "key": key}]})
        if not done["succeeded"]:
            if not done["responses"][0]["kvs"]:
                raise errors.not_found(res.plural, name, res.group)
            raise errors.conflict(res.plural, name, res.group)
        gone = done["responses"][0]["prev_kvs"]
        if not gone:
            raise errors.not_found(res.plural, name, res.group)
        return self.decode(gone[0])

    async def keys(self, prefix: bytes) -> list[bytes]:
        """The keys under a prefix, from this replica (a hint: the txn that uses it checks again)."""
        found = await self.store.range({"op": "range", "key": prefix, "range_end": prefix_end(prefix),
                                        "keys_only": True}, serializable=True)
        return [kv.key for kv in found["kvs"]]


class ClaimTaken(Exception):
    """A key a create wanted to claim exists already (someone else's ClusterIP)."""

    def __init__(self, key: bytes) -> None:
        super().__init__(key.decode(errors="replace"))
        self.key = key
