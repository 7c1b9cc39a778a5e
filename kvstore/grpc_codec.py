"""etcd's protobuf messages <-> the store's request and result dicts: gateway_codec.py's twin for gRPC.

Protobuf already checks types and sizes; what is left to check here is what proto3 lets through: an enum
value outside the known names (proto3 keeps unknown numbers) and nesting deeper than anyone needs. Anything
wrong is a `BadRequest` (gRPC InvalidArgument) and changes nothing.
"""
from __future__ import annotations

from typing import Any

from kvstore.errors import BadRequest
from kvstore.etcd_service import Header, Member
from kvstore.etcdpb import message
from kvstore.kv import Event, KeyValue
from kvstore.watch_session import Reply

ResponseHeader = message("etcdserverpb.ResponseHeader")
PbKeyValue = message("mvccpb.KeyValue")
PbEvent = message("mvccpb.Event")
RangeRequest = message("etcdserverpb.RangeRequest")
RangeResponse = message("etcdserverpb.RangeResponse")
PutResponse = message("etcdserverpb.PutResponse")
DeleteRangeResponse = message("etcdserverpb.DeleteRangeResponse")
TxnResponse = message("etcdserverpb.TxnResponse")
ResponseOp = message("etcdserverpb.ResponseOp")
Compare = message("etcdserverpb.Compare")
WatchCreateRequest = message("etcdserverpb.WatchCreateRequest")
WatchResponse = message("etcdserverpb.WatchResponse")
PbMember = message("etcdserverpb.Member")
StatusResponse = message("etcdserverpb.StatusResponse")

MAX_TXN_DEPTH = 32


def _enum(enum: Any, value: int, field: str) -> str:
    try:
        return enum.Name(value)
    except ValueError:
        raise BadRequest(f"{field} {value} is not one of {', '.join(enum.keys())}") from None


# -- requests -------------------------------------------------------------------------------

def range_request(r: Any) -> tuple[dict, bool]:
    req = {"op": "range", "key": r.key, "range_end": r.range_end, "limit": r.limit, "revision": r.revision,
           "sort_order": _enum(RangeRequest.SortOrder, r.sort_order, "sort_order"),
           "sort_target": _enum(RangeRequest.SortTarget, r.sort_target, "sort_target"),
           "keys_only": r.keys_only, "count_only": r.count_only,
           "min_mod_revision": r.min_mod_revision, "max_mod_revision": r.max_mod_revision,
           "min_create_revision": r.min_create_revision, "max_create_revision": r.max_create_revision}
    return req, r.serializable


def put_request(r: Any) -> dict:
    return {"op": "put", "key": r.key, "value": r.value, "lease": r.lease, "prev_kv": r.prev_kv,
            "ignore_value": r.ignore_value, "ignore_lease": r.ignore_lease}


def delete_request(r: Any) -> dict:
    return {"op": "delete_range", "key": r.key, "range_end": r.range_end, "prev_kv": r.prev_kv}


def _compare(c: Any) -> dict:
    return {"key": c.key, "range_end": c.range_end, "result": _enum(Compare.CompareResult, c.result, "result"),
            "target": _enum(Compare.CompareTarget, c.target, "target"), "version": c.version,
            "create_revision": c.create_revision, "mod_revision": c.mod_revision, "value": c.value,
            "lease": c.lease}


def _request_op(op: Any, depth: int) -> dict:
    kind = op.WhichOneof("request")
    if kind == "request_range":
        return range_request(op.request_range)[0]
    if kind == "request_put":
        return put_request(op.request_put)
    if kind == "request_delete_range":
        return delete_request(op.request_delete_range)
    if kind == "request_txn":
        return txn_request(op.request_txn, depth + 1)
    raise BadRequest("a request op needs one of request_range, request_put, request_delete_range, request_txn")


def txn_request(r: Any, depth: int = 0) -> dict:
    if depth > MAX_TXN_DEPTH:
        raise BadRequest("txn nested too deeply")
    return {"op": "txn", "compare": [_compare(c) for c in r.compare],
            "success": [_request_op(op, depth) for op in r.success],
            "failure": [_request_op(op, depth) for op in r.failure]}


def watch_create_request(c: Any) -> dict:
    return {"key": c.key, "range_end": c.range_end, "start_revision": c.start_revision,
            "progress_notify": c.progress_notify, "prev_kv": c.prev_kv, "watch_id": c.watch_id,
            "fragment": c.fragment,
            "filters": frozenset(_enum(WatchCreateRequest.FilterType, f, "filter") for f in c.filters)}


# -- responses ------------------------------------------------------------------------------

def header(h: Header) -> Any:
    return ResponseHeader(cluster_id=h.cluster_id, member_id=h.member_id, revision=h.revision,
                          raft_term=h.raft_term)


def kv(k: KeyValue) -> Any:
    return PbKeyValue(key=k.key, value=k.value, create_revision=k.create_revision, mod_revision=k.mod_revision,
                      version=k.version, lease=k.lease)


def event(ev: Event, with_prev: bool) -> Any:
    out = PbEvent(type=ev.type, kv=kv(ev.kv))
    if with_prev and ev.prev_kv is not None:
        out.prev_kv.CopyFrom(kv(ev.prev_kv))
    return out


def range_response(res: dict, head: Any, kvs: list | None = None) -> Any:
    return RangeResponse(header=head, kvs=kvs if kvs is not None else [kv(k) for k in res["kvs"]],
                         more=res["more"], count=res["count"])


def put_response(res: dict, head: Any) -> Any:
    out = PutResponse(header=head)
    if res.get("prev_kv"):
        out.prev_kv.CopyFrom(kv(res["prev_kv"]))
    return out


def delete_response(res: dict, head: Any) -> Any:
    return DeleteRangeResponse(header=head, deleted=res["deleted"], prev_kvs=[kv(k) for k in res.get("prev_kvs") or []])


def txn_response(res: dict, head: Any, revision: int | None = None) -> Any:
    """Sub-responses carry only a revision (a range's own, a write's the txn's), as etcd's do."""
    revision = head.revision if revision is None else revision
    responses = []
    for r in res["responses"]:
        op = r["op"]
        sub = ResponseHeader(revision=r.get("revision", revision))
        if op == "range":
            responses.append(ResponseOp(response_range=range_response(r, sub)))
        elif op == "put":
            responses.append(ResponseOp(response_put=put_response(r, sub)))
        elif op == "delete_range":
            responses.append(ResponseOp(response_delete_range=delete_response(r, sub)))
        else:
            responses.append(ResponseOp(response_txn=txn_response(r, ResponseHeader(), revision)))
    return TxnResponse(header=head, succeeded=res["succeeded"], responses=responses)


def watch_response(reply: Reply, head: Any) -> Any:
    return WatchResponse(header=head, watch_id=reply.watch_id, created=reply.created, canceled=reply.canceled,
                         compact_revision=reply.compact_revision, cancel_reason=reply.cancel_reason,
                         fragment=reply.fragment, events=[event(e, reply.prev_kv) for e in reply.events])


def member(m: Member) -> Any:
    return PbMember(ID=m.id, name=m.name, peerURLs=m.peer_urls, clientURLs=m.client_urls)


def status_response(st: dict, head: Any) -> Any:
    return StatusResponse(header=head, version=st["version"], dbSize=st["db_size"], dbSizeInUse=st["db_size"],
                          leader=st["leader"], raftIndex=st["raft_index"], raftTerm=st["raft_term"],
                          raftAppliedIndex=st["raft_applied_index"])
