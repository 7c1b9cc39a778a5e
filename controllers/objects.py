"""Small facts about objects every controller needs: owners, pod readiness and liveness, pods from templates."""
from __future__ import annotations

import copy
import datetime
import hashlib
import json
import time
from typing import Any, Callable, Iterable

from api.selectors import selector_matches

Obj = dict[str, Any]


def now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> float | None:
    """Seconds since the epoch of an RFC 3339 timestamp ("...Z", optionally with fractions), or None."""
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def controller_ref(owner: Obj) -> Obj:
    """The ownerReference a controller puts on what it creates (controller, blockOwnerDeletion)."""
    return {"apiVersion": owner.get("apiVersion", ""), "kind": owner["kind"], "name": owner["metadata"]["name"],
            "uid": owner["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}


def controller_of(obj: Obj) -> Obj | None:
    return next((r for r in obj["metadata"].get("ownerReferences") or [] if r.get("controller")), None)


def controller_key(obj: Obj | None, kind: str) -> str | None:
    """The workqueue key ("namespace/name") of the `kind` controller of a namespaced object, if it has one."""
    ref = controller_of(obj) if obj is not None else None
    return f"{obj['metadata'].get('namespace')}/{ref['name']}" if ref and ref.get("kind") == kind else None


def keys_to_wake(kind: str, owners: Iterable[Obj], old: Obj | None, new: Obj | None,
                 may_adopt: Callable[[Obj, Obj], bool] | None = None) -> set[str]:
    """The keys of the `kind` controllers an informer event concerns: the object's controller before and after,
    and, for an orphan, each of `owners` that selects it (and passes `may_adopt`), since it may adopt it."""
    keys = {k for k in (controller_key(old, kind), controller_key(new, kind)) if k}
    obj = new or old
    if obj is not None and controller_of(obj) is None:
        keys |= {f"{o['metadata'].get('namespace')}/{o['metadata']['name']}" for o in owners
                 if matches(o, obj) and (may_adopt is None or may_adopt(o, obj))}
    return keys


def owned_by(obj: Obj, owner: Obj) -> bool:
    ref = controller_of(obj)
    return ref is not None and ref.get("uid") == owner["metadata"].get("uid")


def matches(owner: Obj, obj: Obj) -> bool:
    """Does `owner.spec.selector` (a LabelSelector; a ReplicationController's plain map of labels) select `obj`?
    An empty or missing selector selects nothing."""
    selector = (owner.get("spec") or {}).get("selector") or {}
    if owner.get("kind") == "ReplicationController":
        selector = {"matchLabels": selector}
    if not selector.get("matchLabels") and not selector.get("matchExpressions"):
        return False
    return selector_matches(selector, obj["metadata"].get("labels") or {})


def is_deleting(obj: Obj) -> bool:
    return bool(obj["metadata"].get("deletionTimestamp"))


def is_terminal(pod: Obj) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def is_active(pod: Obj) -> bool:
    """Counts toward a controller's replicas: not finished and not on its way out."""
    return not is_terminal(pod) and not is_deleting(pod)


def condition(obj: Obj, type_: str) -> Obj | None:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c.get("type") == type_), None)


def is_ready(pod: Obj) -> bool:
    c = condition(pod, "Ready")
    return bool(c and c.get("status") == "True")


def is_available(pod: Obj, min_ready_seconds: int, at: float) -> bool:
    """Ready for at least minReadySeconds (by the Ready condition's lastTransitionTime)."""
    if not is_ready(pod):
        return False
    if min_ready_seconds <= 0:
        return True
    since = parse_time((condition(pod, "Ready") or {}).get("lastTransitionTime"))
    return since is not None and since + min_ready_seconds <= at


def set_condition(status: Obj, type_: str, value: str, reason: str = "", message: str = "") -> bool:
    """Set a condition in `status`, keeping lastTransitionTime when the status does not change. Changed?"""
    conditions = status.setdefault("conditions", [])
    old = next((c for c in conditions if c.get("type") == type_), None)
    new = {"type": type_, "status": value, "reason": reason, "message": message,
           "lastUpdateTime": now(), "lastTransitionTime": now()}
    if old is not None:
        if (old.get("status"), old.get("reason"), old.get("message")) == (value, reason, message):
            return False
        if old.get("status") == value:
            new["lastTransitionTime"] = old.get("lastTransitionTime", new["lastTransitionTime"])
        conditions[conditions.index(old)] = new
    else:
        conditions.append(new)
    return True


