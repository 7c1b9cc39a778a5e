"""The MVCC state machine: etcd v3 semantics as deterministic Python.

`apply(command)` is the only way state changes. It is called, in log order, on every replica
and must give every replica the same state: so it reads no clock, draws no random number, does
no I/O, and never raises (errors are returned as `KVError` values). It returns the result for
the proposer and the events for the local watch hub:

    result, events = machine.apply({"id": 7, "req": {"op": "put", "key": b"a", "value": b"1"}})

Requests are plain dicts shaped like etcd's protobuf messages (see `kvstore/gateway_codec.py`
for the mapping from JSON). Every request that changes a key raises `revision` by exactly one,
however many keys it touches; reads, lease grants and no-op deletes leave it alone.
"""
from __future__ import annotations

from bisect import bisect_left
from collections import OrderedDict
from typing import Any, Callable

from kvstore import errors, snapshot_state
from kvstore.errors import KVError
from kvstore.key_index import KeyIndex
from kvstore.kv import DELETE, PUT, Event, KeyValue, tombstone
from kvstore.leases import LeaseTable

MAX_TXN_OPS = 128
MIN_LEASE_TTL = 2  # etcd raises shorter TTLs to this (with its default election timeout)
DEDUP_WINDOW = 20_000  # request ids remembered, so a retried proposal is applied once

Request = dict[str, Any]
Result = dict[str, Any] | KVError


class _Write:
    """The revision a write lands at, and what it changed so far."""

    def __init__(self, revision: int) -> None:
        self.revision = revision
        self.events: list[Event] = []


