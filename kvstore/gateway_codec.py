"""etcd v3 JSON (grpc-gateway) <-> the store's request and result dicts.

etcd's gateway speaks protobuf's JSON mapping: bytes as base64, 64-bit integers as strings,
enums by name (numbers accepted), and fields at their default value left out. Everything that
comes in is checked here, so the store only ever sees well-formed requests; anything else is a
`BadRequest` (HTTP 400, gRPC InvalidArgument) and changes nothing.
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from typing import Any

from kvstore.errors import BadRequest
from kvstore.etcd_service import Header, Member
from kvstore.kv import DELETE, Event, KeyValue
from kvstore.watch_session import Reply


# -- decoding: JSON -> request dict ----------------------------------------------------------

def _obj(body: Any, what: str) -> dict:
    if not isinstance(body, dict):
        raise BadRequest(f"{what} must be a JSON object")
    return body


def b64(body: dict, name: str) -> bytes:
    value = body.get(name)
    if value is None or value == "":
        return b""
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a base64 string")
    try:  # standard alphabet, padding required, as Go's encoding/base64 reads it
        return base64.b64decode(value.replace("\n", "").replace("\r", ""), validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"illegal base64 data in {name}: {value[:40]!r}") from None


def int64(body: dict, name: str) -> int:
    value = body.get(name, 0)
    if isinstance(value, bool) or value is None:
        raise BadRequest(f"{name} must be an integer")
    if isinstance(value, int):
        number = value
    elif isinstance(value, str):
        try:
            number = int(value) if value else 0
        except ValueError:
            raise BadRequest(f"{name} must be an integer, got {value[:40]!r}") from None
    else:
        raise BadRequest(f"{name} must be an integer")
    if not -(1 << 63) <= number < (1 << 64):
        raise BadRequest(f"{name} is out of range")
    return number


def flag(body: dict, name: str) -> bool:
    value = body.get(name, False)
    if not isinstance(value, bool):
        raise BadRequest(f"{name} must be true or false")
    return value


def enum(body: dict, name: str, names: list[str]) -> str:
    value = body.get(name, names[0])
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value < len(names):
        return names[value]
    if isinstance(value, str) and value in names:
        return value
    raise BadRequest(f"{name} must be one of {', '.join(names)}")


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), name)


def _known(body: dict, fields: set[str], what: str) -> dict:
    """Accept protobuf's camelCase names too; ignore unknown fields, as etcd's gateway does."""
    out = {}
    for name, value in body.items():
        if name not in fields and _snake(name) in fields:
            name = _snake(name)
        out[name] = value
    return out


RANGE_FIELDS = {"key", "range_end", "limit", "revision", "sort_order", "sort_target", "serializable",
                "keys_only", "count_only", "min_mod_revision", "max_mod_revision",
                "min_create_revision", "max_create_revision"}


def range_request(body: Any) -> tuple[dict, bool]:
    body = _obj(body, "range request")
    body = _known(body, RANGE_FIELDS, "range request")
    req = {"op": "range", "key": b64(body, "key"), "range_end": b64(body, "range_end"),
           "sort_order": enum(body, "sort_order", ["NONE", "ASCEND", "DESCEND"]),
           "sort_target": enum(body, "sort_target", ["KEY", "VERSION", "CREATE", "MOD", "VALUE"])}
    for name in ("limit", "revision", "min_mod_revision", "max_mod_revision",
                 "min_create_revision", "max_create_revision"):
        req[name] = int64(body, name)
    for name in ("keys_only", "count_only"):
        req[name] = flag(body, name)
    return req, flag(body, "serializable")


def put_request(body: Any) -> dict:
    body = _obj(body, "put request")
    body = _known(body, {"key", "value", "lease", "prev_kv", "ignore_value", "ignore_lease"}, "put request")
    return {"op": "put", "key": b64(body, "key"), "value": b64(body, "value"), "lease": int64(body, "lease"),
            "prev_kv": flag(body, "prev_kv"), "ignore_value": flag(body, "ignore_value"),
            "ignore_lease": flag(body, "ignore_lease")}


def delete_request(body: Any) -> dict:
    body = _obj(body, "delete range request")
    body = _known(body, {"key", "range_end", "prev_kv"}, "delete range request")
    return {"op": "delete_range", "key": b64(body, "key"), "range_end": b64(body, "range_end"),
            "prev_kv": flag(body, "prev_kv")}


COMPARE_RESULTS = ["EQUAL", "GREATER", "LESS", "NOT_EQUAL"]
COMPARE_TARGETS = ["VERSION", "CREATE", "MOD", "VALUE", "LEASE"]


def _compare(body: Any) -> dict:
    body = _obj(body, "compare")
    body = _known(body, {"result", "target", "key", "range_end", "version", "create_revision", "mod_revision",
                  "value", "lease"}, "compare")
    return {"key": b64(body, "key"), "range_end": b64(body, "range_end"),
            "result": enum(body, "result", COMPARE_RESULTS), "target": enum(body, "target", COMPARE_TARGETS),
            "version": int64(body, "version"), "create_revision": int64(body, "create_revision"),
            "mod_revision": int64(body, "mod_revision"), "value": b64(body, "value"), "lease": int64(body, "lease")}


def _request_op(body: Any, depth: int) -> dict:
    body = _obj(body, "request op")
    if not body:
        raise BadRequest("a request op needs one of request_range, request_put, "
                         "request_delete_range, request_txn")
    kind, inner = next(iter(body.items()))
    kind = _snake(kind)
    if kind == "request_range":
        return range_request(inner)[0]
    if kind == "request_put":
        return put_request(inner)
    if kind == "request_delete_range":
        return delete_request(inner)
    if kind == "request_txn":
        return txn_request(inner, depth + 1)
    raise BadRequest(f"unknown request op {kind!r}")


def _ops(body: dict, name: str, depth: int) -> list[dict]:
    ops = body.get(name) or []
    if not isinstance(ops, list):
        raise BadRequest(f"{name} must be a list")
    return [_request_op(op, depth) for op in ops]


def txn_request(body: Any, depth: int = 0) -> dict:
    if depth > 32:
        raise BadRequest("txn nested too deeply")
    body = _obj(body, "txn request")
    body = _known(body, {"compare", "success", "failure"}, "txn request")
    compares = body.get("compare") or []
    if not isinstance(compares, list):
        raise BadRequest("compare must be a list")
    return {"op": "txn", "compare": [_compare(c) for c in compares],
            "success": _ops(body, "success", depth), "failure": _ops(body, "failure", depth)}


def compaction_request(body: Any) -> dict:
    body = _obj(body, "compaction request")
    body = _known(body, {"revision", "physical"}, "compaction request")
    flag(body, "physical")
    return {"op": "compact", "revision": int64(body, "revision")}


def lease_id(body: Any, what: str) -> int:
    body = _obj(body, what)
    body = _known(body, {"ID"}, what)
    return int64(body, "ID")


def timetolive_request(body: Any) -> tuple[int, bool]:
    body = _known(_obj(body, "lease time-to-live request"), {"ID", "keys"}, "lease time-to-live request")
    return int64(body, "ID"), flag(body, "keys")


def json_stream(raw: bytes) -> list[Any]:
    """The JSON objects of a streaming request body (etcd reads as many as the body holds)."""
    try:
        text = raw.decode("utf-8", errors="strict")
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    decoder = json.JSONDecoder()
    out, pos = [], 0
    while True:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if pos == len(text):
            return out
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except (ValueError, RecursionError) as exc:
            detail = "nested too deep" if isinstance(exc, RecursionError) else exc
            raise BadRequest(f"request body is not valid JSON: {detail}") from None
        out.append(obj)


def lease_grant_request(body: Any) -> dict:
    body = _obj(body, "lease grant request")
    body = _known(body, {"TTL", "ID"}, "lease grant request")
    return {"op": "lease_grant", "ttl": int64(body, "TTL"), "id": int64(body, "ID")}


WATCH_CREATE_FIELDS = {"key", "range_end", "start_revision", "progress_notify", "filters", "prev_kv",
                       "watch_id", "fragment"}


def watch_create_request(create: Any) -> dict:
    create = _obj(create, "create_request")
    create = _known(create, WATCH_CREATE_FIELDS, "create_request")
    filters = create.get("filters") or []
    if not isinstance(filters, list):
        raise BadRequest("filters must be a list")
    return {"key": b64(create, "key"), "range_end": b64(create, "range_end"),
            "start_revision": int64(create, "start_revision"),
            "progress_notify": flag(create, "progress_notify"), "prev_kv": flag(create, "prev_kv"),
            "filters": frozenset(enum({"f": f}, "f", ["NOPUT", "NODELETE"]) for f in filters),
            "watch_id": int64(create, "watch_id")}


# -- encoding: result dict -> JSON ------------------------------------------------------------

def enc_bytes(data: bytes) -> str:
    return base64.b64encode(data).decode()


def enc_kv(kv: KeyValue) -> dict:
    out: dict[str, Any] = {"key": enc_bytes(kv.key)}
    if kv.create_revision:
        out["create_revision"] = str(kv.create_revision)
    if kv.mod_revision:
        out["mod_revision"] = str(kv.mod_revision)
    if kv.version:
        out["version"] = str(kv.version)
    if kv.value:
        out["value"] = enc_bytes(kv.value)
    if kv.lease:
        out["lease"] = str(kv.lease)
    return out


def enc_event(ev: Event, with_prev: bool) -> dict:
    out: dict[str, Any] = {"kv": enc_kv(ev.kv)}
    if ev.type == DELETE:
        out = {"type": "DELETE", **out}
    if with_prev and ev.prev_kv is not None:
        out["prev_kv"] = enc_kv(ev.prev_kv)
    return out


def _with_header(header: dict, fields: dict) -> dict:
    return {"header": header, **{k: v for k, v in fields.items() if v not in (None, False, [], "0", "")}}


def lease_response(res: dict, header: dict) -> dict:
    return _with_header(header, {"ID": str(res["id"]), "TTL": str(res.get("ttl", 0))})


def range_response(res: dict, header: dict, encoded_kvs: list[dict] | None = None) -> dict:
    kvs = encoded_kvs if encoded_kvs is not None else [enc_kv(kv) for kv in res["kvs"]]
    return _with_header(header, {"kvs": kvs, "more": res["more"], "count": str(res["count"])})


def put_response(res: dict, header: dict) -> dict:
    return _with_header(header, {"prev_kv": enc_kv(res["prev_kv"]) if res.get("prev_kv") else None})


def delete_response(res: dict, header: dict) -> dict:
    return _with_header(header, {"deleted": str(res["deleted"]),
                                 "prev_kvs": [enc_kv(kv) for kv in res.get("prev_kvs") or []]})


_RESPONSE_NAMES = {"range": "response_range", "put": "response_put", "delete_range": "response_delete_range",
                   "txn": "response_txn"}
_ENCODERS = {"range": range_response, "put": put_response, "delete_range": delete_response}


def txn_response(res: dict, header: dict, revision: str | None = None) -> dict:
    """Sub-responses carry only a revision (a range's own, a write's the txn's); a nested txn none."""
    revision = revision or header["revision"]
    responses = []
    for r in res["responses"]:
        op = r["op"]
        if op == "txn":
            responses.append({"response_txn": txn_response(r, {}, revision)})
        else:
            sub_header = {"revision": str(r.get("revision", revision))}
            responses.append({_RESPONSE_NAMES[op]: _ENCODERS[op](r, sub_header)})
    return _with_header(header, {"succeeded": res["succeeded"], "responses": responses})


def header(h: Header) -> dict:
    out = {"cluster_id": str(h.cluster_id), "member_id": str(h.member_id), "revision": str(h.revision),
           "raft_term": str(h.raft_term)}
    if not h.revision:
        del out["revision"]
    return out


def member(m: Member) -> dict:
    out = {"ID": str(m.id), "name": m.name, "peerURLs": m.peer_urls, "clientURLs": m.client_urls}
    return {k: v for k, v in out.items() if v}


def status_response(st: dict, header: dict) -> dict:
    out = {"header": header, "version": st["version"], "dbSize": str(st["db_size"]),
           "dbSizeInUse": str(st["db_size"]), "leader": str(st["leader"]), "raftIndex": str(st["raft_index"]),
           "raftTerm": str(st["raft_term"]), "raftAppliedIndex": str(st["raft_applied_index"])}
    return {k: v for k, v in out.items() if v != "0"}


def watch_response(reply: Reply, header: dict) -> dict:
    """Fields in etcd's order (header, watch_id, created, canceled, compact_revision, cancel_reason, fragment,
    events), default values left out, as etcd's gateway writes them."""
    out: dict[str, Any] = {"header": header}
    if reply.watch_id:
        out["watch_id"] = str(reply.watch_id)
    fields = {"created": reply.created, "canceled": reply.canceled,
              "compact_revision": str(reply.compact_revision) if reply.compact_revision else None,
              "cancel_reason": reply.cancel_reason, "fragment": reply.fragment,
              "events": [enc_event(e, reply.prev_kv) for e in reply.events]}
    out.update((k, v) for k, v in fields.items() if v not in (None, False, "", []))
    return out


def member_id(body: Any, what: str) -> int:
    """A member's ID (uint64) from {"ID": "..."}."""
    body = _known(_obj(body, f"{what} request"), {"ID"}, what)
    value = int64(body, "ID")
    if value < 0:
        raise BadRequest("ID must be a member ID from member list")
    return value
