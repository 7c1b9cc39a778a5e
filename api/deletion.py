"""What a DELETE does: remove now, or mark the object and let its owners finish (Kubernetes' rules).

- an object with finalizers is marked (deletionTimestamp) and goes when the last finalizer is removed;
- a pod bound to a node is marked with its grace period; its kubelet stops it and deletes it again
  with grace 0;
- a namespace is marked Terminating; the namespace controller empties it and finalizes it;
- propagationPolicy Foreground marks the object with the `foregroundDeletion` finalizer (the garbage collector
  deletes its dependents first, then removes the finalizer), Orphan with the `orphan` finalizer (the garbage
  collector removes the ownerReferences to it, then the finalizer); Background, the default, removes the object
  and leaves its dependents to the garbage collector;
- anything else is removed at once.
"""
from __future__ import annotations

import datetime
from typing import Any

from api import errors
from api.query import flag
from api.registry import Resource

Obj = dict[str, Any]

FOREGROUND = "foregroundDeletion"
ORPHAN = "orphan"
POLICIES = ("Background", "Foreground", "Orphan")
_FINALIZER = {"Foreground": FOREGROUND, "Orphan": ORPHAN}


def options(body: Any, query: Any) -> Obj:
    """DeleteOptions from the body, with gracePeriodSeconds, propagationPolicy and orphanDependents from the
    query string taking precedence (as kube-apiserver reads them)."""
    opts = dict(body) if isinstance(body, dict) else {}
    if "gracePeriodSeconds" in query:
        try:
            opts["gracePeriodSeconds"] = int(query["gracePeriodSeconds"])
        except ValueError:
            raise errors.bad_request(f"invalid gracePeriodSeconds {query['gracePeriodSeconds']!r}") from None
    grace = opts.get("gracePeriodSeconds")
    if grace is not None and (not isinstance(grace, int) or grace < 0):
        raise errors.bad_request(f"gracePeriodSeconds must be a non-negative integer, not {grace!r}")
    if "propagationPolicy" in query:
        opts["propagationPolicy"] = query["propagationPolicy"]
    if "orphanDependents" in query:
        opts["orphanDependents"] = flag(query, "orphanDependents")
    policy, orphan = opts.get("propagationPolicy"), opts.get("orphanDependents")
    if policy is not None and policy not in POLICIES:
        raise errors.bad_request(f'propagationPolicy: Unsupported value: "{policy}": supported values: '
                                 '"Background", "Foreground", "Orphan"')
    if policy is not None and orphan is not None:
        raise errors.bad_request("orphanDependents and propagationPolicy: Invalid value: both may not be set")
    return opts


def propagation(opts: Obj) -> str:
    """The propagation policy asked for: propagationPolicy, else the deprecated orphanDependents, else Background."""
    if opts.get("propagationPolicy"):
        return opts["propagationPolicy"]
    if opts.get("orphanDependents") is not None:
        return "Orphan" if opts["orphanDependents"] else "Background"
    return "Background"


def _finalizers(current: list[str], policy: str) -> list[str]:
    """The object's finalizers once the policy's is added (and the other garbage collector one removed)."""
    wanted = _FINALIZER.get(policy)
    if wanted is None:
        return current
    other = ORPHAN if wanted == FOREGROUND else FOREGROUND
    return [f for f in current if f != other] + ([] if wanted in current else [wanted])


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
    """None: remove the object now. `obj` itself: nothing to change. Otherwise the marked object to store."""
    meta = obj["metadata"]
    if res.kind == "Namespace":
        if meta.get("deletionTimestamp"):
            return obj
        return {**obj, "metadata": {**meta, "deletionTimestamp": _at(0), "deletionGracePeriodSeconds": 0},
                "status": {**(obj.get("status") or {}), "phase": "Terminating"}}
    finalizers = _finalizers(list(meta.get("finalizers") or []), propagation(opts))
    grace = opts.get("gracePeriodSeconds")
    if res.kind == "Pod" and (obj.get("spec") or {}).get("nodeName"):
        if grace is None:
            grace = (obj.get("spec") or {}).get("terminationGracePeriodSeconds", 30)
        if grace == 0 and not finalizers:
            return None  # the kubelet's confirmation, or a forced delete
    elif not finalizers:
        return None
    else:
        grace = 0
    if meta.get("deletionTimestamp"):  # already on its way out: a new finalizer or a shorter grace still counts
        changes: Obj = {}
        if finalizers != list(meta.get("finalizers") or []):
            changes["finalizers"] = finalizers
        if grace < (meta.get("deletionGracePeriodSeconds") or 0):
            changes.update(deletionTimestamp=_at(grace), deletionGracePeriodSeconds=grace)
        return {**obj, "metadata": {**meta, **changes}} if changes else obj
    marked = {**meta, "deletionTimestamp": _at(grace), "deletionGracePeriodSeconds": grace}
    if finalizers:
        marked["finalizers"] = finalizers
    return {**obj, "metadata": marked}


def finished(res: Resource, obj: Obj) -> bool:
    """A marked object whose last finalizer is gone can be removed."""
    meta = obj["metadata"]
    if not meta.get("deletionTimestamp") or meta.get("finalizers") or meta.get("deletionGracePeriodSeconds"):
        return False
    return not (res.kind == "Namespace" and (obj.get("spec") or {}).get("finalizers"))


def terminating(namespace: Obj) -> bool:
    return bool(namespace["metadata"].get("deletionTimestamp"))