class StateMachine:
    def __init__(self) -> None:
        self.revision = 1  # etcd starts at 1 with an empty store
        self.compact_revision = 0
        self.index = KeyIndex()
        self.leases = LeaseTable()
        self.history: list[Event] = []  # every event after compact_revision, in order
        self.members: dict[str, dict[str, Any]] = {}  # raft address -> what a master announced
        self._recent: OrderedDict[Any, Result] = OrderedDict()

    # -- the one entry point -------------------------------------------------------------

    def apply(self, command: dict[str, Any]) -> tuple[Result, list[Event]]:
        """Apply one command; never raises."""
        rid = command.get("id")
        if rid is not None and rid in self._recent:
            return self._recent[rid], []
        before = len(self.history)
        try:
            req = command["req"]
            name = _OPS.get(req.get("op")) if isinstance(req, dict) else None
            result = getattr(self, name)(req, rid) if name else errors.invalid(f"unknown operation {req!r:.80}")
        except Exception as exc:  # noqa: BLE001 - apply must never raise (a raise wedges Raft)
            result = errors.internal(f"apply failed: {type(exc).__name__}: {exc}")
        if rid is not None and not (isinstance(result, KVError) and result.code == errors.INTERNAL):
            self._remember(rid, result)
        return result, self.history[before:]

    def _remember(self, rid: Any, result: Result) -> None:
        self._recent[rid] = result
        if len(self._recent) > DEDUP_WINDOW:
            self._recent.popitem(last=False)

    def __getstate__(self) -> dict[str, Any]:
        """What a snapshot keeps: everything, but of the recent requests only their ids. A retry is applied
        once all the same; its answer (which can hold whole objects) lives only in memory, and a retry that
        arrives after a restart learns that the request was applied and must read to see how."""
        state = self.__dict__.copy()
        state["_recent"] = OrderedDict.fromkeys(self._recent, errors.APPLIED_RESULT_LOST)
        state["history"] = snapshot_state.pack_history(self.history, self.index.state_lists())  # refers to the index
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        if isinstance(state["history"], bytes):  # else a snapshot written before snapshot_state.py
            self.history = snapshot_state.unpack_history(state["history"], self.index.state_lists())

    # -- reads (also used outside the log, by the Store) ---------------------------------

    def range(self, req: Request) -> Result:
        revision = int(req.get("revision") or 0)
        if revision > self.revision:
            return errors.FUTURE_REV
        if revision and revision < self.compact_revision:
            return errors.COMPACTED
        key = req.get("key") or b""
        if not key:
            return errors.KEY_NOT_PROVIDED
        kvs = self.index.range(key, req.get("range_end") or b"", revision or None)
        count = len(kvs)  # etcd counts before the min/max revision filters
        kvs = _filter(kvs, req)
        kvs = _sort(kvs, req)
        limit = int(req.get("limit") or 0)
        more = bool(limit) and count > limit
        if more:
            kvs = kvs[:limit]
        if req.get("count_only"):
            kvs = []
        elif req.get("keys_only"):
            kvs = [kv._replace(value=b"") for kv in kvs]
        return {"revision": self.revision, "kvs": kvs, "more": more, "count": count}

    def events_since(self, revision: int) -> list[Event] | KVError:
        """The history from `revision` on, for a watch; COMPACTED if part of it is gone."""
        if revision < self.compact_revision:
            return errors.COMPACTED
        i = bisect_left(self.history, revision, key=_event_revision)
        return self.history[i:]

    def lease_time_to_live(self, lease_id: int, remaining: Callable[[int, int], int], with_keys: bool) -> Result:
        """etcd's TimeToLive; `remaining(id, ttl)` is the seconds left on the asking master's clock."""
        lease = self.leases.get(lease_id)
        if lease is None:
            return {"revision": self.revision, "id": lease_id, "ttl": -1, "granted_ttl": 0, "keys": []}
        keys = sorted(lease.keys) if with_keys else []
        return {"revision": self.revision, "id": lease_id, "ttl": remaining(lease_id, lease.ttl),
                "granted_ttl": lease.ttl, "keys": keys}

    def lease_ids(self) -> list[int]:
        return sorted(self.leases.leases)

    def lease_refreshes(self, lease_ids: list[int]) -> list[list[int]]:
        """What a leader's `lease_expire` names: each live lease with its refresh count now (a list of pairs:
        msgpack maps take only string keys here)."""
        return [[i, self.leases.leases[i].refreshes] for i in lease_ids if i in self.leases.leases]

    # -- writes ---------------------------------------------------------------------------

    def _begin(self) -> _Write:
        return _Write(self.revision + 1)

    def _end(self, w: _Write) -> None:
        if w.events:
            self.revision = w.revision
            self.history.extend(w.events)

    def _put_request(self, req: Request, rid: Any) -> Result:
        err = self._check_put(req)
        if err:
            return err
        w = self._begin()
        res = self._put(w, req)
        self._end(w)
        res["revision"] = self.revision
        return res

    def _check_put(self, req: Request) -> KVError | None:
        key = req.get("key") or b""
        if not key:
            return errors.KEY_NOT_PROVIDED
        if req.get("ignore_value") and req.get("value"):
            return errors.VALUE_PROVIDED
        if req.get("ignore_lease") and req.get("lease"):
            return errors.LEASE_PROVIDED
        if (req.get("ignore_value") or req.get("ignore_lease")) and self.index.get(key) is None:
            return errors.KEY_NOT_FOUND
        lease = int(req.get("lease") or 0)
        if lease and self.leases.get(lease) is None:
            return errors.LEASE_NOT_FOUND
        return None

    def _put(self, w: _Write, req: Request) -> dict[str, Any]:
        key = req["key"]
        prev = self.index.get(key)
        value = prev.value if req.get("ignore_value") and prev else req.get("value") or b""
        lease = prev.lease if req.get("ignore_lease") and prev else int(req.get("lease") or 0)
        if prev is None:
            kv = KeyValue(key, value, w.revision, w.revision, 1, lease)
        else:
            kv = KeyValue(key, value, prev.create_revision, w.revision, prev.version + 1, lease)
            if prev.lease != lease:
                self.leases.detach(prev.lease, key)
        self.leases.attach(lease, key)
        self.index.put(kv)
        w.events.append(Event(PUT, kv, prev))
        return {"prev_kv": prev if req.get("prev_kv") else None}

    def _delete_request(self, req: Request, rid: Any) -> Result:
        if not req.get("key"):
            return errors.KEY_NOT_PROVIDED
        w = self._begin()
        res = self._delete(w, req)
        self._end(w)
        res["revision"] = self.revision
        return res

    def _delete(self, w: _Write, req: Request) -> dict[str, Any]:
        victims = self.index.range(req["key"], req.get("range_end") or b"")
        for prev in victims:
            self._delete_key(w, prev)
        return {"deleted": len(victims), "prev_kvs": victims if req.get("prev_kv") else []}

    def _delete_key(self, w: _Write, prev: KeyValue) -> None:
        tomb = tombstone(prev.key, w.revision)
        self.index.delete(tomb)
        self.leases.detach(prev.lease, prev.key)
        w.events.append(Event(DELETE, tomb, prev))

    # -- txn ------------------------------------------------------------------------------

    def _checked_path(self, req: Request) -> tuple[list[bool], Result | None]:
        """As etcd does: choose every branch (nested ones too) against the state before the txn, and check the
        chosen path; (the path, the error that refuses the txn or None). Nothing is changed if a check fails."""
        err = _check_txn(req)
        if err:
            return [], err
        path = self._choose_path(req)
        for sub in _path_requests(req, path):
            err = self._check_put(sub) if sub.get("op") == "put" else None
            if err:
                return path, err
        return path, None

    def _txn_request(self, req: Request, rid: Any) -> Result:
        path, err = self._checked_path(req)
        if err:
            return err
        w = self._begin()
        res = self._run_txn(w, req, iter(path))
        self._end(w)
        res["revision"] = self.revision
        return res

    def dry_txn(self, req: Request) -> Result:
        """What the txn would answer now, changing nothing: a dry run (Kubernetes' dryRun=All)."""
        path, err = self._checked_path(req)
        if err:
            return err
        return {**self._dry_run_txn(req, iter(path)), "revision": self.revision}

    def _dry_run_txn(self, req: Request, path: Any) -> dict[str, Any]:
        succeeded = next(path)
        responses = []
        for sub in req.get("success" if succeeded else "failure") or []:
            op = sub.get("op")
            if op == "put":
                prev = self.index.get(sub.get("key") or b"")
                out: Any = {"revision": self.revision, **({"prev_kv": prev} if sub.get("prev_kv") and prev else {})}
            elif op == "delete_range":
                found = self.range({"key": sub.get("key"), "range_end": sub.get("range_end")})
                out = {"revision": self.revision, "deleted": len(found["kvs"]),
                       "prev_kvs": found["kvs"] if sub.get("prev_kv") else []}
            elif op == "range":
                out = self.range({**sub, "revision": 0})
            else:
                out = self._dry_run_txn(sub, path)
            responses.append({"op": op, **out} if isinstance(out, dict) else {"op": op, "error": out})
        return {"succeeded": succeeded, "responses": responses}

    def _choose_path(self, req: Request) -> list[bool]:
        succeeded = all(self._compare(c) for c in req.get("compare") or [])
        path = [succeeded]
        for sub in req.get("success" if succeeded else "failure") or []:
            if sub.get("op") == "txn":
                path.extend(self._choose_path(sub))
        return path

    def _run_txn(self, w: _Write, req: Request, path: Any) -> dict[str, Any]:
        succeeded = next(path)
        responses = []
        for sub in req.get("success" if succeeded else "failure") or []:
            op = sub.get("op")
            if op == "put":
                out = self._put(w, sub)
            elif op == "delete_range":
                out = self._delete(w, sub)
            elif op == "range":
                out = self.range({**sub, "revision": 0})
            else:  # "txn", validated by _check_txn
                out = self._run_txn(w, sub, path)
            responses.append({"op": op, **out} if isinstance(out, dict) else {"op": op, "error": out})
        return {"succeeded": succeeded, "responses": responses}

    def _compare(self, c: Request) -> bool:
        key = c.get("key") or b""
        range_end = c.get("range_end") or b""
        kvs = self.index.range(key, range_end) if range_end else [self.index.get(key)]
        target = c.get("target", "VERSION")
        if kvs == [None] or not kvs:
            if target == "VALUE":
                return False  # etcd: comparing the value of a missing key always fails
            kvs = [KeyValue(key, b"", 0, 0, 0, 0)]
        return all(_compare_kv(kv, c, target) for kv in kvs)

    def _noop(self, req: Request, rid: Any) -> Result:
        """A no-op: its only effect is its place in the log. Logs written before ReadIndex hold them: each
        linearizable read batch was one."""
        return {"revision": self.revision}

    def _member_announce(self, req: Request, rid: Any) -> Result:
        """A master says who it is (name, raft address, client URLs); not a key, no revision."""
        info = req.get("member")
        if not isinstance(info, dict) or not isinstance(info.get("raft"), str):
            return errors.invalid("member_announce needs a member with a raft address")
        self.members[info["raft"]] = dict(info)
        return {"revision": self.revision}

    # -- compaction -----------------------------------------------------------------------

    def _compact(self, req: Request, rid: Any) -> Result:
        revision = int(req.get("revision") or 0)
        if revision <= self.compact_revision:
            return errors.COMPACTED
        if revision > self.revision:
            return errors.FUTURE_REV
        self.index.compact(revision)
        cut = bisect_left(self.history, revision, key=_event_revision)
        del self.history[:cut]
        self.compact_revision = revision
        return {"revision": self.revision}

    # -- leases ---------------------------------------------------------------------------

    def _lease_grant(self, req: Request, rid: Any) -> Result:
        ttl = int(req.get("ttl") or 0)
        lease_id = int(req.get("id") or 0)
        if ttl <= 0:
            return errors.invalid("etcdserver: lease TTL must be positive")
        if lease_id < 0:
            return errors.invalid("etcdserver: lease ID must be positive")
        if lease_id and self.leases.get(lease_id) is not None:
            return errors.LEASE_EXISTS
        if not lease_id:
            lease_id = self.leases.pick_id(hash_request_id(rid))
        lease = self.leases.grant(lease_id, max(ttl, MIN_LEASE_TTL))
        return {"revision": self.revision, "id": lease.id, "ttl": lease.ttl, "lease_refreshed": True}

    def _lease_revoke(self, req: Request, rid: Any) -> Result:
        lease_id = int(req.get("id") or 0)
        if self.leases.get(lease_id) is None:
            return errors.LEASE_NOT_FOUND
        self._revoke(lease_id)
        return {"revision": self.revision}

    def _revoke(self, lease_id: int) -> None:
        lease = self.leases.remove(lease_id)
        w = self._begin()
        for key in sorted(lease.keys):
            prev = self.index.get(key)
            if prev is not None:
                self._delete_key(w, prev)
        self._end(w)

    def _lease_keepalive(self, req: Request, rid: Any) -> Result:
        lease = self.leases.get(int(req.get("id") or 0))
        if lease is None:
            return errors.LEASE_NOT_FOUND
        lease.refreshes += 1
        return {"revision": self.revision, "id": lease.id, "ttl": lease.ttl, "lease_refreshed": True}

    def _lease_expire(self, req: Request, rid: Any) -> Result:
        """Revoke the leases the leader found expired, [[id, refreshes it saw], ...], unless a keepalive was
        applied since (kvstore/lessor.py); each revoke is one revision."""
        seen = req.get("leases")
        if not isinstance(seen, list) or not all(isinstance(p, list) and len(p) == 2 for p in seen):
            return errors.invalid("etcdserver: lease_expire needs [[lease id, refreshes], ...]")
        expired = []
        for lease_id, refreshes in seen:
            lease = self.leases.get(lease_id)
            if lease is not None and lease.refreshes == refreshes:
                self._revoke(lease_id)
                expired.append(lease_id)
        return {"revision": self.revision, "expired": expired}


