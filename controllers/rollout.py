"""The Deployment controller's arithmetic, as pure functions on dicts (Kubernetes' deployment/util and rolling.go).

A rolling update is two moves, made one per sync and each re-decided from the caches:

  1. scale the new ReplicaSet up, while the sum of every ReplicaSet's spec.replicas stays within
     replicas + maxSurge                                              (`new_rs_replicas`)
  2. scale old ReplicaSets down, unhealthy pods first, while the available pods stay at or above
     replicas - maxUnavailable and the new ReplicaSet's not-yet-available pods are counted as missing
                                                                      (`old_rs_scale_downs`)

maxSurge rounds a percentage up and maxUnavailable rounds it down; both 0 would deadlock, so unavailable becomes 1.
A change of spec.replicas in the middle of a rollout is spread over the ReplicaSets in proportion to their size
(`proportional_scale`). Conditions and the status come from the ReplicaSets' own status (`deployment_status`,
`rollout_status`), which is what `kubectl rollout status` reads.
"""
from __future__ import annotations

import copy
import math
from typing import Any

from controllers.objects import now, parse_time

Obj = dict[str, Any]

HASH_LABEL = "pod-template-hash"
REVISION = "deployment.kubernetes.io/revision"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
# Deployment annotations not copied onto its ReplicaSets (deployment/util's annotationsToSkip).
SKIPPED_ANNOTATIONS = {"kubectl.kubernetes.io/last-applied-configuration", REVISION, DESIRED_REPLICAS, MAX_REPLICAS,
                       "deployment.kubernetes.io/revision-history", "deprecated.deployment.rollback.to"}
NO_DEADLINE = 2 ** 31 - 1  # progressDeadlineSeconds of MaxInt32 means none


# -- numbers -------------------------------------------------------------------------------------------------

def scaled_value(value: int | str | None, total: int, *, round_up: bool) -> int:
    """An IntOrString against `total`: "25%" of 10 is 3 rounded up, 2 rounded down."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not text.endswith("%"):
        return int(text)
    exact = int(text[:-1]) * total / 100
    return math.ceil(exact) if round_up else math.floor(exact)


def replicas(obj: Obj | None) -> int:
    return int(((obj or {}).get("spec") or {}).get("replicas") or 0) if obj else 0


def status_count(obj: Obj | None, field: str) -> int:
    return int(((obj or {}).get("status") or {}).get(field) or 0) if obj else 0


def total(rss: list[Obj], field: str | None = None) -> int:
    """Sum of spec.replicas (field None) or of a status field over ReplicaSets."""
    return sum(replicas(rs) if field is None else status_count(rs, field) for rs in rss)


def is_rolling(d: Obj) -> bool:
    return ((d["spec"].get("strategy") or {}).get("type") or "RollingUpdate") == "RollingUpdate"


def fenceposts(d: Obj) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) as numbers of pods for the Deployment's replicas; never both 0."""
    if not is_rolling(d):
        return 0, 0
    rolling = (d["spec"].get("strategy") or {}).get("rollingUpdate") or {}
    desired = replicas(d)
    surge = scaled_value(rolling.get("maxSurge", "25%"), desired, round_up=True)
    unavailable = scaled_value(rolling.get("maxUnavailable", "25%"), desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Obj) -> int:
    return fenceposts(d)[0]


def max_unavailable(d: Obj) -> int:
    if not is_rolling(d) or replicas(d) == 0:
        return 0
    return min(fenceposts(d)[1], replicas(d))


# -- ReplicaSets of a Deployment -----------------------------------------------------------------------------

def revision(obj: Obj | None) -> int:
    try:
        return int(((obj or {}).get("metadata") or {}).get("annotations", {}).get(REVISION, "0"))
    except (TypeError, ValueError):
        return 0


def _pruned(value: Any) -> Any:
    """Nulls, empty maps and empty lists left out, as Go's typed comparison sees them (kubectl sends
    `creationTimestamp: null` in a template it copies back)."""
    if isinstance(value, dict):
        pruned = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in pruned.items() if v is not None and v != {} and v != []}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def without_hash(template: Obj) -> Obj:
    """The template as compared and hashed: without the pod-template-hash label, nulls and empty values."""
    t = _pruned(copy.deepcopy(template or {}))
    labels = (t.get("metadata") or {}).get("labels")
    if labels:
        labels.pop(HASH_LABEL, None)
    return t


def same_template(a: Obj, b: Obj) -> bool:
    """Kubernetes' EqualIgnoreHash: pod templates equal but for the pod-template-hash label."""
    return without_hash(a) == without_hash(b)