def template_hash(template: Obj, collisions: int = 0) -> str:
    """A short stable hash of a pod template (the pod-template-hash label and the ReplicaSet name suffix)."""
    text = json.dumps(template, sort_keys=True, separators=(",", ":")) + (f"/{collisions}" if collisions else "")
    digest = int(hashlib.sha256(text.encode()).hexdigest()[:12], 16)
    alphabet = "bcdfghjklmnpqrstvwxz2456789"  # as Kubernetes' SafeEncodeString: no vowels, no look-alikes
    out = ""
    while digest and len(out) < 10:
        digest, r = divmod(digest, len(alphabet))
        out += alphabet[r]
    return out or "0"


def pod_from_template(owner: Obj, template: Obj, *, name: str | None = None,
                      extra_labels: dict[str, str] | None = None) -> Obj:
    """A new Pod object from a pod template, owned by `owner`; generateName `<owner>-` unless `name` is given."""
    template = copy.deepcopy(template or {})
    meta = template.get("metadata") or {}
    labels = {**(meta.get("labels") or {}), **(extra_labels or {})}
    pod_meta: Obj = {"namespace": owner["metadata"]["namespace"], "labels": labels,
                     "ownerReferences": [controller_ref(owner)]}
    if meta.get("annotations"):
        pod_meta["annotations"] = meta["annotations"]
    if name:
        pod_meta["name"] = name
    else:
        pod_meta["generateName"] = f"{owner['metadata']['name']}-"
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": template.get("spec") or {}}


class Expectations:
    """What a controller created or deleted and its informer has not shown yet (client-go's ControllerExpectations).

    Caches lag behind a controller's own writes: a sync that ran before the informer saw the pods it just
    created would create them again. Record each write under the owner's key; `satisfied` checks the cache and
    says whether it has caught up. An expectation older than `ttl` is dropped (a lost watch event must not
    block an owner forever), as client-go's 5-minute expiry.
    """

    def __init__(self, ttl: float = 300.0) -> None:
        self.ttl = ttl
        self._adds: dict[str, dict[str, float]] = {}  # owner key -> object key -> when
        self._deletes: dict[str, dict[str, tuple[str, float]]] = {}  # owner key -> object key -> (uid, when)

    def expect_create(self, owner_key: str, obj_key: str) -> None:
        self._adds.setdefault(owner_key, {})[obj_key] = time.monotonic()

    def expect_delete(self, owner_key: str, obj_key: str, uid: str) -> None:
        self._deletes.setdefault(owner_key, {})[obj_key] = (uid, time.monotonic())

    def creation_observed(self, owner_key: str, obj_key: str) -> None:
        """The informer saw the object (call on its delete event: one deleted before a sync saw it is not
        waited for until the ttl)."""
        self._adds.get(owner_key, {}).pop(obj_key, None)

    def forget(self, owner_key: str) -> None:
        self._adds.pop(owner_key, None)
        self._deletes.pop(owner_key, None)

    def satisfied(self, owner_key: str, cache: dict[str, Obj]) -> bool:
        """Has `cache` (an informer's, by key) seen every create and delete made for the owner?"""
        expired = time.monotonic() - self.ttl
        adds = {k: t for k, t in self._adds.get(owner_key, {}).items() if t > expired and k not in cache}
        deletes = {k: (uid, t) for k, (uid, t) in self._deletes.get(owner_key, {}).items()
                   if t > expired and k in cache and cache[k]["metadata"].get("uid") == uid
                   and not is_deleting(cache[k])}
        self._adds[owner_key], self._deletes[owner_key] = adds, deletes
        if not adds and not deletes:
            self.forget(owner_key)
            return True
        return False


def scaled_value(value: int | str | None, total: int, *, round_up: bool, default: int = 0) -> int:
    """An IntOrString such as maxUnavailable or maxSurge: a number as is, "25%" of `total` rounded up or down
    (Kubernetes' intstr.GetScaledValueFromIntOrPercent)."""
    if value is None:
        return default
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    percent = int(text[:-1])
    whole, rest = divmod(percent * total, 100)
    return whole + (1 if round_up and rest else 0)