_OPS = {"put": "_put_request", "delete_range": "_delete_request", "txn": "_txn_request",
        "compact": "_compact", "lease_grant": "_lease_grant", "lease_revoke": "_lease_revoke",
        "lease_keepalive": "_lease_keepalive", "lease_expire": "_lease_expire",
        "noop": "_noop", "member_announce": "_member_announce"}

# -- pure helpers --------------------------------------------------------------------------

_TARGET_FIELD = {"VALUE": "value", "VERSION": "version", "CREATE": "create_revision",
                 "MOD": "mod_revision", "LEASE": "lease"}


def _compare_kv(kv: KeyValue, c: Request, target: str) -> bool:
    field = _TARGET_FIELD.get(target, "value")
    have = getattr(kv, field)
    want = c.get(field)
    want = (want or b"") if field == "value" else int(want or 0)
    result = c.get("result", "EQUAL")
    if result == "EQUAL":
        return have == want
    if result == "NOT_EQUAL":
        return have != want
    if result == "LESS":
        return have < want
    if result == "GREATER":
        return have > want
    return False


def _check_txn(req: Request, depth: int = 0) -> KVError | None:
    """etcd's request checks: op count, known ops, and no key written twice in one branch."""
    compares = req.get("compare") or []
    for branch in ("success", "failure"):
        ops = req.get(branch) or []
        if len(ops) > MAX_TXN_OPS or len(compares) > MAX_TXN_OPS:
            return errors.TOO_MANY_OPS
        for sub in ops:
            if not isinstance(sub, dict) or sub.get("op") not in ("put", "delete_range", "range", "txn"):
                return errors.invalid("etcdserver: unknown operation in txn request")
            if not sub.get("key") and sub.get("op") != "txn":
                return errors.KEY_NOT_PROVIDED
            if sub["op"] == "txn":
                err = _check_txn(sub, depth + 1)
                if err:
                    return err
        puts = _branch_puts(ops)
        if puts is None:
            return errors.DUPLICATE_KEY
        for sub in ops:
            if sub["op"] == "delete_range" and any(_in_range(k, sub) for k in puts):
                return errors.DUPLICATE_KEY
    return None