def by_age(rss: list[Obj]) -> list[Obj]:
    """Oldest first (creationTimestamp, then name), as ReplicaSetsByCreationTimestamp."""
    return sorted(rss, key=lambda rs: (parse_time(rs["metadata"].get("creationTimestamp")) or 0.0,
                                       rs["metadata"]["name"]))


def new_replica_set(d: Obj, pod_hash: str, rev: int, count: int) -> Obj:
    """The ReplicaSet `<deployment>-<hash>` for the Deployment's current template (owner reference left to the
    caller)."""
    template = copy.deepcopy(d["spec"]["template"])
    template.setdefault("metadata", {}).setdefault("labels", {})[HASH_LABEL] = pod_hash
    selector = copy.deepcopy(d["spec"]["selector"])
    selector.setdefault("matchLabels", {})[HASH_LABEL] = pod_hash
    annotations = {k: v for k, v in (d["metadata"].get("annotations") or {}).items() if k not in SKIPPED_ANNOTATIONS}
    annotations.update({REVISION: str(rev), DESIRED_REPLICAS: str(replicas(d)),
                        MAX_REPLICAS: str(replicas(d) + max_surge(d))})
    return {"apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": f"{d['metadata']['name']}-{pod_hash}", "namespace": d["metadata"]["namespace"],
                         "labels": dict(template["metadata"]["labels"]), "annotations": annotations},
            "spec": {"replicas": count, "minReadySeconds": int(d["spec"].get("minReadySeconds") or 0),
                     "selector": selector, "template": template}}


def with_replicas_annotations(d: Obj, rs: Obj) -> bool:
    """Set desired-replicas and max-replicas on `rs` for `d`. Changed?"""
    annotations = rs["metadata"].setdefault("annotations", {})
    wanted = {DESIRED_REPLICAS: str(replicas(d)), MAX_REPLICAS: str(replicas(d) + max_surge(d))}
    if all(annotations.get(k) == v for k, v in wanted.items()):
        return False
    annotations.update(wanted)
    return True


def new_rs_replicas(d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas): for Recreate all of it, for RollingUpdate up to
    the surge."""
    current = replicas(new_rs)
    if not is_rolling(d):
        return replicas(d)
    room = replicas(d) + max_surge(d) - total(all_rss)
    if room <= 0:
        return current
    return current + min(room, replicas(d) - current)


def old_rs_scale_downs(d: Obj, old_rss: list[Obj], new_rs: Obj | None) -> dict[str, int]:
    """{old ReplicaSet name: new spec.replicas} for this step of a rolling update (reconcileOldReplicaSets):
    first the old sets' unavailable pods, then available ones while availability stays at the minimum."""
    old = [copy.deepcopy(rs) for rs in by_age(old_rss) if replicas(rs) > 0]
    if total(old) == 0:
        return {}
    all_pods = total(old) + replicas(new_rs)
    min_available = replicas(d) - max_unavailable(d)
    new_unavailable = replicas(new_rs) - status_count(new_rs, "availableReplicas")
    budget = all_pods - min_available - new_unavailable
    if budget <= 0:
        return {}
    changes: dict[str, int] = {}
    cleaned = 0  # cleanupUnhealthyReplicas: pods that are not available cost no availability
    for rs in old:
        if cleaned >= budget:
            break
        unhealthy = replicas(rs) - status_count(rs, "availableReplicas")
        if unhealthy <= 0:
            continue
        step = min(budget - cleaned, unhealthy)
        rs["spec"]["replicas"] = replicas(rs) - step
        changes[rs["metadata"]["name"]] = rs["spec"]["replicas"]
        cleaned += step
    available = total(old, "availableReplicas") + status_count(new_rs, "availableReplicas")
    removable = available - min_available  # scaleDownOldReplicaSetsForRollingUpdate
    removed = 0
    for rs in old:
        if removed >= removable:
            break
        if replicas(rs) == 0:
            continue
        step = min(replicas(rs), removable - removed)
        rs["spec"]["replicas"] = replicas(rs) - step
        changes[rs["metadata"]["name"]] = rs["spec"]["replicas"]
        removed += step
    return changes


def is_scaling_event(d: Obj, rss: list[Obj]) -> bool:
    """Has spec.replicas changed since the active ReplicaSets were last sized (their desired-replicas annotation)?"""
    for rs in rss:
        if replicas(rs) == 0:
            continue
        desired = (rs["metadata"].get("annotations") or {}).get(DESIRED_REPLICAS)
        if desired is not None and desired.isdigit() and int(desired) != replicas(d):
            return True
    return False


