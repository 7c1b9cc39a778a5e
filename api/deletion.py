"""What a DELETE does: remove now, or mark the object and let its owners finish (Kubernetes' rules).

- an object with finalizers is marked (deletionTimestamp) and goes when the last finalizer is removed;
- a pod bound to a node is marked with its grace period; its kubelet stops it and deletes it again
  with grace 0;
- a namespace is marked Terminating; the namespace controller empties it and finalizes it;
- anything else is removed at once.
"""
from __future__ import annotations

import datetime
from typing import Any

from api import errors
from api.registry import Resource

Obj = dict[str, Any]


def options(body: Any, query: Any) -> Obj:
    opts = dict(body) if isinstance(body, dict) else {}
    if "gracePeriodSeconds" in query:
        try:
            opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        except ValueError:
            raise errors.bad_request(f"invalid gracePeriodSeconds {query['gracePeriodSeconds']!r}") from None
    grace = opts.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        raise errors.bad_request(f"gracePeriodSeconds must be a non-negative integer, not {grace!r}")
    return opts


def check_preconditions(res: Resource, obj: Obj, opts: Obj) -> None:
    pre = opts.get("preconditions") or {}
    meta = obj["metadata"]
    for field in ("uid", "resourceVersion"):
        if pre.get(field) and pre[field] != meta.get(field):
            raise errors.ApiError(409, f'Precondition failed: {field} in precondition: {pre[field]}, {field} in '
                                       f'object meta: {meta.get(field)}', details={"name": meta["name"], "kind": res.plural})


def _at(seconds_from_now: int) -> str:
    then = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds_from_now)
    return then.strftime("%Y-%m-%dT%H:%M:%SZ")


def plan(res: Resource, obj: Obj, opts: Obj) -> Obj | None:
    """None: remove the object now. Otherwise the marked object to store instead."""
    meta = obj["metadata"]
    grace = opts.get("gracePeriodSeconds")
    if res.kind == "Pod" and (obj.get("spec") or {}).get("nodeName") and not meta.get("finalizers"):
        if grace is None:
            grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        if grace == 0:
            return None  # the kubelet's confirmation, or a forced delete
        if meta.get("deletionTimestamp"):
            return obj  # already on its way out
        return {**obj, "metadata": {**meta, "deletionTimestamp": _at(grace), "deletionGracePeriodSeconds": grace}}
    if res.kind == "Namespace":
        if meta.get("deletionTimestamp"):
            return obj
        return {**obj, "metadata": {**meta, "deletionTimestamp": _at(0), "deletionGracePeriodSeconds": 0},
                "status": {**(obj.get("status") or {}), "phase": "Terminating"}}
    if meta.get("finalizers"):
        if meta.get("deletionTimestamp"):
            return obj
        return {**obj, "metadata": {**meta, "deletionTimestamp": _at(0), "deletionGracePeriodSeconds": 0}}
    return None


def finished(res: Resource, obj: Obj) -> bool:
    """A marked object whose last finalizer is gone can be removed."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers") or meta.get("deletionGracePeriodSeconds"):
        return False
    return not (res.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"))


def terminating(namespace: Obj) -> bool:
    return bool(namespace["metadata"].get("deletionTimestamp"))