def _branch_puts(ops: list[Request]) -> set[bytes] | None:
    """The keys a branch may put (both arms of a nested txn); None when one repeats."""
    seen: set[bytes] = set()
    for sub in ops:
        if sub["op"] == "put":
            keys = {sub["key"]}
        elif sub["op"] == "txn":
            keys = set()
            for arm in ("success", "failure"):
                arm_keys = _branch_puts(sub.get(arm) or [])
                if arm_keys is None:
                    return None
                keys |= arm_keys
        else:
            continue
        if seen & keys:
            return None
        seen |= keys
    return seen


def _in_range(key: bytes, req: Request) -> bool:
    start, end = req["key"], req.get("range_end") or b""
    if not end:
        return key == start
    if end == b"\0":
        return key >= start
    return start <= key < end


def _path_requests(req: Request, path: list[bool]) -> list[Request]:
    """Every put, delete and range the chosen path will run, in order."""
    out: list[Request] = []
    it = iter(path)

    def walk(t: Request) -> None:
        for sub in t.get("success" if next(it) else "failure") or []:
            if sub.get("op") == "txn":
                walk(sub)
            else:
                out.append(sub)

    walk(req)
    return out


def _filter(kvs: list[KeyValue], req: Request) -> list[KeyValue]:
    bounds = [("min_mod_revision", "mod_revision", 1), ("max_mod_revision", "mod_revision", -1),
              ("min_create_revision", "create_revision", 1), ("max_create_revision", "create_revision", -1)]
    for name, field, sign in bounds:
        limit = int(req.get(name) or 0)
        if limit:
            kvs = [kv for kv in kvs if (getattr(kv, field) - limit) * sign >= 0]
    return kvs


def _sort(kvs: list[KeyValue], req: Request) -> list[KeyValue]:
    order = req.get("sort_order") or "NONE"
    target = req.get("sort_target") or "KEY"
    if order == "NONE" or (order == "ASCEND" and target == "KEY"):
        return kvs  # already sorted by key
    field = {"KEY": "key", "VERSION": "version", "CREATE": "create_revision",
             "MOD": "mod_revision", "VALUE": "value"}.get(target, "key")
    return sorted(kvs, key=lambda kv: getattr(kv, field), reverse=order == "DESCEND")


def _event_revision(ev: Event) -> int:
    return ev.kv.mod_revision


def hash_request_id(rid: Any) -> int:
    """A deterministic integer from a request id (ints are used as they are)."""
    if isinstance(rid, int):
        return rid
    if isinstance(rid, (list, tuple)):
        h = 0
        for part in rid:
            h = (h * 1_000_003 + hash_request_id(part)) & ((1 << 64) - 1)
        return h
    if isinstance(rid, bytes):
        h = 0
        for i in range(0, len(rid), 8):
            h = (h * 0x9E3779B97F4A7C15 ^ int.from_bytes(rid[i:i + 8], "big")) & ((1 << 64) - 1)
        return h
    return 1