def proportional_scale(d: Obj, new_rs: Obj | None, old_rss: list[Obj]) -> dict[str, int]:
    """{ReplicaSet name: spec.replicas} after a change of the Deployment's replicas (deployment sync.go's scale):
    one active set takes it all; during a rolling update the change is shared in proportion to each set's size
    (its max-replicas annotation), leftovers to the largest."""
    rss = ([new_rs] if new_rs else []) + old_rss
    active = [rs for rs in rss if replicas(rs) > 0]
    if len(active) <= 1:
        target = active[0] if active else (new_rs or (by_age(old_rss)[-1] if old_rss else None))
        if target is None:
            return {}
        return {target["metadata"]["name"]: replicas(d)}
    if new_rs is not None and replicas(new_rs) == replicas(d) and status_count(new_rs, "availableReplicas") == replicas(d):
        return {rs["metadata"]["name"]: 0 for rs in old_rss if replicas(rs) > 0}  # saturated: the old ones go
    if not is_rolling(d):
        return {}
    allowed = replicas(d) + max_surge(d) if replicas(d) > 0 else 0
    to_add = allowed - total(active)
    if to_add == 0:
        return {}
    # biggest first; ties go to the newer set when growing, to the older when shrinking (ReplicaSetsBySize*)
    by_creation = by_age(active)
    order = sorted(by_creation[::-1] if to_add > 0 else by_creation, key=replicas, reverse=True)
    sizes: dict[str, int] = {}
    added = 0
    for rs in order:
        proportion = _proportion(d, rs, to_add, added)
        sizes[rs["metadata"]["name"]] = replicas(rs) + proportion
        added += proportion
    first = order[0]["metadata"]["name"]
    sizes[first] = max(sizes[first] + to_add - added, 0)
    return sizes


def _proportion(d: Obj, rs: Obj, to_add: int, added: int) -> int:
    if replicas(rs) == 0 or to_add == 0 or to_add == added:
        return 0
    if replicas(d) == 0:
        fraction = -replicas(rs)
    else:
        annotated = (rs["metadata"].get("annotations") or {}).get(MAX_REPLICAS)
        base = int(annotated) if annotated and annotated.isdigit() else status_count(d, "replicas")
        fraction = round(replicas(rs) * (replicas(d) + max_surge(d)) / base) - replicas(rs) if base else 0
    allowed = to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def cleanup_candidates(d: Obj, old_rss: list[Obj]) -> list[Obj]:
    """Old ReplicaSets beyond revisionHistoryLimit, lowest revision first, that are empty and settled."""
    limit = d["spec"].get("revisionHistoryLimit")
    if limit is None:
        return []
    alive = [rs for rs in old_rss if not rs["metadata"].get("deletionTimestamp")]
    extra = len(alive) - int(limit)
    if extra <= 0:
        return []
    oldest = sorted(alive, key=lambda rs: (revision(rs), rs["metadata"].get("creationTimestamp") or ""))[:extra]
    return [rs for rs in oldest if replicas(rs) == 0 and status_count(rs, "replicas") == 0
            and int(rs["metadata"].get("generation") or 0) <= status_count(rs, "observedGeneration")]


# -- status and conditions -----------------------------------------------------------------------------------

def new_condition(type_: str, status: str, reason: str, message: str, at: str | None = None) -> Obj:
    at = at or now()
    return {"type": type_, "status": status, "lastUpdateTime": at, "lastTransitionTime": at,
            "reason": reason, "message": message}


def set_deployment_condition(status: Obj, cond: Obj, *, refresh: bool = False) -> None:
    """SetDeploymentCondition: nothing changes if status and reason are the same (unless `refresh`, the
    Progressing special case that moves lastUpdateTime on progress); a same-status change keeps lastTransitionTime."""
    conditions = status.setdefault("conditions", [])
    old = next((c for c in conditions if c.get("type") == cond["type"]), None)
    if old is not None and not refresh and (old.get("status"), old.get("reason")) == (cond["status"], cond["reason"]):
        return
    if old is not None and old.get("status") == cond["status"]:
        cond = {**cond, "lastTransitionTime": old.get("lastTransitionTime", cond["lastTransitionTime"])}
    status["conditions"] = [c for c in conditions if c.get("type") != cond["type"]] + [cond]


def has_deadline(d: Obj) -> bool:
    deadline = d["spec"].get("progressDeadlineSeconds")
    return deadline is not None and int(deadline) != NO_DEADLINE


def deployment_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None) -> Obj:
    """calculateStatus: counts from the ReplicaSets' status, and the Available condition."""
    available = total(all_rss, "availableReplicas")
    status: Obj = {"observedGeneration": d["metadata"].get("generation", 1),
                   "replicas": total(all_rss, "replicas"),
                   "updatedReplicas": status_count(new_rs, "replicas"),
                   "readyReplicas": total(all_rss, "readyReplicas"),
                   "availableReplicas": available,
                   "unavailableReplicas": max(total(all_rss) - available, 0),
                   "conditions": copy.deepcopy((d.get("status") or {}).get("conditions") or [])}
    if (d.get("status") or {}).get("collisionCount") is not None:
        status["collisionCount"] = d["status"]["collisionCount"]
    if available >= replicas(d) - max_unavailable(d):
        set_deployment_condition(status, new_condition("Available", "True", "MinimumReplicasAvailable",
                                                       "Deployment has minimum availability."))
    else:
        set_deployment_condition(status, new_condition("Available", "False", "MinimumReplicasUnavailable",
                                                       "Deployment does not have minimum availability."))
    return status


def is_complete(d: Obj, status: Obj) -> bool:
    """DeploymentComplete: every replica updated and available, no old ones, the latest generation observed."""
    n = replicas(d)
    return (status.get("updatedReplicas") == n and status.get("replicas") == n
            and status.get("availableReplicas") == n
            and int(status.get("observedGeneration") or 0) >= int(d["metadata"].get("generation") or 1))


def is_progressing(d: Obj, status: Obj) -> bool:
    """DeploymentProgressing: more updated, ready or available pods than last time, or fewer old ones."""
    old = d.get("status") or {}

    def old_pods(s: Obj) -> int:
        return int(s.get("replicas") or 0) - int(s.get("updatedReplicas") or 0)
    return (int(status.get("updatedReplicas") or 0) > int(old.get("updatedReplicas") or 0)
            or old_pods(status) < old_pods(old)
            or int(status.get("readyReplicas") or 0) > int(old.get("readyReplicas") or 0)
            or int(status.get("availableReplicas") or 0) > int(old.get("availableReplicas") or 0))


def progressing(status: Obj) -> Obj | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == "Progressing"), None)


def timed_out(d: Obj, status: Obj, at: float) -> bool:
    """DeploymentTimedOut: the Progressing condition has not moved for progressDeadlineSeconds."""
    cond = progressing(status)
    if not has_deadline(d) or cond is None or cond.get("reason") == "NewReplicaSetAvailable":
        return False
    if cond.get("reason") == "ProgressDeadlineExceeded":
        return True
    since = parse_time(cond.get("lastUpdateTime"))
    return since is not None and since + int(d["spec"]["progressDeadlineSeconds"]) < at


def rollout_status(d: Obj, all_rss: list[Obj], new_rs: Obj | None, at: float) -> Obj:
    """syncRolloutStatus: the status with Available and Progressing (complete, progressing or timed out)."""
    status = deployment_status(d, all_rss, new_rs)
    if not has_deadline(d):
        status["conditions"] = [c for c in status["conditions"] if c.get("type") != "Progressing"]
        return status
    current = progressing(d.get("status") or {})
    what = f'ReplicaSet "{new_rs["metadata"]["name"]}"' if new_rs else f'Deployment "{d["metadata"]["name"]}"'
    if status["replicas"] == status["updatedReplicas"] and current and current.get("reason") == "NewReplicaSetAvailable":
        return status
    if is_complete(d, status):
        set_deployment_condition(status, new_condition("Progressing", "True", "NewReplicaSetAvailable",
                                                       f"{what} has successfully progressed."))
    elif is_progressing(d, status):
        set_deployment_condition(status, new_condition("Progressing", "True", "ReplicaSetUpdated",
                                                       f"{what} is progressing."), refresh=True)
    elif timed_out(d, d.get("status") or {}, at):
        set_deployment_condition(status, new_condition("Progressing", "False", "ProgressDeadlineExceeded",
                                                       f"{what} has timed out progressing."))
    return status


def seconds_until_deadline(d: Obj, status: Obj, at: float) -> float | None:
    """requeueStuckDeployment: when to look again so a stuck rollout is marked ProgressDeadlineExceeded."""
    cond = progressing(status)
    if not has_deadline(d) or cond is None or cond.get("reason") in ("NewReplicaSetAvailable",
                                                                     "ProgressDeadlineExceeded"):
        return None
    since = parse_time(cond.get("lastUpdateTime"))
    if since is None:
        return None
    return max(since + int(d["spec"]["progressDeadlineSeconds"]) - at, 0.0) + 1.0


def sync_new_rs_annotations(d: Obj, rs: Obj, new_revision: int) -> bool:
    """SetNewReplicaSetAnnotations: the Deployment's own annotations copied over, the revision raised to
    `new_revision` (a ReplicaSet brought back by an undo becomes the newest), the replicas annotations. Changed?"""
    annotations = rs["metadata"].setdefault("annotations", {})
    before = dict(annotations)
    for k, v in (d["metadata"].get("annotations") or {}).items():
        if k not in SKIPPED_ANNOTATIONS:
            annotations[k] = v
    if revision(rs) < new_revision:
        annotations[REVISION] = str(new_revision)
    with_replicas_annotations(d, rs)
    return annotations != before
